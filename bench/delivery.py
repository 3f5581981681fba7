"""Alert delivery: a critical alert behind a backlog, and the drain rate.

    python -m bench.delivery [--quick] [--trials 20] [--backlog 10000] [--slow-s 2]

In a scratch database, one webhook channel's dispatcher (as ``ioc alerts run`` runs it) with
a backlog of ``--backlog`` pending deliveries (major and minor alerts, five transitions each)
to an endpoint that takes ``--slow-s`` to answer every POST, so every slot of the channel stays
busy. Each trial then queues a new critical alert (fan-out and the wake-up, as the engine does)
and measures, on the bench's clock, the time from its commit to the endpoint receiving its
POST: ``critical_first_attempt_s_p99`` (target ≤ 1 s). Then ``deliveries_per_s``: a fresh
backlog of single-transition alerts drained to an endpoint that answers at once (both
endpoints are threaded HTTP servers on loopback, in this process). The last line is one JSON
object. ``--quick`` (5 trials, 2,000 deliveries drained) ends within a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.alert_probes import pct
from ioc.configs import alert_config
from processing.alerts.delivery import WebhookChannel
from store.migrate import upgrade
from tests.support.alerting import WebhookServer
from tests.support.databases import scratch_database
from tests.support.outbox import dispatching, queue_alert, queue_alerts
from tests.support.polling import wait_until

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TRANSITIONS = 5  # per backlog alert: an alert's transitions go one at a time, in order


def utc_now() -> datetime:
    return datetime.now(UTC)


def delivered(url: str, channel: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM alert_outbox WHERE channel = %s AND delivered_at IS NOT NULL",
            (channel,),
        ).fetchone()
    return int(row[0]) if row else 0


async def critical_behind_backlog(args: argparse.Namespace, url: str) -> dict[str, Any]:
    slow = WebhookServer(delay_s=args.slow_s)
    with slow.running():
        config = alert_config(database_url=url, webhooks={"slow": slow.url})
        channel, name = WebhookChannel("slow", slow.url, args.slow_s + 5), "webhook:slow"
        per = args.backlog // TRANSITIONS
        for severity, count in (("major", per // 2), ("minor", per - per // 2)):
            await queue_alerts(url, [name], utc_now(), count=count, severity=severity,
                               transitions=TRANSITIONS, subject=f"BACKLOG-{severity}")  # fmt: skip
        waits: list[float] = []
        async with dispatching(channel, config, utc_now) as dispatcher:
            await wait_until(lambda: len(slow.attempts) >= channel.concurrency, timeout_s=30)
            for i in range(args.trials):
                alert_id = await queue_alert(url, [name], utc_now(), severity="critical",
                                             subject=f"CRITICAL-{i}")  # fmt: skip
                queued = time.monotonic()
                dispatcher.wake.set()  # as the engine's fan-out does

                def seen(alert_id: int = alert_id) -> float | None:
                    return next((t for t, b in slow.attempts if b["alert_id"] == alert_id), None)

                await wait_until(lambda: seen() is not None, timeout_s=30, every_s=0.005)
                at = seen()
                assert at is not None
                waits.append(at - queued)
                await asyncio.sleep(0.2)  # the next trial on a channel as busy as before
            busy = len(slow.attempts)
    return {
        "backlog_rows": per * TRANSITIONS,
        "slow_endpoint_s": args.slow_s,
        "trials": len(waits),
        "critical_first_attempt_s_p50": pct(waits, 0.5),
        "critical_first_attempt_s_p99": pct(waits, 0.99),
        "critical_first_attempt_s_max": round(max(waits), 4),
        "slow_endpoint_posts": busy,
    }


async def drain_rate(args: argparse.Namespace, url: str) -> dict[str, Any]:
    fast = WebhookServer()
    with fast.running():
        config = alert_config(database_url=url, webhooks={"fast": fast.url})
        channel, name = WebhookChannel("fast", fast.url, 10.0), "webhook:fast"
        await queue_alerts(url, [name], utc_now(), count=args.drain, subject="FAST")
        started = time.monotonic()
        async with dispatching(channel, config, utc_now):
            await wait_until(lambda: delivered(url, name) >= args.drain, timeout_s=300)
        took = time.monotonic() - started
    return {"drained": args.drain, "deliveries_per_s": round(args.drain / took, 1)}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_database(args.database_url, "ioc_bench_delivery") as url:
        with psycopg.connect(url) as conn:
            upgrade(conn)
        result = {"bench": "delivery"} | await critical_behind_backlog(args, url)
        return result | await drain_rate(args, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 trials, 2,000 drained")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=10_000, help="pending deliveries")
    parser.add_argument("--slow-s", type=float, default=2.0, help="the slow endpoint's answer")
    parser.add_argument("--drain", type=int, default=10_000, help="deliveries drained, fast")
    parser.add_argument("--database-url", default=LOCAL_PG, help="server for a scratch database")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.drain = min(args.trials, 5), min(args.drain, 2000)
    print(json.dumps(asyncio.run(measure(args))))


if __name__ == "__main__":
    main()
