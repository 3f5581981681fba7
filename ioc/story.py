"""What ``ioc up`` plays on the province's fleet: a scenario file, or the demo (the typhoon
compressed to about five minutes); without either, a quiet province.

The demo is the shipped typhoon file at a speed factor, not a second, compressed copy of its
timeline: one file to keep right. Its devices report once a real second, the load `ioc up`'s
fleet puts on a laptop at its default ×60, instead of every 0.4 s that the file's one-minute
interval would mean at ×144.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from pathlib import Path

from simulators.scenarios import Plan, load_plan
from simulators.values import LOCAL_TZ

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
DEMO_FILE = SCENARIOS / "typhoon_landfall.yaml"
DEMO_REAL_S = 300.0  # the demo's whole timeline, in real seconds
DEMO_READING_EVERY_S = 1.0  # real seconds between two readings of a device in the demo


@dataclass(frozen=True, slots=True)
class Story:
    plan: Plan
    speed: float
    interval_s: float | None  # simulated; None: the file's (or each device's own)
    demo: bool = False

    def fleet_args(self, limit: int | None) -> list[str]:
        """``ioc simulate run`` arguments: the timeline over the whole province, which goes
        on running after it."""
        path = str(self.plan.path.resolve())
        args = ["simulate", "run", path, "--province", "--keep-running"]
        args += ["--speed", f"{self.speed:g}"]
        if self.interval_s is not None:
            args += ["--interval", f"{self.interval_s:g}s"]
        return args + (["--limit", str(limit)] if limit else [])

    def banner(self) -> list[str]:
        """What the newcomer is watching, and when each step comes (real minutes after the
        fleet has connected)."""
        plan = self.plan
        kind = "demo" if self.demo else "scenario"
        lines = [f"Watching the {kind}: {plan.name} ({plan.path})"]
        if plan.description:
            lines.append(f"  {' '.join(plan.description.split())}")
        real_s = plan.duration_s / self.speed
        lines.append(
            f"  {_hm(plan.duration_s)} of simulated time in {_ms(real_s)} min (×{self.speed:g}), "
            "once the fleet has connected; the rest of the province runs beside it, and the "
            "fleet keeps running after it."
        )
        start = plan.start_at()
        for (at_s, event), steps in groupby(plan.actions, key=lambda a: (a.at_s, a.event)):
            devices = len({i for a in steps for i in a.device_ids})
            local = (start + timedelta(seconds=at_s)).astimezone(LOCAL_TZ)
            who = "1 device" if devices == 1 else f"{devices} devices"
            lines.append(
                f"  +{_ms(at_s / self.speed)}  {local:%H:%M}  {event.replace('_', ' ')}: {who}"
            )
        return lines


def story_for(scenario: Path | None, *, demo: bool, speed: float | None) -> Story | None:
    """The story `ioc up` was asked for; a file that cannot be played fails here, in one line,
    before anything starts."""
    if scenario is not None and demo:
        raise ValueError("--demo plays the typhoon; give either --demo or --scenario FILE")
    if demo:
        if speed is not None:
            raise ValueError("--demo sets its own speed; for another: --scenario FILE --speed N")
        if not DEMO_FILE.is_file():
            raise ValueError(f"--demo: {DEMO_FILE} is missing (an install without scenarios/)")
        plan = load_plan(DEMO_FILE)
        fast = plan.duration_s / DEMO_REAL_S
        return Story(plan, fast, fast * DEMO_READING_EVERY_S, demo=True)
    if scenario is None:
        return None
    if not scenario.is_file():
        raise ValueError(f"--scenario: no scenario file {scenario} (see scenarios/*.yaml)")
    plan = load_plan(scenario)
    return Story(plan, speed or plan.speed, None)


def _hm(seconds: float) -> str:
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h" + (f" {m} min" if m else "")


def _ms(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"
