"""The last-state tables (migration 0017): the ingest writer keeps each device's newest reading,
a late or redelivered reading never replaces it, every reading is still stored, the map reads
it, and only the ingester writes it. Likewise the writer's per-minute ingest counts, which the
ingest page and the map's ingest health read. On plain PostgreSQL and TimescaleDB."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devices.kinds import Kind
from devices.schemas import READING_TYPES
from store.db import aconnect, connect
from store.migrate import upgrade
from store.readings import (
    LATEST_WINDOW,
    ingest_health,
    ingest_series,
    latest_table,
    rebuild_ingest_minutes,
    rebuild_latest,
)
from store.registry import device_row, map_devices, register_devices
from store.scope import NATIONAL
from store.tables import READING_TABLES
from store.writer import Batch, newest_readings, write_batch

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW as each test starts: the readings' ages are measured against the clock (lag), and a
    module-wide NOW is minutes old by the time a full suite reaches this file."""
    monkeypatch.setattr(sys.modules[__name__], "NOW", datetime.now(UTC).replace(microsecond=0))


SITE = {"lat": 14.0, "lon": 109.0, "name": "test", "operator": "viettel"}


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def url(request: pytest.FixtureRequest) -> str:
    """A migrated database with two towers, on plain PostgreSQL or TimescaleDB."""
    name = "database_url" if request.param == "postgresql" else "tsdb_url"
    url = str(request.getfixturevalue(name))
    with connect(url) as conn:
        upgrade(conn)
        register_devices(conn, [device_row(Kind.BTS, {"device_id": d, **SITE}) for d in "AB"])
    return url


def bts(device_id: str, age_s: float, seq: int, battery: float) -> Any:
    return READING_TYPES[Kind.BTS](
        device_id=device_id, ts=NOW - timedelta(seconds=age_s), seq=seq, battery_pct=battery
    )


async def write(url: str, *items: Any) -> None:
    batch = Batch()
    batch.readings[Kind.BTS] = list(items)
    batch.messages = len(items)
    conn = await aconnect(url)
    try:
        await write_batch(conn, batch)
    finally:
        await conn.close()


def last_state(url: str) -> dict[str, tuple[datetime, int, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT device_id, ts, seq, battery_pct FROM telemetry_bts_latest"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM telemetry_bts").fetchone()
    return int(row[0]) if row else -1


def test_the_newest_reading_of_a_batch_is_chosen_by_time_then_sequence() -> None:
    items = [bts("B", 5, 1, 1.0), bts("A", 10, 7, 2.0), bts("A", 5, 2, 3.0),
             bts("A", 5, 3, 4.0), bts("A", 5, 3, 5.0), bts("B", 60, 9, 6.0)]  # fmt: skip
    newest = newest_readings(items)
    # in device order; of equal (ts, seq) the first that arrived
    assert [(r["device_id"], r["seq"], r["battery_pct"]) for r in newest] == [
        ("A", 3, 4.0),
        ("B", 1, 1.0),
    ]


async def test_each_device_keeps_its_newest_reading_whatever_the_order(url: str) -> None:
    await write(url, bts("A", 30, 1, 10.0), bts("A", 10, 3, 30.0), bts("A", 20, 2, 20.0),
                bts("B", 40, 1, 40.0))  # fmt: skip
    state = last_state(url)
    assert {d: s[1:] for d, s in state.items()} == {"A": (3, 30.0), "B": (1, 40.0)}
    assert state["A"][0] == NOW - timedelta(seconds=10)
    assert stored(url) == 4

    await write(url, bts("A", 5, 4, 50.0))  # newer: replaces A's, leaves B's
    assert {d: s[1:] for d, s in last_state(url).items()} == {"A": (4, 50.0), "B": (1, 40.0)}


async def test_a_late_or_redelivered_reading_is_stored_but_not_the_last_state(url: str) -> None:
    await write(url, bts("A", 10, 5, 50.0))
    await write(url, bts("A", 300, 1, 1.0))  # late: taken before the stored state
    await write(url, bts("A", 10, 4, 2.0))  # the same time, an earlier sequence number
    assert last_state(url)["A"][1:] == (5, 50.0)
    assert stored(url) == 3

    # a redelivery of the newest (its batch goes the staged way) changes nothing
    await write(url, bts("A", 10, 5, 50.0), bts("A", 300, 1, 1.0))
    assert last_state(url)["A"][1:] == (5, 50.0)
    assert stored(url) == 3

    await write(url, bts("A", 10, 6, 60.0))  # the same time, a later sequence number
    assert last_state(url)["A"][1:] == (6, 60.0)


async def test_the_map_reads_the_last_state_within_its_window(url: str) -> None:
    old = LATEST_WINDOW.total_seconds() + 60
    await write(url, bts("A", 20, 1, 35.0), bts("B", old, 1, 90.0))
    with connect(url) as conn:
        conn.execute("DELETE FROM telemetry_bts")  # proves the map does not search the readings
        conn.commit()
        devices = {d.device_id: d for d in map_devices(conn, NOW, scope=NATIONAL)}
    assert devices["A"].latest is not None and devices["A"].latest["battery_pct"] == 35.0
    assert devices["B"].latest is None  # silent for longer than the window: no latest reading


async def test_rebuild_fills_the_last_state_from_stored_readings(url: str) -> None:
    await write(url, bts("A", 20, 1, 35.0), bts("A", 10, 2, 36.0))
    with connect(url) as conn:
        conn.execute("DELETE FROM telemetry_bts_latest")
        rebuild_latest(conn)
        conn.commit()
    assert last_state(url)["A"][1:] == (2, 36.0)


async def test_the_writer_counts_what_it_stores_per_minute_of_arrival(url: str) -> None:
    await write(url, bts("A", 30, 1, 1.0), bts("B", 10, 1, 1.0))
    await write(url, bts("A", 30, 1, 1.0), bts("A", 20, 2, 1.0))  # one already stored
    with connect(url) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        series = ingest_series(conn, now)
        health = ingest_health(conn, now)
        counted = series[-1]["messages"] if series else 0
        conn.execute("DELETE FROM ingest_minutes")
        rebuild_ingest_minutes(conn)
        rebuilt = ingest_series(conn, now)
    assert sum(s["messages"] for s in series) == 3 == stored(url)
    assert counted >= 1  # the writes may straddle a minute
    # lag is arrival minus reading time: 10 to 30 seconds here, and NOW is a little before now
    assert series[-1]["lag_s"] is not None and 10 <= series[-1]["lag_s"] < 120
    assert health.lag_s is not None and health.messages_per_s > 0
    assert sum(s["messages"] for s in rebuilt) == 3


def test_only_the_ingester_writes_the_last_state_and_the_dashboard_reads_it(url: str) -> None:
    with connect(url) as conn:
        for table in [*(latest_table(k) for k in READING_TABLES), "ingest_minutes"]:

            def can(role: str, privilege: str, table: str = table) -> bool:
                row = conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                ).fetchone()
                return bool(row and row[0])

            assert all(can("ioc_ingest", p) for p in ("SELECT", "INSERT", "UPDATE"))
            assert can("ioc_ingest", "DELETE") == (table == "ingest_minutes")  # its pruning
            assert can("ioc_dashboard", "SELECT")
            for role in ("ioc_dashboard", "ioc_processing", "ioc_coverage", "ioc_alerts"):
                assert not any(can(role, p) for p in ("INSERT", "UPDATE", "DELETE")), role
