"""Battery runway against the simulators' own battery model (issue 18's acceptance): in the
typhoon scenario, the forecast of each village's loss made 30 simulated minutes before it is
within 10 % of when it happened, and every lost village was forecast before it was lost.

    python -m bench.runway [--quick] [--speed 120] [--hours 9.5]

Starts its own broker, a scratch database with the Bình Định scenario, an ingester and the
coverage service (``ioc ingest``, ``ioc coverage run``, each its own process), then plays
scenarios/typhoon_landfall.yaml (its BTS and broadband nodes: cameras hold no coverage) through
``simulators.runner.run_plan`` in a child process, and polls ``place_runway`` ('any') every
``--poll-s`` real seconds. Payload ts are wall-clock, so the drain appears in real time at
``speed`` x; the runway's settings are the defaults (its fit waits for a clear fall of the
charge, not for a span of time, so it needs no scaling by the speed). The loss of a village is
its first 'lost' coverage event (all operators lost). The observation ends at ``--hours``
simulated (before the fleet stops, whose sign-off would read as a blackout).

For each lost village: error = |forecast - actual| / lead, for the forecast in force 30
simulated minutes before the loss (lead = actual - the moment of that forecast); lead time =
from the first forecast to the loss, simulated seconds. ``--quick``: one district (Quy Nhơn),
every tower there on battery with 5-18 % charge, at 240x, 1.6 h simulated.
The last line is one JSON object: forecast_error_p50, forecast_error_p90, lead_time_s_p50,
villages_forecast, villages_lost, and more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

from devices.topics import Topics
from ioc.brokers import start_broker
from ioc.scenario import load_into
from store.migrate import upgrade
from tests.support.databases import scratch_database
from tests.support.environment import clean_environ
from tests.support.polling import wait_until
from tests.support.runway_watch import ForecastLog, lost_villages, score

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "typhoon_landfall.yaml"
TIMELINE_OVER = "timeline over"
LOGS: dict[str, Path] = {}  # each child's log, to show when one fails


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def plan_doc(quick: bool) -> dict[str, Any]:
    """The typhoon without cameras (no coverage rests on them) and so without its fibre cut;
    --quick: one district."""
    doc: dict[str, Any] = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    doc["fleet"]["kinds"] = ["bts", "broadband"]
    # The fibre cut reaches the cameras behind its node, which are not in this fleet.
    doc["events"] = [e for e in doc["events"] if e.get("kinds") != ["camera"]
                     and not str(e["event"]).startswith("fibre_")]  # fmt: skip
    for event in doc["events"]:  # a district's events, to the kinds in the fleet
        if "district" in event or "districts" in event:
            event.setdefault("kinds", doc["fleet"]["kinds"])
    if quick:
        doc["name"] += " (quick: Quy Nhơn)"
        doc["fleet"]["districts"] = ["Quy Nhơn"]
        doc["events"] = [{"at": "0s", "event": "power_cut", "districts": ["Quy Nhơn"],
                          "kinds": ["bts", "broadband"], "share": 1.0,
                          "battery_pct": [5, 18]}]  # fmt: skip
    return doc


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    LOGS[log.name] = log
    return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


async def fleet_child(plan_path: str, mqtt_url: str, root: str, speed: float, hours: float) -> None:
    """Plays the plan to ``hours`` simulated, then keeps the fleet as it is until killed."""
    import dataclasses

    from devices.endpoint import MqttEndpoint
    from simulators.runner import run_plan
    from simulators.scenarios import load_plan

    plan = dataclasses.replace(load_plan(plan_path), duration_s=hours * 3600)
    await run_plan(plan, MqttEndpoint.parse(mqtt_url), topics=Topics(root), speed=speed,
                   keep_running=True, report=lambda line: print(line, flush=True))  # fmt: skip


def last_readings(url: str, since: datetime) -> dict[str, datetime]:
    """Per lost village, the last reading of the towers whose loss made the 'lost' event."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.village_id, max(r.ts) FROM (SELECT DISTINCT ON (village_id) village_id,"
            " ts, towers FROM coverage_events WHERE kind = 'lost' AND ts >= %s"
            " ORDER BY village_id, ts) e, unnest(e.towers) t(device_id)"
            " CROSS JOIN LATERAL (SELECT max(b.ts) AS ts FROM telemetry_bts b"
            " WHERE b.device_id = t.device_id AND b.ts <= e.ts) r GROUP BY e.village_id",
            (since,),
        ).fetchall()
    return {v: ts for v, ts in rows if ts is not None}


def _scalar(url: str, sql: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return row[0] if row else None


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.monotonic()
    doc = plan_doc(args.quick)
    speed = args.speed or (240.0 if args.quick else float(doc["speed"]))
    hours = args.hours or (1.6 if args.quick else 9.5)
    plan_path = work / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    broker = start_broker(work / "broker")
    root = Topics.under(f"bench{uuid.uuid4().hex[:6]}").root
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with scratch_database(args.database_url, "ioc_bench_runway") as url:
            with psycopg.connect(url) as conn:
                upgrade(conn)
                load_into(conn)
            env = {**clean_environ(), "IOC_DATABASE_URL": url, "IOC_MQTT_URL": broker.url,
                   "IOC_TOPIC_ROOT": root, "IOC_INGEST_METRICS_PORT": "0",
                   "IOC_COVERAGE_METRICS_PORT": "0", "IOC_COVERAGE_UNKNOWN_GRACE_S": "0",
                   "IOC_COVERAGE_RUNWAY_EVERY_S": str(args.every_s)}  # fmt: skip
            procs.append(spawn(["-m", "ioc", "ingest"], env, work / "ingest.log"))
            procs.append(spawn(["-m", "ioc", "coverage", "run"], env, work / "coverage.log"))
            # Its first picture is written (towers not heard from yet serve nothing: grace 0).
            await wait_until(lambda: bool(_scalar(url, "SELECT count(*) FROM coverage_places")),
                             300, every_s=0.5)  # fmt: skip
            say(f"coverage ready after {time.monotonic() - started:.0f} s; the fleet starts")
            fleet_log = work / "fleet.log"
            procs.append(spawn(["-m", "bench.runway", "--fleet-child", str(plan_path), "--mqtt-url",
                                broker.url, "--root", root, "--speed", str(speed), "--hours",
                                str(hours)], env, fleet_log))  # fmt: skip
            since = datetime.now(UTC)
            log, stop = ForecastLog(), asyncio.Event()
            watching = asyncio.create_task(log.watch(url, stop, args.poll_s))

            def timeline_over() -> bool:
                if any(p.poll() is not None for p in procs):
                    tails = "\n".join(f"--- {n}\n{f.read_text(errors='replace')[-1500:]}"
                                      for n, f in LOGS.items())  # fmt: skip
                    raise SystemExit(f"a process ended early:\n{tails}")
                return TIMELINE_OVER in fleet_log.read_text(encoding="utf-8", errors="replace")

            await wait_until(timeline_over, 120 + hours * 3600 / speed * 1.5, every_s=0.5)
            stop.set()
            await watching
            lost = lost_villages(url, since)
            last_reading = last_readings(url, since)
            sites = _scalar(url, "SELECT count(*) FROM site_runway")
            methods = _scalar(url, "SELECT json_object_agg(method, n) FROM (SELECT method,"
                                   " count(*) n FROM site_runway GROUP BY method) m")  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
    result = score(log, lost, speed)
    # The pipeline's share of the lateness: from the last reading of the village's last tower
    # (the one at 0 %, after which it went dark) to the loss event, simulated seconds.
    detect = sorted((lost[v] - at).total_seconds() * speed for v, at in last_reading.items())
    worst = sorted(result["errors"], key=result["errors"].get)[-3:]
    result["worst"] = {v: {"error": result["errors"][v],
                           "detect_s": round((lost[v] - last_reading[v]).total_seconds() * speed)}
                       for v in worst if v in last_reading}  # fmt: skip
    result["detect_s_p50"] = round(statistics.median(detect), 1) if detect else None
    result["detect_s_max"] = round(max(detect), 1) if detect else None
    return {**result, "speed": speed, "sim_hours": hours, "polls": log.polls,
            "sites_on_battery_at_end": sites, "methods_at_end": methods,
            "wall_s": round(time.monotonic() - started, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one district, 240x, 1.6 h simulated")
    ap.add_argument("--speed", type=float, default=None, help="default: the scenario's (120)")
    ap.add_argument("--hours", type=float, default=None, help="simulated hours observed")
    ap.add_argument("--every-s", type=float, default=0.5, help="runway recomputed this often")
    ap.add_argument("--poll-s", type=float, default=0.2, help="place_runway polled this often")
    ap.add_argument("--database-url", default=LOCAL_PG)
    ap.add_argument("--fleet-child", metavar="PLAN", help=argparse.SUPPRESS)
    ap.add_argument("--mqtt-url", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.fleet_child:
        asyncio.run(fleet_child(args.fleet_child, args.mqtt_url, args.root, args.speed,
                                args.hours))  # fmt: skip
        return
    # Stopped from outside: still stop the services, the broker and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="ioc-bench-runway-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    errors = result.pop("errors")
    say("per village error (fraction of lead): " + json.dumps(errors))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
