"""Alert latency: a tower's will → its alert on the MQTT alert topic, beside the broker's own
delivery of that will, with the simulated fleet publishing telemetry around it.

    python -m bench.alerts [--quick] [--trials 100] [--speed 60] [--database-url URL]

Starts its own broker (project config), a scratch database with the scenario, an ingester,
the alert engine (``ioc alerts run``) and the fleet (``ioc``'s simulator, less the victims),
each in its own session. Each trial: a victim tower comes online, then its link is dropped
without DISCONNECT; the broker publishes its will. Measured from the drop: (a) a subscriber of
the tower's status topic sees the will, (b) the alert row's opening time, (c) a subscriber of
the alert topics sees the alert. The rule measured is ``bts_offline`` with for_s = 0 (its
default 60 s wait for grouping is policy, not latency). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg

from devices.endpoint import MqttEndpoint
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.brokers import start_broker
from ioc.scenario import load_into
from seeds import load_scenario
from simulators.clock import SimClock
from simulators.device import SimulatedDevice
from store.migrate import upgrade

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
RULES = '[[rules]]\nname = "bts_offline"\nfor_s = 0\nkeep_firing_s = 0\n'
TRIAL_TIMEOUT_S = 15.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 4)


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    name = f"ioc_bench_alerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo("", **info)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    """One MQTT client that timestamps wills and alerts as they arrive."""

    def __init__(self) -> None:
        self.wills: dict[str, float] = {}
        self.alerts: dict[str, list[float]] = {}

    async def run(self, client: aiomqtt.Client, topics: Topics, status_of: dict[str, str]) -> None:
        async for m in client.messages:
            now = time.monotonic()
            raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
            if not raw:
                continue
            doc = json.loads(raw)
            device = status_of.get(m.topic.value)
            if device is not None:
                if doc.get("state") == "offline":
                    self.wills.setdefault(device, now)
            elif doc.get("event") == "opened":
                self.alerts.setdefault(doc["subject"], []).append(now)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    scenario = load_scenario()
    towers = [d for d in scenario.devices() if d.kind is Kind.BTS]
    victims = towers[:: max(1, len(towers) // args.trials)][: args.trials]
    broker = start_broker(work / "broker")
    root = f"bench{uuid.uuid4().hex[:6]}/ioc/v1"
    topics = Topics(root)
    try:
        with scratch_database(args.database_url) as url:
            with psycopg.connect(url) as conn:
                upgrade(conn)
                load_into(conn)
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
                (int(fleet_size * 0.95),), [(True,)], 180)  # fmt: skip
    status_of = {topics.device(Kind.BTS, v.device_id, Channel.STATUS): v.device_id
                 for v in victims}  # fmt: skip
    watcher = Watcher()
    will_s: list[float] = []
    alert_s: list[float] = []
    row_s: list[float] = []
    missed = 0
    async with aiomqtt.Client(endpoint.host, endpoint.port, identifier="bench-watch") as client:
        for topic in status_of:
            await client.subscribe(topic, qos=1)
        await client.subscribe(topics.all_alerts(), qos=1)
        watching = asyncio.create_task(watcher.run(client, topics, status_of))
        for i, victim in enumerate(victims):
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"a service died (code {p.returncode}); logs in {work}")
            device = SimulatedDevice(victim, endpoint, topics=topics, clock=SimClock(args.speed))
            device.start()
            online = await _poll(url, "SELECT state FROM devices WHERE device_id = %s",
                                 (victim.device_id,), [("online",)], TRIAL_TIMEOUT_S)  # fmt: skip
            if not online:
                missed += 1
                await device.stop()
                continue
            t0, wall0 = time.monotonic(), datetime.now(UTC)
            await device.kill()
            deadline = t0 + TRIAL_TIMEOUT_S
            while victim.device_id not in watcher.alerts and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            got = watcher.alerts.get(victim.device_id)
            if victim.device_id in watcher.wills:
                will_s.append(watcher.wills[victim.device_id] - t0)
            if not got:
                missed += 1
                continue
            alert_s.append(got[0] - t0)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                cur = await conn.execute("SELECT min(opened_at) FROM alerts WHERE subject = %s",
                                         (victim.device_id,))  # fmt: skip
                row = await cur.fetchone()
            if row and row[0]:
                row_s.append((row[0] - wall0).total_seconds())
            if (i + 1) % 10 == 0:
                print(f"{i + 1}/{len(victims)} trials, alert p50 {pct(alert_s, 0.5)} s",
                      file=sys.stderr)  # fmt: skip
        await asyncio.sleep(1.0)  # late duplicates, if any, arrive in this second
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await watching
    duplicates = sum(len(v) - 1 for v in watcher.alerts.values())
    p99 = pct(alert_s, 0.99)
    will_p99 = pct(will_s, 0.99)
    return {
        "rule": "bts_offline",
        "trials": len(victims),
        "measured": len(alert_s),
        "fleet_devices": fleet_size,
        "speed": args.speed,
        "p50_s": pct(alert_s, 0.5),
        "p99_s": p99,
        "max_s": round(max(alert_s), 4) if alert_s else None,
        "row_p50_s": pct(row_s, 0.5),
        "row_p99_s": pct(row_s, 0.99),
        "broker_will_p50_s": pct(will_s, 0.5),
        "broker_will_p99_s": will_p99,
        "ratio_p99": round(p99 / will_p99, 1) if p99 and will_p99 else None,
        "duplicates": duplicates,
        "missed": missed,
        "target_p99_s": 2.0,
        "mean_s": round(statistics.fmean(alert_s), 4) if alert_s else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 trials, 400 devices (< 1 min)")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--speed", type=float, default=60.0, help="fleet time acceleration")
    parser.add_argument("--fleet-limit", type=int, default=None, help="only N fleet devices")
    parser.add_argument("--database-url", default=LOCAL_PG, help="server for a scratch database")
    parser.add_argument("--fleet-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mqtt-url", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fleet_child:
        exclude = set(Path(args.exclude).read_text().split())
        asyncio.run(fleet_child(args.mqtt_url, args.root, args.speed, exclude, args.fleet_limit))
        return
    if args.quick:
        args.trials, args.fleet_limit = min(args.trials, 15), args.fleet_limit or 400
    with tempfile.TemporaryDirectory(prefix="ioc-bench-alerts-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
