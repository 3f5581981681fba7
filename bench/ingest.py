"""Ingest end to end, against the broker's own delivery rate, in one run on one broker.

    python -m bench.ingest [--quick] [--messages N] [--database-url URL]

(a) the broker's QoS 1 delivery rate to a C subscriber (``mosquitto_sub -q 1``): the reference;
(b) one ingester (``python -m ioc ingest``), publish to committed row, at-least-once path;
(c) ``ioc ingest --instances 2`` on the shared subscription;
(d) devices that batch: 50 readings per message, readings committed per second, and (d1) the
    same with one writer, so the gain of overlapping commits (``IOC_INGEST_WRITERS``) shows;
(f) the drain: readings queued on the broker for the ingester's offline session, then the time
    to commit them all (its start-up, measured on an empty queue, taken off), beside
    ``mosquitto_sub -q 1`` draining the same queue: the ingester's own capacity, where the
    flood phases are bound by the Python publishers;
(g) peak RSS of an ingester rejecting floods of 1 MB payloads and of 60 KB topics, at two
    flood sizes (both past the byte window): the same peak twice is flat;
plus the writer's two ways (direct COPY, staged ON CONFLICT) on the same batches.

Every phase publishes the same ~220-byte BTS readings at QoS 1 from 4 parallel publishers
(``tests/support/flood.py``: distinct (device, seq) per message, built before the clock starts, each
in its own session like the broker and the services). ``mosquitto_pub --repeat`` repeats one
payload (the writer would store it once) and tops out near 5,000 msg/s here, so it only
gives a second reference, ``broker_msgs_per_s_mosquitto_pub``. Throughput is messages over the
time from the publishers' start to the last message received (a) or committed (b–d); every
(device, seq) is then checked: ``lost`` and ``duplicated`` count the misses and the doubles.
Latency is from a reading's send (its publisher's chunk) to its row's ``received_at`` (the
start of the transaction that committed it). Under (b)'s flood it is mostly queueing (the
publishers outrun everyone), so (e) publishes at half of (b)'s rate for a while and gives
``p50_ms``/``p99_ms``; the flood's own figures are ``flood_p50_ms``/``flood_p99_ms``.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg

from bench.ingest_load import (
    DEVICES,
    PUBLISHERS,
    Flood,
    broker_reference,
    cpu_s,
    log,
    mosquitto_pub_reference,
    postgres_cpu_s,
    rss_mb,
    wait_for,
    writer_modes,
)
from devices import Topics
from ioc.settings import Settings
from store.audit import reading_count, received_at_epoch
from tests.support.mosquitto_cli import client, session
from tests.support.procs import (
    IngesterProcess,
    RestartableBroker,
    flood_database,
)

PER_MESSAGE = 50  # readings per message in (d)
# The shipped IOC_INGEST_BATCH_SIZE.
BATCH = Settings.defaults().ingest.batch_size


# -- (b), (c), (d): the ingester -----------------------------------------------------------


def ingest_run(
    broker: RestartableBroker,
    server_url: str,
    messages: int,
    work: Path,
    *,
    instances: int = 1,
    per_message: int = 1,
    latency: bool = False,
    rate: float | None = None,
    writers: int = 2,
) -> dict[str, Any]:
    root = Topics.under(f"ing{uuid.uuid4().hex[:6]}").root
    readings = messages * per_message
    with flood_database(server_url, PUBLISHERS, DEVICES, "ioc_bench_ingest") as url:
        ing = IngesterProcess(
            database_url=url,
            mqtt_url=broker.url,
            topic_root=root,
            client_id=f"bench-{root[:9]}",
            log_dir=work,
            batch_size=BATCH,
            batch_age_s=0.2,
            instances=instances,
            writers=writers,
        ).start()
        try:
            wait_for(lambda: all(ing.subscribed(i) for i in range(instances)), 60, "ingester")
            assert ing.process is not None
            root_pid = ing.process.pid
            pids = [root_pid] + [c.pid for c in psutil.Process(root_pid).children()]
            pg0 = postgres_cpu_s()
            cpu0 = (cpu_s(pids), cpu_s([broker.running.process.pid]))
            rss: list[float] = []

            def stored() -> int:
                answers = [ing.health(i) for i in range(instances)]
                rss.append(sum(rss_mb(pid) for pid in pids[-instances:]))
                return sum(h["stored"] for h in answers if h)

            flood = Flood(broker.url, root, messages, work, per_message, rate)
            publisher_cpu = cpu_s([p.pid for p in flood.procs])
            end = wait_for(lambda: stored() >= readings, 3600, "ingester")
            publisher_cpu = cpu_s([p.pid for p in flood.procs]) - publisher_cpu
            flood.finish()
            cpu1 = (cpu_s(pids), cpu_s([broker.running.process.pid]))
            pg_s = sum(t - pg0.get(pid, 0.0) for pid, t in postgres_cpu_s().items())
            healths = [h for i in range(instances) if (h := ing.health(i))]
            peak = sum(rss_mb(pid, "VmHWM") for pid in pids[-instances:])
            assert ing.terminate() == 0, ing.log_tail()
        finally:
            ing.close()
        with psycopg.connect(url) as conn:
            count = reading_count(conn)
            at = received_at_epoch(conn) if latency else {}
    out: dict[str, Any] = {
        "rate": readings / (end - flood.t0),
        "lost": readings - count.distinct,
        "duplicated": count.duplicated,
        "peak_rss_mb": round(peak, 1),
        "rss_mb_samples": [round(x, 1) for x in rss[:: max(1, len(rss) // 8)]],
        "cpu_s": {
            "ingester": round(cpu1[0] - cpu0[0], 1),
            "broker": round(cpu1[1] - cpu0[1], 1),
            "postgres_all": round(pg_s, 1),
            "publishers": round(publisher_cpu, 1),
        },
        "profile_s": {
            k: round(sum(h["profile_s"][k] for h in healths), 2)
            for k in ("receive", "decode", "write", "ack")
        },
        "wall_s": round(end - flood.t0, 1),
    }
    if latency:
        sent = flood.send_times()
        lat = []
        for (device, seq), committed in at.items():
            p, d = int(device.split("-")[1][1:]), int(device.split("-")[2])
            lat.append(committed - sent[p][seq * DEVICES + d])
        ms = np.array(lat) * 1000
        out["p50_ms"], out["p99_ms"] = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return out


# -- (f) the drain: a queue already on the broker --------------------------------------------


def drain_run(
    broker: RestartableBroker,
    server_url: str,
    messages: int,
    work: Path,
    writers: int = 2,
    batch_size: int = BATCH,
) -> dict[str, Any]:
    """``messages`` readings queued for the ingester's offline session and for a
    ``mosquitto_sub -q 1`` session beside it; then each drains its queue. The flood phases are
    bound by the Python publishers; this is the ingester's own capacity."""
    root = Topics.under(f"drn{uuid.uuid4().hex[:6]}").root
    sub = session(broker.port, f"dref-{root[:9]}", root)
    subprocess.run([*sub, "-E"], check=True, timeout=30)
    with flood_database(server_url, PUBLISHERS, DEVICES, "ioc_bench_ingest") as url:
        ing = IngesterProcess(database_url=url, mqtt_url=broker.url, topic_root=root,
                              client_id=f"drain-{root[:9]}", log_dir=work,
                              batch_size=batch_size, batch_age_s=0.2, writers=writers)  # fmt: skip
        try:
            # Its session exists before anything is queued; the start-up, on an empty queue,
            # is measured here and taken off the drain below.
            t0 = time.time()
            ing.start()
            startup_s = wait_for(ing.subscribed, 60, "ingester") - t0
            assert ing.terminate() == 0, ing.log_tail()
            Flood(broker.url, root, messages, work).finish()  # all of it queued, twice
            t0 = time.time()
            subprocess.run([*sub, "-C", str(messages)], check=True, stdout=subprocess.DEVNULL,
                           timeout=3600)  # fmt: skip
            reference_s = time.time() - t0
            t0 = time.time()
            pg0 = postgres_cpu_s()
            ing.start()
            assert ing.process is not None
            pid = ing.process.pid
            cpu: list[float] = []

            def stored() -> bool:
                cpu[:] = [cpu_s([pid])]  # while it lives
                h = ing.health()
                return bool(h and h["stored"] >= messages)

            drain_s = wait_for(stored, 3600, "ingester drain") - t0 - startup_s
            pg_s = sum(t - pg0.get(p, 0.0) for p, t in postgres_cpu_s().items())
            peak = rss_mb(pid, "VmHWM")
            profile = (ing.health() or {}).get("profile_s", {})
            assert ing.terminate() == 0, ing.log_tail()
        finally:
            ing.close()
        with psycopg.connect(url) as conn:
            count = reading_count(conn)
    return {"drain_msgs_per_s": messages / drain_s,
            "drain_reference_msgs_per_s": messages / reference_s,
            "startup_s": round(startup_s, 2), "peak_rss_mb": round(peak, 1), "profile_s": profile,
            "cpu_s": {"ingester": round(cpu[0], 1), "postgres_all": round(pg_s, 1),
                      "wall": round(drain_s + startup_s, 1)},
            "lost": messages - count.distinct, "duplicated": count.duplicated}  # fmt: skip


# -- (g) memory under hostile floods ---------------------------------------------------------


def hostile_rss(
    broker: RestartableBroker,
    server_url: str,
    work: Path,
    *,
    topic: str,
    payload: bytes,
    messages: int,
) -> float:
    """Peak RSS (MB) of an ingester that rejects ``messages`` copies of one hostile message
    (``topic`` under its root, after ``{root}/``)."""
    root = Topics.under(f"hst{uuid.uuid4().hex[:6]}").root
    path = work / f"payload-{uuid.uuid4().hex[:6]}"
    path.write_bytes(payload)
    with flood_database(server_url, 1, 1, "ioc_bench_ingest") as url:
        ing = IngesterProcess(database_url=url, mqtt_url=broker.url, topic_root=root,
                              client_id=f"hostile-{root[:9]}", log_dir=work, batch_size=BATCH,
                              batch_age_s=0.2).start()  # fmt: skip
        try:
            wait_for(ing.subscribed, 60, "ingester")
            subprocess.run([*client("mosquitto_pub", broker.port), "-t", f"{root}/{topic}",
                            "-f", str(path), "--repeat", str(messages), "--repeat-delay", "0"],
                           check=True, timeout=600)  # fmt: skip

            def settled() -> bool:
                h = ing.health()
                return bool(h and h["received"] >= messages)

            wait_for(settled, 600, "ingester")
            assert ing.process is not None
            peak = rss_mb(ing.process.pid, "VmHWM")
            assert ing.terminate() == 0, ing.log_tail()
        finally:
            ing.close()
    return round(peak, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about 20,000 messages a phase")
    parser.add_argument("--messages", type=int, help="messages (and readings in (d)) a phase")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    messages = args.messages or (20_000 if args.quick else 1_000_000)
    messages -= messages % (PUBLISHERS * PER_MESSAGE)
    if messages <= 0:
        raise SystemExit(f"bench: --messages must be at least {PUBLISHERS * PER_MESSAGE}")
    broker = RestartableBroker()
    try:
        with tempfile.TemporaryDirectory(prefix="ioc-bench-ingest-") as tmp:
            work = Path(tmp)
            log(f"(a) broker → mosquitto_sub, {messages:,} messages")
            broker_rate = broker_reference(broker, messages, work)
            log(f"    {broker_rate:,.0f} msg/s")
            pub_messages = min(messages, 20_000 if args.quick else 100_000)
            log(f"(a') the same from mosquitto_pub --repeat, {pub_messages:,} messages")
            pub_rate = mosquitto_pub_reference(broker, pub_messages)
            log(f"    {pub_rate:,.0f} msg/s")
            log(f"(b) one ingester, {messages:,} messages")
            one = ingest_run(broker, args.database_url, messages, work, latency=True)
            details = json.dumps({k: v for k, v in one.items() if k != "rate"})
            log(f"    {one['rate']:,.0f} msg/s, {details}")
            paced_rate = one["rate"] / 2
            paced_messages = int(paced_rate * (10 if args.quick else 60)) // PUBLISHERS * PUBLISHERS
            log(f"(e) one ingester at {paced_rate:,.0f} msg/s (half of (b)), {paced_messages:,}")
            paced = ingest_run(
                broker, args.database_url, paced_messages, work, latency=True, rate=paced_rate
            )
            log(f"    p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms")
            log(f"(c) two ingesters on the shared subscription, {messages:,} messages")
            two = ingest_run(broker, args.database_url, messages, work, instances=2)
            log(f"    {two['rate']:,.0f} msg/s, lost {two['lost']}, duplicated {two['duplicated']}")
            batched_messages = messages // PER_MESSAGE
            log(f"(d) {batched_messages:,} messages of {PER_MESSAGE} readings")
            batched = ingest_run(
                broker, args.database_url, batched_messages, work, per_message=PER_MESSAGE
            )
            log(f"    {batched['rate']:,.0f} readings/s")
            log("(d1) the same with one writer (IOC_INGEST_WRITERS=1): no commit overlaps")
            batched_one = ingest_run(
                broker,
                args.database_url,
                batched_messages,
                work,
                per_message=PER_MESSAGE,
                writers=1,
            )
            log(f"    {batched_one['rate']:,.0f} readings/s")
            drain_messages = 20_000 if args.quick else 300_000
            log(f"(f) drain: {drain_messages:,} readings queued, ingester vs mosquitto_sub")
            drain = drain_run(broker, args.database_url, drain_messages, work)
            log(f"    {drain}")
            # Flat means: the peak does not grow with the flood once it exceeds the window.
            floods = 400 if args.quick else 800
            rss: dict[str, list[float]] = {"large_payloads": [], "long_topics": []}
            for n in (floods // 2, floods):
                log(f"(g) peak RSS: {n} payloads of 1 MB, {n * 10} topics of 60 KB")
                rss["large_payloads"].append(
                    hostile_rss(
                        broker,
                        args.database_url,
                        work,
                        messages=n,
                        topic="bts/BTS-F0-0000/telemetry",
                        payload=b"x" * 1_000_000,
                    )
                )
                rss["long_topics"].append(
                    hostile_rss(
                        broker,
                        args.database_url,
                        work,
                        messages=n * 10,
                        topic=f"bts/BTS-F0-0000/telemetry/{'x' * 60_000}",
                        payload=b"{}",
                    )
                )
                log(f"    1 MB payloads: {rss['large_payloads'][-1]} MB, long topics: "
                    f"{rss['long_topics'][-1]} MB")  # fmt: skip
            writer_rows = 20_000 if args.quick else 100_000
            log(f"writer: direct COPY vs staged INSERT … ON CONFLICT, {writer_rows:,} rows")
            writer = writer_modes(args.database_url, writer_rows)
            log(f"    {writer}")
    finally:
        broker.cleanup()
    result = {
        "messages": messages,
        "broker_msgs_per_s": round(broker_rate),
        "broker_msgs_per_s_mosquitto_pub": round(pub_rate),
        "ingest_msgs_per_s": round(one["rate"]),
        "ratio": round(one["rate"] / broker_rate, 3),
        "shared2_msgs_per_s": round(two["rate"]),
        "shared2_ratio": round(two["rate"] / broker_rate, 3),
        "batched_readings_per_s": round(batched["rate"]),
        "batched_one_writer_readings_per_s": round(batched_one["rate"]),
        "batched_cpu_s": batched["cpu_s"],
        "p50_ms": round(paced["p50_ms"], 1),
        "p99_ms": round(paced["p99_ms"], 1),
        "paced_msgs_per_s": round(paced["rate"]),
        "flood_p50_ms": round(one["p50_ms"], 1),
        "flood_p99_ms": round(one["p99_ms"], 1),
        "peak_rss_mb": one["peak_rss_mb"],
        "drain_msgs_per_s": round(drain["drain_msgs_per_s"]),
        "drain_reference_msgs_per_s": round(drain["drain_reference_msgs_per_s"]),
        "drain_ratio": round(drain["drain_msgs_per_s"] / drain["drain_reference_msgs_per_s"], 3),
        "drain_peak_rss_mb": drain["peak_rss_mb"],
        # [half the flood, the whole flood]: the same figure twice is flat.
        "peak_rss_mb_large_payloads": rss["large_payloads"],
        "peak_rss_mb_long_topics": rss["long_topics"],
        "rss_mb_samples": one["rss_mb_samples"],
        "lost": sum(r["lost"] for r in (one, paced, two, batched, batched_one, drain)),
        "duplicated": sum(r["duplicated"] for r in (one, paced, two, batched, batched_one, drain)),
        "cpu_s": one["cpu_s"],
        "profile_s": one["profile_s"],
        "shared2_cpu_s": two["cpu_s"],
        "writer": writer,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
