"""The load and the yardsticks of ``bench/ingest.py``: the flood publishers started in step,
the broker's own delivery rate to ``mosquitto_sub -q 1`` (and from ``mosquitto_pub``), and the
CPU and memory of the processes measured."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from devices import Channel, Codec, Kind
from devices.topics import Topics
from store.db import aconnect
from store.writer import Batch, WriteMode, write_batch
from tests.support.flood import BASE_TS, reading
from tests.support.mosquitto_cli import client, session
from tests.support.procs import (
    RestartableBroker,
    flood_database,
    start_flood,
)

PUBLISHERS = 4
DEVICES = 250  # per publisher: 1,000 devices in all


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Flood:
    """PUBLISHERS publishers, built, then started together; ``t0`` is when they were told."""

    def __init__(
        self,
        url: str,
        root: str,
        messages: int,
        work: Path,
        per_message: int = 1,
        rate: float | None = None,
    ):
        self.messages, self.per_message = messages, per_message
        self.go = work / f"go-{uuid.uuid4().hex[:6]}"
        self.times = [work / f"times-{p}-{uuid.uuid4().hex[:6]}.json" for p in range(PUBLISHERS)]
        self.procs = [
            start_flood(
                url,
                root,
                publisher=p,
                devices=DEVICES,
                messages=messages // PUBLISHERS,
                per_message=per_message,
                times_path=self.times[p],
                go_path=self.go,
                rate=rate / PUBLISHERS if rate else None,
            )
            for p in range(PUBLISHERS)
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            if line != "ready":
                raise RuntimeError(f"publisher did not start: {line!r}")
        self.t0 = time.time()
        self.go.touch()

    def finish(self) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            stdout, stderr = proc.communicate(timeout=3600)
            if proc.returncode:
                raise RuntimeError(f"publisher failed: {stderr.decode()[-1000:]}")
            out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
        return out

    def send_times(self) -> list[np.ndarray]:
        """Per publisher: the send time of each of its messages (that of its chunk)."""
        out = []
        for path in self.times:
            marks = json.loads(path.read_text())
            starts = np.array([i for i, _ in marks])
            when = np.array([t for _, t in marks])
            index = np.arange(self.messages // PUBLISHERS)
            out.append(when[np.searchsorted(starts, index, side="right") - 1])
        return out


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout_s:.0f}s")
        time.sleep(0.05)
    return time.time()


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds of each PostgreSQL process now (backends come and go during a phase)."""
    return {
        p.pid: cpu_s([p.pid]) for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"
    }


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reference_subscriber(
    broker: RestartableBroker, root: str, messages: int
) -> subprocess.Popen[bytes]:
    """``mosquitto_sub -q 1`` on a persistent session made before anything is published; it
    exits once it has received ``messages``."""
    sub = session(broker.port, f"ref-{root[:9]}", root)
    subprocess.run([*sub, "-E"], check=True, timeout=30)
    return subprocess.Popen(
        [*sub, "-C", str(messages)], stdout=subprocess.DEVNULL, start_new_session=True
    )


def broker_reference(broker: RestartableBroker, messages: int, work: Path) -> float:
    root = Topics.under(f"ref{uuid.uuid4().hex[:6]}").root
    receiver = reference_subscriber(broker, root, messages)
    flood = Flood(broker.url, root, messages, work)
    end = wait_for(lambda: receiver.poll() is not None, 3600, "mosquitto_sub")
    flood.finish()
    return messages / (end - flood.t0)


def mosquitto_pub_reference(broker: RestartableBroker, messages: int) -> float:
    root = Topics.under(f"pub{uuid.uuid4().hex[:6]}").root
    receiver = reference_subscriber(broker, root, messages)
    payload = json.dumps(reading("BTS-F0-0000", 1))
    t0 = time.time()
    pubs = [
        subprocess.Popen(
            [
                *client("mosquitto_pub", broker.port),
                "-t",
                f"{root}/bts/BTS-P{p}/telemetry",
                "-m",
                payload,
                "--repeat",
                str(messages // PUBLISHERS),
                "--repeat-delay",
                "0",
            ],
            start_new_session=True,
        )
        for p in range(PUBLISHERS)
    ]
    end = wait_for(lambda: receiver.poll() is not None, 3600, "mosquitto_sub")
    for pub in pubs:
        pub.wait()
    return messages / (end - t0)


# -- the writer's two ways -----------------------------------------------------------------


def writer_modes(server_url: str, rows: int) -> dict[str, float]:
    codec, topics, now = Codec(), Topics(), datetime.now(UTC)
    batches: list[Batch] = []
    for i in range(rows):
        if not batches or batches[-1].messages >= 1000:
            batches.append(Batch())
        device = f"BTS-W-{i % 1000:04d}"
        body = {**reading(device, i // 1000), "ts": (BASE_TS + timedelta(seconds=i)).isoformat()}
        record = codec.decode(
            topics.device(Kind.BTS, device, Channel.TELEMETRY), json.dumps(body).encode(), now
        ).record
        batches[-1].readings[Kind.BTS].extend(record.items)  # type: ignore[union-attr]
        batches[-1].messages += 1

    async def write_all(url: str, mode: WriteMode) -> float:
        conn = await aconnect(url)
        start = time.perf_counter()
        for batch in batches:
            await write_batch(conn, batch, mode=mode)
        elapsed = time.perf_counter() - start
        await conn.close()
        return rows / elapsed

    out: dict[str, float] = {}
    for mode in (WriteMode.DIRECT, WriteMode.STAGED):
        with flood_database(server_url, PUBLISHERS, DEVICES, "ioc_bench_ingest") as url:
            out[f"{mode.value}_rows_per_s"] = round(asyncio.run(write_all(url, mode)))
            if mode is WriteMode.DIRECT:  # everything again: the fallback path, all duplicates
                out["redelivery_rows_per_s"] = round(asyncio.run(write_all(url, mode)))
    return out
