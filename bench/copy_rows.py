"""COPY throughput of the ingest writer: rows committed per second, first write and redelivery.

    python -m bench.copy_rows [--quick] [--database-url URL]

Creates (and drops) a scratch database on the server of ``--database-url`` (default: the local
PostgreSQL). The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from devices import Channel, Codec, Kind, Topics, encode
from store.db import aconnect, connect
from store.migrate import upgrade
from store.writer import Batch, write_batch
from tests.support.databases import scratch_database

NOW = datetime.now(UTC)


def batches(devices: int, per_device: int, batch_size: int) -> list[Batch]:
    codec, topics = Codec(), Topics()
    out: list[Batch] = [Batch()]
    for d in range(devices):
        device_id = f"BTS-B-{d:05d}"
        topic = topics.device(Kind.BTS, device_id, Channel.TELEMETRY)
        for i in range(per_device):
            body = {
                "device_id": device_id,
                "ts": (NOW - timedelta(seconds=i)).isoformat(),
                "seq": i,
                "power_source": "mains",
                "battery_pct": 99.0,
                "cabinet_temp_c": 30.1,
                "sectors_up": [True, True, True],
                "active_users": 200,
                "prb_util_pct": 40.0,
                "backhaul_up": True,
            }
            record = codec.decode(topic, encode(body), NOW).record
            assert record is not None
            if out[-1].messages >= batch_size:
                out.append(Batch())
            out[-1].readings[Kind.BTS].extend(record.items)  # type: ignore[union-attr]
            out[-1].messages += 1
    return out


async def write_all(url: str, work: list[Batch]) -> tuple[float, int, int]:
    conn = await aconnect(url)
    stored = dup = 0
    start = time.perf_counter()
    for batch in work:
        result = await write_batch(conn, batch)
        stored, dup = stored + result.stored, dup + result.duplicates
    elapsed = time.perf_counter() - start
    await conn.close()
    return elapsed, stored, dup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    devices, per_device = (100, 200) if args.quick else (1000, 200)
    with scratch_database(args.database_url, "ioc_bench_copy") as url:
        with connect(url) as conn:
            upgrade(conn)
        work = batches(devices, per_device, args.batch_size)
        rows = devices * per_device
        first_s, stored, _ = asyncio.run(write_all(url, work))
        again_s, stored_again, dup = asyncio.run(write_all(url, work))
    print(
        json.dumps(
            {
                "rows": rows,
                "batch_size": args.batch_size,
                "copy_rows_per_s": round(rows / first_s),
                "stored": stored,
                "redelivery_rows_per_s": round(rows / again_s),
                "redelivered_stored": stored_again,
                "duplicates_skipped": dup,
            }
        )
    )


if __name__ == "__main__":
    main()
