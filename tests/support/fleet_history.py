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
from psycopg import sql

from devices.codec import Rejection, RejectReason, StatusRecord
from devices.kinds import Channel, DeviceState, Kind
from devices.topics import DEFAULT_ROOT, DeviceTopic
from ioc.configs import coverage_config
from ioc.scenario import load_into
from processing.coverage.build import build_coverage
from processing.coverage.rasters import operator_rasters
from seeds import load_scenario
from store import coverage, places
from store.coverage_rasters import CoverageRaster, write_rasters
from store.db import aconnect
from store.migrate import upgrade
from store.readings import copy_backfill, rebuild_ingest_minutes, rebuild_latest
from store.scope import NATIONAL
from store.tables import READING_TABLES
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


# The readings the pages' derived tables are rebuilt from: the last state (newer than the
# map's window) and the ingest counts (the ingest page's half hour) lie within it.
DERIVED_WINDOW = timedelta(hours=2)


def rebuild_derived(conn: psycopg.Connection) -> None:
    """What the ingest writer would have kept beside readings loaded around it."""
    rebuild_latest(conn, DERIVED_WINDOW)
    rebuild_ingest_minutes(conn, DERIVED_WINDOW)


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
        rebuild_derived(conn)
    return total


# The same values as ``_values``, as SQL over the step ``i`` and a device's ``d.n``/``d.flag``
# (its user or ONT count, and whether a tower is on battery), for server-side generation.
_SQL_VALUES = {
    Kind.BTS: "CASE WHEN d.flag THEN 'battery' ELSE 'mains' END,"
    " CASE WHEN d.flag THEN 80.0 ELSE 100.0 END, 28.0 + (i %% 1440) / 120.0,"
    " ARRAY[true, true, true], d.n + i %% 37, 35.0 + (i %% 60) / 2.0, true",
    Kind.CAMERA: "true, 25.0, 4000.0 + i %% 300, true, 60.0 - (i %% 1000) / 100.0, false",
    Kind.BROADBAND: "true, -19.5 - (i %% 10) / 10.0, d.n - i %% 7, d.n, 4.0 + i %% 5, 0.1",
}


def generate_history_sql(
    url: str,
    now: datetime,
    *,
    days: float,
    interval_s: int,
    progress: Callable[[str], None] | None = None,
) -> int:
    """What :func:`generate_history` writes for the whole fleet, generated by the server
    (``INSERT … SELECT`` over ``generate_series``, one statement per kind and day in time
    order, as readings arrive): tens of millions of rows without shipping them over a socket.
    Each reading table's indexes are dropped for the load and built again after it: the same
    indexes, built by one sort per chunk instead of tens of millions of insertions. Then what
    the writer keeps beside them (last states, ingest counts) is rebuilt."""
    steps = int(days * 86_400 / interval_s)
    start = now - timedelta(seconds=steps * interval_s)
    per_day = max(1, 86_400 // interval_s)
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, ids in fleet().items():
            rng = random.Random(1)
            offsets = [rng.uniform(0, interval_s) for _ in ids]
            counts = [rng.randint(200, 900) for _ in ids]
            flags = [rng.random() < 0.01 for _ in ids]
            table = READING_TABLES[kind]
            query = sql.SQL(
                "INSERT INTO {table} ({columns}, received_at)"
                " SELECT device_id, ts, i, {values}, ts + (0.2 + (i %% 10) / 20.0) * interval '1 s'"
                " FROM generate_series(%(first)s::int, %(last)s::int) i"
                " CROSS JOIN LATERAL (SELECT d.*, %(start)s::timestamptz"
                "   + (d.off + i * %(interval)s) * interval '1 s' AS ts"
                "   FROM unnest(%(ids)s::text[], %(offsets)s::float8[], %(counts)s::int[],"
                "               %(flags)s::bool[]) d(device_id, off, n, flag)) d"
            ).format(
                table=sql.Identifier(table.name),
                columns=sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
                values=sql.SQL(_SQL_VALUES[kind]),
            )
            args = {"start": start, "interval": interval_s, "ids": ids, "offsets": offsets,
                    "counts": counts, "flags": flags}  # fmt: skip
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = %s",
                (table.name,),
            ).fetchall()
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            for first in range(0, steps, per_day):
                last = min(first + per_day, steps) - 1
                cur = conn.execute(query, {**args, "first": first, "last": last})
                total += max(cur.rowcount, 0)
                if progress:
                    progress(f"{kind.value}: steps {first}-{last} of {steps}, {total:,} rows")
            for _, definition in indexes:
                conn.execute(definition)
            if progress:
                progress(f"{kind.value}: {len(indexes)} indexes built")
        rebuild_derived(conn)
    return total


LEVELS = {"viettel": {"4G": -92.0}, "mobifone": {"4G": -101.0}}


def queries_villages(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return places.villages(conn, scope=NATIONAL)


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
        await write_rasters(conn, await _engine_rasters(conn, now), province=52)
    finally:
        await conn.close()


async def _engine_rasters(conn: psycopg.AsyncConnection, now: datetime) -> list[CoverageRaster]:
    """The raster the coverage engine computes for the scenario with every tower serving (the
    map's coverage layer draws it), as the coverage service would store it."""
    doc = await coverage.places(conn)
    bts = await coverage.bts_registry(conn)
    built = await asyncio.to_thread(build_coverage, doc, bts, coverage_config())
    return operator_rasters(built.engine, now)
