"""``ioc up --scenario FILE`` and ``ioc up --demo`` as a newcomer meets them: a file that
cannot be played is one line before anything starts; the demo's typhoon fits in about five
minutes; and a played scenario, end to end, opens an alert and resolves it in the database."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from devices import Kind, Topics
from ioc.story import DEMO_REAL_S, story_for
from seeds import load_scenario
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

QUY_NHON = 540


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ioc", *args],
        env={**clean_environ(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


BAD_EVENT = "name: x\nevents:\n  - at: 1m\n    event: explode\n    device: BTS-VTL-0001\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--scenario", "{tmp}/nowhere.yaml"), "ioc: --scenario: no scenario file {tmp}/nowhere"),
        (("--scenario", "{tmp}/bad.yaml"), "ioc: {tmp}/bad.yaml:3: unknown event 'explode'"),
        (("--demo", "--scenario", "{tmp}/bad.yaml"), "ioc: --demo plays the typhoon; give either"),
        (("--demo", "--speed", "10"), "ioc: --demo sets its own speed"),
    ],
    ids=["missing", "invalid", "both", "demo-speed"],
)
def test_a_scenario_that_cannot_be_played_is_one_line_before_anything_starts(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_EVENT, encoding="utf-8")
    with socket.socket() as holder:  # were anything started first, this taken port would say so
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = ioc("up", *(a.format(tmp=tmp_path) for a in args), "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith(says.format(tmp=tmp_path)), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--limit", "3"), "ioc: --limit takes --province and at least 1, not 3"),
        (("--interval", "soon"), "ioc: --interval: 'soon' is not a duration"),
        (("--interval", "0s"), "ioc: --interval must be at least 1 s"),
    ],
    ids=["limit-alone", "interval", "interval-zero"],
)
def test_simulate_run_refuses_options_it_cannot_honour(args: tuple[str, ...], says: str) -> None:
    done = ioc("simulate", "run", "scenarios/typhoon_landfall.yaml", "--check", *args)
    assert done.returncode == 2 and done.stderr.strip().startswith(says), done.stderr


def test_the_province_runs_beside_a_scenario_s_own_fleet() -> None:
    own = ioc("simulate", "run", "scenarios/typhoon_landfall.yaml", "--check")
    province = ioc("simulate", "run", "scenarios/typhoon_landfall.yaml", "--check", "--province")
    beside = ioc("simulate", "run", "scenarios/typhoon_landfall.yaml", "--check", "--province",
                 "--limit", "10")  # fmt: skip
    simulated = [d for d in load_scenario().devices() if d.kind is not Kind.PROBE]
    assert "1922 devices" in own.stdout, own.stdout + own.stderr
    assert f"{len(simulated)} devices" in province.stdout, province.stdout + province.stderr
    assert "1932 devices" in beside.stdout, beside.stdout + beside.stderr


def test_the_demo_is_the_typhoon_in_five_minutes_and_says_so() -> None:
    story = story_for(None, demo=True, speed=None)
    assert story is not None and story.demo
    last = story.plan.actions[-1].at_s / story.speed
    assert last < story.plan.duration_s / story.speed == DEMO_REAL_S == 300
    assert story.interval_s is not None and story.interval_s / story.speed == 1.0
    args = story.fleet_args(None)
    assert args[:2] == ["simulate", "run"] and {"--province", "--keep-running"} <= set(args)
    banner = story.banner()
    assert banner[0].startswith("Watching the demo: Typhoon landfall on the coast")
    assert "12 h of simulated time in 5:00 min (×144)" in "\n".join(banner)
    assert any("power cut" in line for line in banner)
    assert any("power restored" in line for line in banner)
    assert story_for(None, demo=False, speed=None) is None


def _alert_states(url: str, device_id: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return []
        rows = conn.execute(
            "SELECT state FROM alerts WHERE rule = 'bts_battery_low' AND subject = %s",
            (device_id,),
        ).fetchall()
    return [r[0] for r in rows]


async def test_ioc_up_plays_a_scenario_an_alert_opens_and_resolves(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, tmp_path: Path
) -> None:
    tower = next(
        d.device_id
        for d in load_scenario().devices()
        if d.kind is Kind.BTS and d.meta["district_code"] == QUY_NHON
    )
    story = tmp_path / "battery.yaml"
    story.write_text(
        "name: A tower on battery\nspeed: 60\ninterval: 10s\n"
        "fleet:\n  districts: [Quy Nhơn]\n  kinds: [bts]\n  limit: 3\n"
        f"events:\n  - at: 1m\n    event: power_cut\n    device: {tower}\n    battery_pct: 20\n"
        f"  - at: 30m\n    event: power_restored\n    device: {tower}\n",
        encoding="utf-8",
    )
    rules = tmp_path / "rules.toml"  # resolve a second after mains is back, not a minute
    rules.write_text('[[rules]]\nname = "bts_battery_low"\nkeep_firing_s = 1\n', "utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**clean_environ(), "IOC_DATABASE_URL": database_url, "IOC_MQTT_URL": mqtt_url,
           "IOC_MQTT_PROTOCOL": str(mqtt_protocol), "IOC_ALERT_RULES": str(rules),
           "IOC_TOPIC_ROOT": topics.root}  # fmt: skip
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ioc", "up", "--scenario", str(story), "--limit", "5",
            "--port", str(port), env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_until(lambda: "open" in _alert_states(database_url, tower), 120,
                         every_s=0.5, state=log.read_text)  # fmt: skip
        await wait_until(lambda: _alert_states(database_url, tower) == ["resolved"], 120,
                         every_s=0.5, state=log.read_text)  # fmt: skip
        assert up.returncode is None, log.read_text()  # the stack is still up
        up.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(up.wait(), 60) == 0, log.read_text()
    finally:
        if up.returncode is None:
            up.kill()
    output = log.read_text()
    assert f"Watching the scenario: A tower on battery ({story})" in output
    assert "power cut: 1 device" in output and "power restored: 1 device" in output
