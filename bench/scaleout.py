"""Ingest throughput with 1, 2 and 3 ingesters on the shared subscription, in one run.

    python -m bench.scaleout [--quick] [--messages N] [--max-ingesters 3] [--writers 2,1]

Each round: a fresh database, N distinct ~200-byte QoS 1 readings from two flood publishers
(tests/support/flood.py) into the project's Mosquitto, k ``python -m ioc ingest --shared``
processes; the rate is N over the time from the first publish to the last committed row. Every
round also checks that each reading is stored exactly once. Rounds run 1..k then k..1 (unless
--quick) and the best of each k is kept: the machine is shared and noisy, so the ratios
between rounds of one run mean more than any absolute figure. Each pass is run with every
``--writers`` value (``IOC_INGEST_WRITERS`` of each ingester): more ingesters help only while
one of them is slower than the cores it could have, and the two passes show whether that is so
on this host (on 2 shared cores it was not, with either count). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from devices.topics import Topics
from ioc.brokers import start_broker
from store.audit import reading_count
from tests.support.databases import stored_readings
from tests.support.environment import harness
from tests.support.polling import wait_until
from tests.support.procs import (
    IngesterProcess,
    finish_flood,
    flood_database,
    start_flood,
)

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
PUBLISHERS, DEVICES = 2, 50
ROOT = Topics.under("bench").root


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def one_round(server: str, mqtt_url: str, ingesters: int, writers: int, messages: int,
                    logs: Path) -> float:  # fmt: skip
    with flood_database(server, PUBLISHERS, DEVICES, "ioc_bench_scaleout") as url:
        return await _round(url, mqtt_url, ingesters, writers, messages, logs)


async def _round(
    url: str, mqtt_url: str, ingesters: int, writers: int, messages: int, logs: Path
) -> float:
    run = uuid.uuid4().hex[:6]
    # A topic root per round: the previous round's persistent sessions stay in the shared
    # group after their processes are gone, and Mosquitto keeps queueing their share to them.
    root = f"{run}/{ROOT}"
    procs = [IngesterProcess(database_url=url, mqtt_url=mqtt_url, topic_root=root,
                             client_id=f"bench-{run}-{i}", log_dir=logs, shared=True,
                             batch_size=1000, batch_age_s=0.2, writers=writers).start()
             for i in range(ingesters)]  # fmt: skip
    try:
        for p in procs:
            await wait_until(p.subscribed, timeout_s=60)
        floods = [
            start_flood(
                mqtt_url, root, publisher=p, devices=DEVICES, messages=messages // PUBLISHERS
            )
            for p in range(PUBLISHERS)
        ]
        results = [await finish_flood(f, timeout_s=600) for f in floods]
        await wait_until(lambda: stored_readings(url) >= messages, timeout_s=600)
        done = time.time()
        with psycopg.connect(url) as conn:
            count = reading_count(conn)
        if (count.distinct, count.duplicated) != (messages, 0):
            raise SystemExit(f"round with {ingesters}: {count} for {messages} sent")
        return float(messages / (done - min(r["start"] for r in results)))
    finally:
        for p in procs:
            p.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one pass of 20,000 messages")
    parser.add_argument("--messages", type=int, help="readings per round")
    parser.add_argument("--max-ingesters", type=int, default=3)
    parser.add_argument(
        "--writers",
        default="2,1",
        help="IOC_INGEST_WRITERS values to run, comma-separated (first: the JSON's readings_per_s)",
    )
    args = parser.parse_args()
    writer_counts = [int(w) for w in args.writers.split(",")]
    messages = args.messages or (20_000 if args.quick else 200_000)
    server = harness().bench_database_url or LOCAL_PG
    counts = list(range(1, args.max_ingesters + 1))
    order = counts if args.quick else counts + counts[::-1]
    best: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="ioc-bench-scaleout-") as tmp:
        os.chmod(tmp, 0o755)
        broker = start_broker(Path(tmp) / "broker")
        try:
            for w in writer_counts:
                for k in order:
                    rate = await one_round(server, broker.url, k, w, messages, Path(tmp))
                    log(f"{k} ingester(s), {w} writer(s) each: {rate:,.0f} readings/s committed")
                    best[k, w] = max(best.get((k, w), 0.0), rate)
        finally:
            broker.stop()

    def table(w: int) -> dict[str, int]:
        return {str(k): round(best[k, w]) for k in counts}

    def ratios(w: int) -> dict[str, float]:
        return {str(k): round(best[k, w] / best[1, w], 2) for k in counts}

    first, *others = writer_counts
    print(json.dumps({
        "messages_per_round": messages,
        "cores": os.cpu_count(),
        "writers": first,
        "readings_per_s": table(first),
        "ratio_vs_one": ratios(first),
        **{f"writers_{w}": {"readings_per_s": table(w), "ratio_vs_one": ratios(w)}
           for w in others},
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
