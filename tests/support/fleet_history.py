"""Synthetic history for the dashboard's tests and benchmark: the scenario loaded, every device
online (a few not), and N days of telemetry for the whole fleet copied in with realistic
arrival times. States and rejects go through the ingest writer, as the ingester's would."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg

from devices.codec import Rejection, RejectReason, StatusRecord
from devices.kinds import Channel, DeviceState, Kind
from devices.topics import DEFAULT_ROOT, DeviceTopic
from ioc.scenario import load_into
from seeds import load_scenario
from store import coverage, places
from store.db import aconnect
from store.migrate import upgrade
from store.readings import copy_backfill
from store.writer import Batch, write_batch

FLEET_KINDS = (Kind.BTS, Kind.CAMERA, Kind.BROADBAND)

TELEMETRY_TOPIC = f"{DEFAULT_ROOT}/bts/x/telemetry"


def fleet() -> dict[Kind, list[str]]:
    ids: dict[Kind, list[str]] = {k: [] for k in FLEET_KINDS}
    for device in load_scenario().devices():
        if device.kind in ids:
            ids[device.kind].append(device.meta["device_id"])
    return ids


def load_scenario_db(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        return load_into(conn)


def set_states(
    url: str,
    now: datetime,
    states: dict[str, DeviceState],
    rejects: int = 0,
) -> None:
    """Device states and ``rejects`` sample rejections, through the ingest writer."""
    batch = Batch()
    kinds = {device_id: kind for kind, ids in fleet().items() for device_id in ids}
    for device_id, state in states.items():
        kind = kinds[device_id]
        batch.statuses.append(
            StatusRecord(DeviceTopic(kind, device_id, Channel.STATUS), state, now, "test")
        )
    reasons = list(RejectReason)
    for i in range(rejects):
        reason = reasons[i % len(reasons)]
        payload = b'{"device_id": "BTS-VTL-0001", "ts": "not a time"' if i % 2 else b"\xff\xfe"
        batch.rejections.append(
            (now - timedelta(seconds=i), Rejection(reason, f"sample {i}", TELEMETRY_TOPIC,
                                                   payload, "BTS-VTL-0001"))
        )  # fmt: skip

    async def write() -> None:
        conn = await aconnect(url)
        try:
            await write_batch(conn, batch)
        finally:
            await conn.close()

    asyncio.run(write())


def _values(kind: Kind, rng: random.Random) -> Callable[[int], tuple[Any, ...]]:
    """A function of the step number giving one reading's metric values (declaration order)."""
    if kind is Kind.BTS:
        users, on_battery = rng.randint(50, 900), rng.random() < 0.01
        return lambda i: ("battery" if on_battery else "mains", 80.0 if on_battery else 100.0,
                          28.0 + (i % 1440) / 120, [True, True, True], users + i % 37,
                          35.0 + (i % 60) / 2, True)  # fmt: skip
    if kind is Kind.CAMERA:
        return lambda i: (True, 25.0, 4000.0 + i % 300, True, 60.0 - (i % 1000) / 100, False)
    onts = rng.randint(200, 900)
    return lambda i: (True, -19.5 - (i % 10) / 10, onts - i % 7, onts, 4.0 + i % 5, 0.1)


def history_rows(
    kind: Kind, device_ids: list[str], start: datetime, steps: int, interval_s: int, seed: int = 1
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for device_id in device_ids:
        values = _values(kind, rng)
        offset = rng.uniform(0, interval_s)  # devices do not all report on the same second
        for i in range(steps):
            ts = start + timedelta(seconds=offset + i * interval_s)
            received = ts + timedelta(seconds=0.2 + (i % 10) / 20)
            yield (device_id, ts, i, *values(i), received)


def generate_history(
    url: str,
    now: datetime,
    *,
    days: float,
    interval_s: int,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """``days`` of readings every ``interval_s`` for the fleet (first ``limit`` of each kind),
    ending at ``now``; returns the rows written."""
    steps = int(days * 86_400 / interval_s)
    start = now - timedelta(seconds=steps * interval_s)
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, ids in fleet().items():
            chosen = ids[:limit] if limit else ids
            with conn.transaction():
                total += copy_backfill(
                    conn, kind, history_rows(kind, chosen, start, steps, interval_s)
                )
            if progress:
                progress(f"{kind.value}: {len(chosen)} devices × {steps} readings, {total:,} rows")
    return total


LEVELS = {"viettel": {"4G": -92.0}, "mobifone": {"4G": -101.0}}


def queries_villages(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return places.villages(conn)


async def write_sample_coverage(url: str, now: datetime) -> None:
    """Verdicts as the coverage engine stores them: the seed villages dead, the rest covered."""
    conn = await aconnect(url)
    known = await coverage.places(conn)
    villages = {v["village_id"]: v for v in queries_villages(url)}
    places = [
        {"place_kind": "village", "place_id": v["village_id"], "name": v["name"],
         "district_code": v["district_code"], "commune_code": v["commune_code"],
         "population": v["population"], "measured": [], "unknown": [], "ts": now,
         "operators": [] if v["seed_dead_spot"] else ["viettel", "mobifone"],
         "dead_spot": v["seed_dead_spot"],
         "levels": {} if v["seed_dead_spot"] else LEVELS}
        for v in villages.values()
    ] + [
        {"place_kind": "commune", "place_id": str(c["code"]), "name": c["name"],
         "district_code": c["district_code"], "commune_code": c["code"], "population": 0,
         "measured": [], "unknown": [], "ts": now, "operators": ["viettel"], "dead_spot": False,
         "levels": {}}
        for c in known["communes"]
    ]  # fmt: skip
    try:
        await coverage.write_coverage(conn, places=places, history=[], events=[])
        critical = {"device_id": fleet()[Kind.BTS][0], "operator": "viettel",
                    "population_all": 850, "villages_all": 2,
                    "population_operator": 1900, "villages_operator": 4}  # fmt: skip
        await coverage.write_critical(conn, [critical], now)
    finally:
        await conn.close()
