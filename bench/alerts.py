"""Alert latency: a tower's will → its alert on the MQTT alert topic, beside the broker's own
delivery of that will, with the simulated fleet publishing telemetry around it.

    python -m bench.alerts [--quick] [--trials 100] [--speed 1] [--rule coverage_lost]

Starts its own broker (project config), a scratch database with the scenario, an ingester,
the alert engine (``ioc alerts run``), the coverage service (pushed by LISTEN/NOTIFY on
``ioc_coverage``) and the fleet (``ioc``'s simulator, less the victims), each in its own
session. Each trial: a victim tower comes online, then its link is dropped without DISCONNECT;
the broker publishes its will. Measured from the drop, on the bench's own clock, the boundaries
of each stage: (a) a subscriber of the tower's status topic sees the will, (b) the status
change commits (its ``ioc_coverage`` notification reaches the bench's LISTEN), for
coverage_lost (c) the coverage service's 'lost' event commits (the ``ioc_alert_inbox``
notification from the coverage service's own connection), and (d) a subscriber of the alert
topics sees the alert. (a) and (b) are parallel paths from the broker (the watcher and the
ingester each get the will), the rest follow one another; each stage's share is its part of
the summed totals of the trials that saw every boundary.

Measured by default and by ``--quick`` (20 trials, the full fleet at its normal rate):
``coverage_lost``; the victim is the tower whose loss alone strands a village, dropped and
restored each trial. Towers never heard from are unknown, and the village resting on one is
reported as unknown, not covered: before each drop the victim is online and the coverage
service has seen it (the village is covered again, the previous alert resolved; a drop before
that would be no news). ``--rule bts_offline`` (for_s = 0: its 60 s wait for grouping is policy,
not latency) drops a different tower each trial. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg

from bench.alert_probes import Notes, Victim, Watcher, pct, stages
from devices.endpoint import MqttEndpoint
from devices.kinds import Kind
from devices.topics import Topics
from ioc.brokers import start_broker
from ioc.configs import coverage_service_config
from ioc.scenario import load_into
from seeds import load_scenario
from store.migrate import upgrade
from tests.support.databases import scratch_database
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
# The measured rules open at once and resolve at once; no flapping policy between trials.
RULES = """[defaults]
flap_changes = 1000000
[[rules]]
name = "bts_offline"
for_s = 0
keep_firing_s = 0
[[rules]]
name = "coverage_lost"
keep_firing_s = 0
"""
TRIAL_TIMEOUT_S = 15.0
COVERAGE_APP = "ioc-bench-coverage"  # the coverage service's application_name (PGAPPNAME)
# The victim's villages are covered again: it is online and the coverage service has seen it.
COVERED = ("SELECT bool_and(operators <> '{}' AND unknown = '{}') FROM coverage_places"
           " WHERE place_kind = 'village' AND place_id = ANY(%s)")  # fmt: skip


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


async def fleet_child(mqtt_url: str, root: str, speed: float, exclude: set[str],
                      limit: int | None) -> None:  # fmt: skip
    from simulators.fleet import province_devices, run_fleet

    devices = [d for d in province_devices() if d.device_id not in exclude]
    await run_fleet(devices, mqtt_url=mqtt_url, topic_root=root, speed=speed, limit=limit,
                    on_progress=lambda line: print(line, flush=True))  # fmt: skip


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    scenario = load_scenario()
    towers = [d for d in scenario.devices() if d.kind is Kind.BTS]
    broker = start_broker(work / "broker")
    root = Topics.under(f"bench{uuid.uuid4().hex[:6]}").root
    topics = Topics(root)
    try:
        with scratch_database(args.database_url, "ioc_bench_alerts") as url:
            with psycopg.connect(url) as conn:
                upgrade(conn)
                load_into(conn)
            villages: list[str] = []
            if args.rule == "coverage_lost":
                victim, villages = await stranding_tower(url, towers)
                victims = [victim]
            else:
                victims = towers[:: max(1, len(towers) // args.trials)][: args.trials]
            (work / "rules.toml").write_text(RULES)
            clean = clean_environ()
            env = {**clean, "IOC_DATABASE_URL": url, "IOC_MQTT_URL": broker.url,
                   "IOC_TOPIC_ROOT": root, "IOC_ALERT_RULES": str(work / "rules.toml"),
                   "IOC_INGEST_METRICS_PORT": "0"}  # fmt: skip
            exclude = work / "victims.txt"
            exclude.write_text("\n".join(v.device_id for v in victims))
            procs = [
                spawn(["-m", "ioc", "ingest"], env, work / "ingest.log"),
                spawn(["-m", "ioc", "alerts", "run"], env, work / "alerts.log"),
                spawn(["-m", "bench.alerts", "--fleet-child", "--mqtt-url", broker.url,
                       "--root", root, "--speed", str(args.speed), "--exclude", str(exclude)]
                      + (["--fleet-limit", str(args.fleet_limit)] if args.fleet_limit else []),
                      env, work / "fleet.log"),
            ]  # fmt: skip
            if args.rule == "coverage_lost":
                child = ["-m", "bench.alerts", "--coverage-child", "--database-url", url]
                procs.append(spawn(child, {**env, "PGAPPNAME": COVERAGE_APP},
                                   work / "coverage.log"))  # fmt: skip
            try:
                result = await trials(args, url, broker.url, topics, victims, villages, procs,
                                      work, started)  # fmt: skip
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()
    finally:
        broker.stop()
    return {**result, "wall_s": round(time.monotonic() - started, 1)}


async def stranding_tower(url: str, towers: list[Any]) -> tuple[Any, list[str]]:
    """The tower whose loss alone strands a village, from a coverage build (N-1 table), and
    the villages it alone covers."""
    from processing.coverage.service import CoverageService

    service = CoverageService(coverage_service_config(database_url=url))
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 600)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT device_id FROM critical_towers WHERE villages_all > 0"
                                 " ORDER BY villages_all, population_all DESC LIMIT 1")  # fmt: skip
        row = await cur.fetchone()
    if row is None or service.coverage is None:
        raise SystemExit("no tower strands a village alone: nothing to measure coverage_lost on")
    villages = sorted(
        place_id
        for (kind, place_id), by_op in service.coverage.covering.items()
        if kind == "village" and set().union(*by_op.values()) == {row[0]}
    )
    return next(t for t in towers if t.device_id == row[0]), villages


async def _poll(url: str, sql: str, params: tuple[Any, ...], want: Any, timeout_s: float) -> bool:
    """Whether the query comes to answer ``want`` in time, on one async connection: the bench's
    watchers share the event loop and must not wait behind a blocking query."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

        async def answers() -> bool:
            cur = await conn.execute(sql, params)
            return bool(await cur.fetchall() == want)

        try:
            await wait_until(answers, timeout_s)
        except AssertionError:
            return False
    return True


async def _coverage_pids(url: str) -> set[int]:
    """The backends of the coverage service's connections (its application_name)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                 (COVERAGE_APP,))  # fmt: skip
        return {r[0] for r in await cur.fetchall()}


async def trials(args: argparse.Namespace, url: str, mqtt_url: str, topics: Topics,
                 victims: list[Any], villages: list[str], procs: list[Any], work: Path,
                 started: float) -> dict[str, Any]:  # fmt: skip
    endpoint = MqttEndpoint.parse(mqtt_url)
    coverage = args.rule == "coverage_lost"
    fleet_size = args.fleet_limit or sum(1 for d in load_scenario().devices()
                                         if d.kind is not Kind.PROBE) - len(victims)  # fmt: skip
    print(f"waiting for the fleet ({fleet_size} devices) to come online …", file=sys.stderr)
    if not await _poll(url, "SELECT count(*) >= %s FROM devices WHERE state = 'online'",
                       (int(fleet_size * 0.95),), [(True,)], 240):  # fmt: skip
        print("the fleet is not 95 % online after 240 s; measuring anyway", file=sys.stderr)
    if coverage:  # its connections are open (COVERED, before each drop, waits for its build)
        connected = await _poll(
            url,
            "SELECT count(*) >= 2 FROM pg_stat_activity WHERE application_name = %s",
            (COVERAGE_APP,),
            [(True,)],
            120,
        )
        if not connected:
            print("the coverage service has not connected after 120 s", file=sys.stderr)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM devices WHERE state = 'online'")
        fleet_online = (await cur.fetchone() or (0,))[0]
    setup_s = time.monotonic() - started
    print(f"setup took {setup_s:.1f} s ({fleet_online} devices online); trials begin",
          file=sys.stderr)  # fmt: skip
    pool = [Victim(v, endpoint, topics) for v in victims]
    status_of = {v.status_topic: v.device.device_id for v in pool}
    watcher = Watcher(args.rule)
    notes = Notes()
    names = ["will_on_mqtt", "status_committed"]
    names += ["coverage_event_committed"] if coverage else []
    names += ["alert_on_mqtt"]
    rows: list[dict[str, float | None]] = []  # per measured trial: each boundary, from the drop
    will_s: list[float] = []
    missed: dict[str, int] = {}  # why a trial measured nothing
    windows: list[tuple[int, int]] = []  # per trial: opened messages from its drop to the next
    listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
    for channel in Notes.CHANNELS:
        await listener.execute(f"LISTEN {channel}")
    noting = asyncio.create_task(notes.run(listener))
    async with aiomqtt.Client(endpoint.host, endpoint.port, identifier="bench-watch") as client:
        for topic in status_of:
            await client.subscribe(topic, qos=1)
        await client.subscribe(topics.all_alerts(), qos=1)
        watching = asyncio.create_task(watcher.run(client, status_of))
        for i in range(args.trials):
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"a service died (code {p.returncode}); logs in {work}")
            victim = pool[i % len(pool)]
            device_id = victim.device.device_id
            if windows:
                windows[-1] = (windows[-1][0], len(watcher.opened))
            await victim.online()
            ready = await _poll(url, "SELECT state FROM devices WHERE device_id = %s",
                                (device_id,), [("online",)], TRIAL_TIMEOUT_S)  # fmt: skip
            pids: set[int] = set()
            if ready and coverage:  # the previous alert resolved; the village covered again
                ready = await watcher.until(watcher.all_resolved, TRIAL_TIMEOUT_S)
                ready = ready and await _poll(url, COVERED, (villages,), [(True,)],
                                              TRIAL_TIMEOUT_S)  # fmt: skip
                pids = await _coverage_pids(url)
            if not ready:
                missed["not ready"] = missed.get("not ready", 0) + 1
                print(f"trial {i}: victim not online, previous alert not resolved or village"
                      " not covered in time", file=sys.stderr)  # fmt: skip
                await victim.cut()
                continue
            opened_before = len(watcher.opened)
            windows.append((opened_before, opened_before))
            wills_before = len(watcher.wills.get(device_id, []))
            t0 = time.monotonic()
            await victim.cut()
            got = await watcher.until(lambda n=opened_before: len(watcher.opened) > n,
                                      TRIAL_TIMEOUT_S)  # fmt: skip
            wills = watcher.wills.get(device_id, [])
            will = wills[wills_before] - t0 if len(wills) > wills_before else None
            if will is not None:
                will_s.append(will)
            if not got:
                missed["no alert"] = missed.get("no alert", 0) + 1
                print(f"trial {i}: no alert within {TRIAL_TIMEOUT_S} s", file=sys.stderr)
                continue
            await asyncio.sleep(0)  # notifications that arrived with the alert are noted
            status = notes.first(t0, "ioc_coverage")
            row = {"will_on_mqtt": will,
                   "status_committed": status - t0 if status is not None else None,
                   "alert_on_mqtt": watcher.opened[opened_before][1] - t0}  # fmt: skip
            if coverage:
                event = notes.first(t0, "ioc_alert_inbox", pids)
                row["coverage_event_committed"] = event - t0 if event is not None else None
            rows.append(row)
            if (i + 1) % 10 == 0:
                alert_s = [r["alert_on_mqtt"] for r in rows if r["alert_on_mqtt"] is not None]
                print(f"{i + 1}/{args.trials} trials, alert p50 {pct(alert_s, 0.5)} s",
                      file=sys.stderr)  # fmt: skip
        await asyncio.sleep(1.0)  # a late duplicate, if any, arrives within this second
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await watching
    noting.cancel()
    with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
        await noting
    await listener.close()
    windows[-1:] = [(w[0], len(watcher.opened)) for w in windows[-1:]]
    ids = [alert_id for alert_id, _ in watcher.opened]
    # The same alert delivered twice, or more than one alert opened for one drop.
    duplicates = len(ids) - len(set(ids)) + sum(max(0, len(set(ids[a:b])) - 1) for a, b in windows)
    alert_s = [v for r in rows if (v := r["alert_on_mqtt"]) is not None]
    event_s = [v for r in rows if (v := r.get("coverage_event_committed")) is not None]
    p99, will_p99 = pct(alert_s, 0.99), pct(will_s, 0.99)
    return {
        "rule": args.rule,
        "trials": args.trials,
        "measured": len(alert_s),
        "fleet_devices": fleet_size,
        "fleet_online_at_start": fleet_online,
        "speed": args.speed,
        "p50_s": pct(alert_s, 0.5),
        "p99_s": p99,
        "max_s": round(max(alert_s), 4) if alert_s else None,
        "coverage_event_p50_s": pct(event_s, 0.5),
        "coverage_event_p99_s": pct(event_s, 0.99),
        "broker_will_p50_s": pct(will_s, 0.5),
        "broker_will_p99_s": will_p99,
        "ratio_p99": round(p99 / will_p99, 1) if p99 and will_p99 else None,
        "stages": stages(rows, names),
        "duplicates": duplicates,
        "missed": sum(missed.values()),
        "missed_why": missed,
        "setup_s": round(setup_s, 1),
        "target_p99_s": 2.0,
    }


async def coverage_child(url: str) -> None:
    from processing.coverage.service import run_coverage

    await run_coverage(coverage_service_config(database_url=url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 trials, the full fleet (under a minute)"
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="fleet time acceleration (1: the normal rate, a reading a minute)",
    )
    parser.add_argument("--fleet-limit", type=int, default=None, help="only N fleet devices")
    parser.add_argument("--database-url", default=LOCAL_PG, help="server for a scratch database")
    parser.add_argument(
        "--rule",
        choices=("coverage_lost", "bts_offline"),
        default="coverage_lost",
        help="the alert measured",
    )
    parser.add_argument("--fleet-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--coverage-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mqtt-url", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fleet_child:
        exclude = set(Path(args.exclude).read_text().split())
        asyncio.run(fleet_child(args.mqtt_url, args.root, args.speed, exclude, args.fleet_limit))
        return
    if args.coverage_child:
        asyncio.run(coverage_child(args.database_url))
        return
    if args.quick:  # still the full fleet at its normal rate: only fewer trials
        args.trials = min(args.trials, 20)
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
