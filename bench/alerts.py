"""Alert latency: a tower's will → its alert on the MQTT alert topic, beside the broker's own
delivery of that will, with the simulated fleet publishing telemetry around it.

    python -m bench.alerts [--quick] [--trials 100] [--speed 1] [--rule coverage_lost]

Starts its own broker (project config), a scratch database with the scenario, an ingester,
the alert engine (``ioc alerts run``) and the fleet (``ioc``'s simulator, less the victims),
each in its own session. Each trial: a victim tower comes online, then its link is dropped
without DISCONNECT; the broker publishes its will. Measured from the drop: (a) a subscriber of
the tower's status topic sees the will, (b) a subscriber of the alert topics sees the alert,
and for coverage_lost (c) the coverage service's own 'lost' event (its timestamp).

Measured by default: ``coverage_lost`` (the coverage service runs too; the victim is the tower
whose loss alone strands a village, dropped and restored each trial); ``--quick`` measures
``bts_offline`` (for_s = 0: its 60 s wait for grouping is policy, not latency) on 15 towers.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg

from devices.codec import encode
from devices.endpoint import MqttEndpoint
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.brokers import start_broker
from ioc.scenario import load_into
from seeds import load_scenario
from store.migrate import upgrade
from tests.databases import scratch_database

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


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 4)


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


class Watcher:
    """One MQTT client that timestamps wills and alert openings as they arrive."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.wills: dict[str, list[float]] = {}
        self.opened: list[tuple[int, float]] = []  # (alert id, when) of the measured rule
        self.resolved: list[str] = []
        self.arrived = asyncio.Event()

    async def run(self, client: aiomqtt.Client, status_of: dict[str, str]) -> None:
        async for m in client.messages:
            now = time.monotonic()
            raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
            if not raw:
                continue
            doc = json.loads(raw)
            device = status_of.get(m.topic.value)
            if device is not None:
                if doc.get("state") == "offline":
                    self.wills.setdefault(device, []).append(now)
            elif doc.get("rule") == self.rule:
                if doc.get("event") == "opened":
                    self.opened.append((doc["alert_id"], now))
                elif doc.get("event") == "resolved":
                    self.resolved.append(doc["subject"])
            self.arrived.set()

    async def until(self, predicate: Any, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self.arrived.clear()
                    await self.arrived.wait()
                return True
        return False


class Victim:
    """A tower of our own: online with a will, then its TCP link cut without DISCONNECT."""

    def __init__(self, device: Any, endpoint: MqttEndpoint, topics: Topics) -> None:
        self.device, self.endpoint, self.topics = device, endpoint, topics
        self.status_topic = topics.device(Kind.BTS, device.device_id, Channel.STATUS)
        self.client: aiomqtt.Client | None = None
        self.n = 0

    async def online(self) -> None:
        d, e = self.device, self.endpoint
        self.n += 1
        will = aiomqtt.Will(self.status_topic, encode(
            {"device_id": d.device_id, "state": "offline", "reason": "will"}), qos=1, retain=True)
        self.client = aiomqtt.Client(e.host, e.port, identifier=f"bench-{d.device_id}-{self.n}",
                                     will=will)  # fmt: skip
        await self.client.__aenter__()
        meta = self.topics.device(Kind.BTS, d.device_id, Channel.META)
        await self.client.publish(meta, encode({**d.meta, "device_id": d.device_id}), 1, True)
        status = {"device_id": d.device_id, "state": "online", "ts": datetime.now(UTC).isoformat()}
        await self.client.publish(self.status_topic, encode(status), 1, True)

    async def cut(self) -> None:
        assert self.client is not None
        client, self.client = self.client, None
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    scenario = load_scenario()
    towers = [d for d in scenario.devices() if d.kind is Kind.BTS]
    broker = start_broker(work / "broker")
    root = f"bench{uuid.uuid4().hex[:6]}/ioc/v1"
    topics = Topics(root)
    try:
        with scratch_database(args.database_url, "ioc_bench_alerts") as url:
            with psycopg.connect(url) as conn:
                upgrade(conn)
                load_into(conn)
            if args.rule == "coverage_lost":
                victims = [await stranding_tower(url, towers, work)]
            else:
                victims = towers[:: max(1, len(towers) // args.trials)][: args.trials]
            (work / "rules.toml").write_text(RULES)
            clean = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
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
                procs.append(spawn(child, env, work / "coverage.log"))
            try:
                return await trials(args, url, broker.url, topics, victims, procs, work)
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


async def stranding_tower(url: str, towers: list[Any], work: Path) -> Any:
    """The tower whose loss alone strands a village, from a coverage build (N-1 table)."""
    from processing.coverage.service import CoverageService, CoverageServiceConfig

    service = CoverageService(CoverageServiceConfig(database_url=url))
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
    if row is None:
        raise SystemExit("no tower strands a village alone: nothing to measure coverage_lost on")
    return next(t for t in towers if t.device_id == row[0])


async def _poll(url: str, sql: str, params: tuple[Any, ...], want: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute(sql, params)
            if await cur.fetchall() == want:
                return True
            await asyncio.sleep(0.05)
    return False


async def trials(args: argparse.Namespace, url: str, mqtt_url: str, topics: Topics,
                 victims: list[Any], procs: list[Any], work: Path) -> dict[str, Any]:  # fmt: skip
    endpoint = MqttEndpoint.parse(mqtt_url)
    fleet_size = args.fleet_limit or sum(1 for d in load_scenario().devices()
                                         if d.kind is not Kind.PROBE) - len(victims)  # fmt: skip
    print(f"waiting for the fleet ({fleet_size} devices) to come online …", file=sys.stderr)
    await _poll(url, "SELECT count(*) >= %s FROM devices WHERE state = 'online'",
                (int(fleet_size * 0.95),), [(True,)], 240)  # fmt: skip
    if args.rule == "coverage_lost":
        await _poll(url, "SELECT count(*) > 0 FROM coverage_places", (), [(True,)], 600)
    pool = [Victim(v, endpoint, topics) for v in victims]
    status_of = {v.status_topic: v.device.device_id for v in pool}
    watcher = Watcher(args.rule)
    will_s: list[float] = []
    alert_s: list[float] = []
    event_s: list[float] = []  # coverage_lost: the coverage service's event, from the drop
    missed: dict[str, int] = {}  # why a trial measured nothing
    windows: list[tuple[int, int]] = []  # per trial: opened messages from its drop to the next
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
            opened_before, resolved_before = len(watcher.opened), len(watcher.resolved)
            await victim.online()
            online = await _poll(url, "SELECT state FROM devices WHERE device_id = %s",
                                 (device_id,), [("online",)], TRIAL_TIMEOUT_S)  # fmt: skip
            if i and args.rule == "coverage_lost":  # the previous trial's alert has resolved
                online = online and await watcher.until(
                    lambda n=resolved_before: len(watcher.resolved) > n, TRIAL_TIMEOUT_S)
            if not online:
                missed["not ready"] = missed.get("not ready", 0) + 1
                print(f"trial {i}: victim not online or previous alert not resolved in time",
                      file=sys.stderr)  # fmt: skip
                await victim.cut()
                continue
            opened_before = len(watcher.opened)
            windows.append((opened_before, opened_before))
            wills_before = len(watcher.wills.get(device_id, []))
            t0, wall0 = time.monotonic(), datetime.now(UTC)
            await victim.cut()
            got = await watcher.until(lambda n=opened_before: len(watcher.opened) > n,
                                      TRIAL_TIMEOUT_S)  # fmt: skip
            wills = watcher.wills.get(device_id, [])
            if len(wills) > wills_before:
                will_s.append(wills[wills_before] - t0)
            if not got:
                missed["no alert"] = missed.get("no alert", 0) + 1
                print(f"trial {i}: no alert within {TRIAL_TIMEOUT_S} s", file=sys.stderr)
                continue
            alert_s.append(watcher.opened[opened_before][1] - t0)
            if args.rule == "coverage_lost":
                event_s += await _event_delay(url, wall0)
            if (i + 1) % 10 == 0:
                print(f"{i + 1}/{args.trials} trials, alert p50 {pct(alert_s, 0.5)} s",
                      file=sys.stderr)  # fmt: skip
        await asyncio.sleep(1.0)  # a late duplicate, if any, arrives within this second
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await watching
    windows[-1:] = [(w[0], len(watcher.opened)) for w in windows[-1:]]
    ids = [alert_id for alert_id, _ in watcher.opened]
    # The same alert delivered twice, or more than one alert opened for one drop.
    duplicates = len(ids) - len(set(ids)) + sum(
        max(0, len(set(ids[a:b])) - 1) for a, b in windows
    )
    p99, will_p99 = pct(alert_s, 0.99), pct(will_s, 0.99)
    return {
        "rule": args.rule,
        "trials": args.trials,
        "measured": len(alert_s),
        "fleet_devices": fleet_size,
        "speed": args.speed,
        "p50_s": pct(alert_s, 0.5),
        "p99_s": p99,
        "max_s": round(max(alert_s), 4) if alert_s else None,
        "coverage_event_p50_s": pct(event_s, 0.5),
        "coverage_event_p99_s": pct(event_s, 0.99),
        "broker_will_p50_s": pct(will_s, 0.5),
        "broker_will_p99_s": will_p99,
        "ratio_p99": round(p99 / will_p99, 1) if p99 and will_p99 else None,
        "duplicates": duplicates,
        "missed": sum(missed.values()),
        "missed_why": missed,
        "target_p99_s": 2.0,
    }


async def _event_delay(url: str, dropped_at: datetime) -> list[float]:
    """From the drop to the coverage service's 'lost' event (its own timestamp)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT min(ts) FROM coverage_events WHERE kind = 'lost'"
                                 " AND ts >= %s", (dropped_at,))  # fmt: skip
        row = await cur.fetchone()
    return [(row[0] - dropped_at).total_seconds()] if row and row[0] else []


async def coverage_child(url: str) -> None:
    from processing.coverage.service import CoverageServiceConfig, run_coverage

    await run_coverage(CoverageServiceConfig(database_url=url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 trials, 400 devices (< 1 min)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--speed", type=float, default=1.0,
                        help="fleet time acceleration (1: the normal rate, a reading a minute)")
    parser.add_argument("--fleet-limit", type=int, default=None, help="only N fleet devices")
    parser.add_argument("--database-url", default=LOCAL_PG, help="server for a scratch database")
    parser.add_argument("--rule", choices=("coverage_lost", "bts_offline"),
                        default="coverage_lost", help="the alert measured (quick: bts_offline)")
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
    if args.quick:  # a coverage build alone takes most of a minute: quick measures bts_offline
        args.trials, args.fleet_limit = min(args.trials, 15), args.fleet_limit or 400
        args.rule = "bts_offline"
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
