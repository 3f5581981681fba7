"""Scenario files: bad files fail with file:line before anything is published; every shipped
scenario plays its events, accelerated, and a subscriber sees each one's effect after its time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from devices import Codec, RejectReason, Topics
from simulators import MqttEndpoint
from simulators.runner import RunLog, run_plan
from simulators.scenarios import Action, Plan, ScenarioError, load_plan
from tests.support.clients import mqtt_client, subscribed
from tests.support.environment import clean_environ
from tests.support.simulated import SCENARIOS

SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
REAL_S = 8.0  # a shipped scenario is played in about this many real seconds, if it can be
GAP_S = 0.5  # real seconds, at least, between two events on one device
READINGS_PER_S = 5.0  # per device, whatever the acceleration: each gap sees a few readings


# -- bad files ----------------------------------------------------------------------------------

GOOD_HEAD = """name: test
fleet:
  districts: [Quy Nhơn]
events:
  - at: 1m
    event: down
    device: BTS-VTL-0001
"""
AT_2M = "  - at: 2m\n    event: "


@pytest.mark.parametrize(
    ("tail", "line", "reason"),
    [
        (f"{AT_2M}explode\n    device: BTS-VTL-0001\n", 8, "unknown event 'explode'"),
        (f"{AT_2M}up\n    device: BTS-VTL-9999\n", 8, "'BTS-VTL-9999' is not in the scenario"),
        ("  - at: 30s\n    event: up\n    device: BTS-VTL-0001\n", 8, "time goes backwards"),
        ("  - at: 2m\n    event: up\n    device: OLT-21994\n", 8, "not in this scenario's fleet"),
        ("  - at: 2m\n    event: sector_down\n    device: BTS-VTL-0001\n    sector: 12\n", 8,
         "BTS-VTL-0001 has no sector 12"),
        ("  - at: 2m\n    event: tamper\n    device: BTS-VTL-0001\n", 8,
         "tamper does not apply to BTS-VTL-0001 (a bts)"),
        ("  - at: 2m\n    event: up\n    device: BTS-VTL-0001\n    colour: red\n", 8,
         "unknown key 'colour'"),
        ("  - at: soon\n    event: up\n    device: BTS-VTL-0001\n", 8,
         "`at`: 'soon' is not a duration"),
        ("  - at: 2m\n    event: late\n    device: BTS-VTL-0001\n    readings: 3\n", 8,
         "late needs `delay`"),
        ("  - at: 2m\n    event: up\n    district: Atlantis\n", 8, "no district 'Atlantis'"),
        ("  - at: 2m\n    event: up\n    device: [BTS-VTL-0001\n", 11, "not valid YAML"),
    ],
    ids=["event", "device", "backwards", "fleet", "sector", "kind", "key", "time", "param",
         "district", "yaml"],
)  # fmt: skip
def test_a_bad_file_fails_with_its_file_line_and_reason(
    tmp_path: Path, tail: str, line: int, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_HEAD + tail, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_plan(path)
    assert caught.value.line == line, str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert reason in caught.value.reason


def test_durations_flapping_and_shares_read_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        GOOD_HEAD + "  - at: '01:30'\n    event: flapping\n    device: CAM-0001\n    period: 90s\n"
        "    times: 2\n"
        "  - at: 2h\n    event: down\n    district: 540\n    kinds: bts\n    share: 0.1\n"
        "  - at: 3h\n    event: up\n    district: Thành phố Quy Nhơn\n    kinds: [bts]\n"
        "    share: 0.1\n",
        encoding="utf-8",
    )
    plan = load_plan(path)
    steps = [(a.at_s, a.event) for a in plan.actions if a.device_ids == ("CAM-0001",)]
    assert steps == [(5400, "down"), (5490, "up"), (5580, "down"), (5670, "up")]
    down, up = plan.actions[-2:]
    assert down.device_ids == up.device_ids and len(down.device_ids) == 27  # 10 % of 266
    assert plan.duration_s == 3 * 3600 + 600  # ten minutes after the last event


async def _retained_under(url: str, protocol: int, topics: Topics) -> list[str]:
    """Every retained topic under ``topics.root`` (a sentinel marks the end of them)."""
    sentinel = f"{topics.root}/zz-sentinel"
    seen: list[str] = []
    async with mqtt_client(url, protocol) as client:
        await client.subscribe(f"{topics.root}/#", qos=1)
        await client.publish(sentinel, b"end", qos=1)
        async with asyncio.timeout(20):
            async for m in client.messages:
                if str(m.topic) == sentinel:
                    return seen
                seen.append(str(m.topic))
    return seen


async def test_the_cli_refuses_a_bad_file_before_publishing_anything(
    tmp_path: Path, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_HEAD + "  - at: 2m\n    event: up\n    device: BTS-NOPE\n", "utf-8")
    env = clean_environ()
    env |= {"IOC_MQTT_URL": mqtt_url, "IOC_MQTT_PROTOCOL": str(mqtt_protocol),
            "IOC_TOPIC_ROOT": topics.root}  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ioc", "simulate", "run", str(path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"ioc: {path}:8: device 'BTS-NOPE' is not in the scenario"
    # The first event's device (and the rest of the fleet) never published a birth.
    assert await _retained_under(mqtt_url, mqtt_protocol, topics) == []


# -- shipped scenarios, played ------------------------------------------------------------------


@dataclass
class Arrival:
    at: float  # event loop time
    wall: datetime
    topic: str
    payload: bytes


@contextlib.asynccontextmanager
async def recording(url: str, protocol: int, topics: Topics) -> AsyncIterator[list[Arrival]]:
    got: list[Arrival] = []
    loop = asyncio.get_running_loop()

    def take(m: aiomqtt.Message) -> None:
        assert isinstance(m.payload, bytes)
        got.append(Arrival(loop.time(), datetime.now(UTC), str(m.topic), m.payload))

    async with mqtt_client(url, protocol) as client, subscribed(client, f"{topics.root}/#", take):
        yield got


def _json(a: Arrival) -> Any:
    try:
        return msgspec.json.decode(a.payload)
    except msgspec.DecodeError:
        return None


# Events whose sign may be a status or a broken message rather than a reading.
NOT_ONLY_READINGS = {"down", "up", "power_cut", "power_restored", "fibre_cut", "fibre_restored",
                     "malformed"}  # fmt: skip


Sign = Callable[[Arrival, Any, set[int], int], bool]


def status(state: str) -> Sign:
    def sign(a: Arrival, r: Any, *_: Any) -> bool:
        return a.topic.endswith("/status") and isinstance(r, dict) and r.get("state") == state

    return sign


def metric(name: str, value: Any) -> Sign:
    def sign(a: Arrival, r: Any, *_: Any) -> bool:
        return a.topic.endswith("/telemetry") and isinstance(r, dict) and r.get(name) == value

    return sign


class Effects:
    """What each event looks like on the wire, for one device's messages in arrival order."""

    def __init__(self, device_id: str, arrivals: list[Arrival], speed: float) -> None:
        self.device_id, self.speed = device_id, speed
        self.mine = [a for a in arrivals if f"/{device_id}/" in a.topic]

    def readings(self) -> list[tuple[Arrival, dict[str, Any]]]:
        out = []
        for a in self.mine:
            value = _json(a) if a.topic.endswith("/telemetry") else None
            for r in value if isinstance(value, list) else [value] if value else []:
                if isinstance(r, dict) and r.get("device_id") == self.device_id:
                    out.append((a, r))
        return out

    def first_after(self, since: float, action: Action) -> float | None:
        """Arrival time of the first sign of ``action`` at or after ``since``."""
        test = self.predicate(action)
        if action.event == "burst":  # that many readings, all at once, after its time
            after = [a.at for a, _ in self.readings() if a.at >= since]
            n = action.params["readings"]
            return after[n - 1] if len(after) >= n else None
        seen_seqs: set[int] = set()
        top = -1
        for a, r in self.readings() if action.event != "malformed" else []:
            sign = test(a, r, seen_seqs, top)
            seen_seqs.add(r["seq"])
            top = max(top, r["seq"])
            if sign and a.at >= since:
                return a.at
        for a in self.mine:
            if a.at >= since and action.event in NOT_ONLY_READINGS and test(a, _json(a), set(), -1):
                return a.at
        return None

    def predicate(self, action: Action) -> Sign:
        p, kind = action.params, self.device_id.split("-")[0]
        match action.event, kind:
            case "down", _:
                return status("offline")
            case "up", _:
                return status("online")
            case "power_cut", "BTS":
                return metric("power_source", "battery")
            case "power_cut", _:
                return status("offline")
            case "power_restored", "BTS":
                return metric("power_source", "mains")
            case "power_restored", _:
                return status("online")
            case "fibre_cut" | "fibre_restored", _:
                up = action.event == "fibre_restored"
                if kind == "OLT":
                    return metric("uplink_up", up)
                if kind == "BTS":
                    return metric("backhaul_up", up)
                return status("online" if up else "offline")
            case "sector_down" | "sector_up", _:
                n, on = p["sector"], action.event == "sector_up"
                return lambda a, r, *_: r["sectors_up"][n - 1] is on
            case "tamper" | "tamper_cleared", _:
                return metric("tamper", action.event == "tamper")
            case "clock_skew", _:
                off = timedelta(seconds=p["offset"])
                return lambda a, r, *_: (
                    abs(datetime.fromisoformat(r["ts"]) - a.wall - off) < timedelta(seconds=30)
                )
            case "late", _:
                late = timedelta(seconds=0.8 * p["delay"] / self.speed)
                return lambda a, r, *_: a.wall - datetime.fromisoformat(r["ts"]) >= late
            case "out_of_order", _:
                return lambda a, r, seen, top: r["seq"] < top and r["seq"] not in seen
            case "duplicates", _:
                return lambda a, r, seen, top: r["seq"] in seen
            case "burst", _:
                return lambda a, r, *_: True  # counted in first_after
            case "malformed", _:
                return lambda a, r, *_: True
        raise AssertionError(f"no effect known for {action.event}")


def _check_effects(plan: Plan, run: RunLog, arrivals: list[Arrival], speed: float) -> None:
    assert [a.action for a in run.applied] == list(plan.actions)
    for a in run.applied:
        assert a.applied_s >= a.due_s  # never early
    assert [a.applied_s for a in run.applied] == sorted(a.applied_s for a in run.applied)
    since: dict[str, float] = {}
    for applied in run.applied:
        action = applied.action
        for device_id in action.device_ids:
            effects = Effects(device_id, arrivals, speed)
            start = max(run.started + applied.due_s, since.get(device_id, 0.0))
            at = effects.first_after(start, action)
            assert at is not None, f"no sign of {action.event} (line {action.line}) on {device_id}"
            since[device_id] = at


def _reject_reasons(arrivals: list[Arrival], plan: Plan, topics: Topics, who: str) -> list[str]:
    fleet = {d.device_id for d in plan.devices}
    codec = Codec(topics, is_known=fleet.__contains__)
    reasons = []
    for a in arrivals:
        if who in a.topic:
            decoded = codec.decode(a.topic, a.payload, a.wall)
            reasons += [r.reason.value for r in decoded.rejections]
    return reasons


def _closest_s(plan: Plan) -> float:
    """Simulated time between the two closest events on one device."""
    when: dict[str, list[float]] = {}
    for a in plan.actions:
        for device_id in a.device_ids:
            when.setdefault(device_id, []).append(a.at_s)
    gaps = [b - a for times in when.values() for a, b in itertools.pairwise(times)]
    return min((g for g in gaps if g > 0), default=plan.duration_s)


@pytest.mark.parametrize("name", SHIPPED)
async def test_a_shipped_scenario_plays_each_event_at_its_time(
    name: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    plan = load_plan(SCENARIOS / name).sampled(2)
    speed = min(plan.duration_s / REAL_S, _closest_s(plan) / GAP_S)
    last = plan.actions[-1].at_s
    # Each device reads a few times a second whatever the speed, so effects show quickly, and
    # the run ends a second after the last event.
    plan = replace(plan, interval_s=speed / READINGS_PER_S, duration_s=last + speed)
    lines: list[str] = []
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    async with recording(mqtt_url, mqtt_protocol, topics) as arrivals:
        run = await run_plan(
            plan, endpoint, topics=topics, speed=speed, only_involved=True, report=lines.append
        )
        assert len(run.applied) == len(plan.actions), lines
        await asyncio.sleep(0)  # the last messages of the clean stop are in `arrivals` below
    _check_effects(plan, run, arrivals, speed)
    malformed = [a for a in plan.actions if a.event == "malformed"]
    for action in malformed:
        device_id = action.device_ids[0]
        reasons = _reject_reasons(arrivals, plan, topics, device_id)
        # one message of each reason asked for, from that device and from no other event
        assert sorted(reasons) == sorted(r.value for r in action.params["reasons"]), reasons
    if name == "hostile_devices.yaml":
        assert {r.value for a in malformed for r in a.params["reasons"]} == set(RejectReason)
