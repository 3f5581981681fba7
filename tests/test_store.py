"""Migrations on both paths, the generated schema, and the idempotent COPY writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import Codec, Kind, Topics, encode
from devices.schemas import READING_TYPES
from store.db import Flavor, aconnect, connect
from store.migrate import MIGRATIONS, current_flavor, plan, upgrade
from store.schema_gen import GENERATED
from store.tables import READING_TABLES
from store.writer import Batch, latest_flags, write_batch

NOW = datetime.now(UTC).replace(microsecond=0)


def test_generated_migrations_match_the_declarations() -> None:
    for name, text in GENERATED.items():
        assert (MIGRATIONS / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run `python -m store.schema_gen` (and add a new migration "
            "instead if it already shipped)"
        )


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
        " ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def test_plain_postgres_migrates_twice_with_views_of_the_same_names(database_url: str) -> None:
    with connect(database_url) as conn:
        # every shipped migration once, in order (later issues add their own after 0003)
        applied = [m.version for m in upgrade(conn)]
        assert applied[:3] == [1, 2, 3]
        assert applied == sorted(applied) == [m.version for m in plan(Flavor.PLAIN)]
        assert upgrade(conn) == []
        assert current_flavor(conn) is Flavor.PLAIN
        for table in READING_TABLES.values():
            assert _columns(conn, table.name)[: len(table.columns)] == list(table.columns)
            for suffix in ("1m", "1h"):
                kind = conn.execute(
                    "SELECT table_type FROM information_schema.tables WHERE table_name = %s",
                    (table.rollup(suffix),),
                ).fetchone()
                assert kind == ("VIEW",)


@pytest.mark.timescale
def test_timescaledb_gets_hypertables_policies_and_continuous_aggregates(tsdb_url: str) -> None:
    with connect(tsdb_url) as conn:
        upgrade(conn)
        assert upgrade(conn) == []
        assert current_flavor(conn) is Flavor.TIMESCALE
        hypertables = {
            r[0]
            for r in conn.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables"
            ).fetchall()
        }
        expected = {t.name for t in READING_TABLES.values()} | {"status_events", "rejects"}
        assert hypertables == expected
        caggs = {
            r[0]
            for r in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
            ).fetchall()
        }
        assert caggs == {t.rollup(s) for t in READING_TABLES.values() for s in ("1m", "1h")}
        jobs = {
            r[0]
            for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs").fetchall()
        }
        assert {
            "policy_compression",
            "policy_retention",
            "policy_refresh_continuous_aggregate",
        } <= jobs


def _batch(readings: list[dict[str, object]], kind: Kind = Kind.BTS) -> Batch:
    codec, batch = Codec(), Batch()
    topics = Topics()
    for body in readings:
        decoded = codec.decode(
            topics.device(kind, str(body["device_id"]), _channel(kind)), encode(body), NOW
        )
        assert decoded.record is not None and not decoded.rejections
        batch.readings[kind].extend(decoded.record.items)  # type: ignore[union-attr]
        batch.messages += 1
    return batch


def _channel(kind: Kind):
    from devices import READING_CHANNEL

    return READING_CHANNEL[kind]


async def _write_twice_and_roll_up(url: str) -> None:
    with connect(url) as sync:
        upgrade(sync)
    readings = [
        {
            "device_id": "BTS-1",
            "ts": (NOW - timedelta(seconds=10 * i)).isoformat(),
            "seq": i,
            "battery_pct": 50.0 + i,
            "sectors_up": [True, True, False],
            "backhaul_up": True,
        }
        for i in range(20)
    ]
    conn = await aconnect(url)
    try:
        first = await write_batch(conn, _batch(readings))
        again = await write_batch(
            conn,
            _batch([*readings[5:], {"device_id": "BTS-1", "ts": NOW.isoformat(), "seq": 99}]),
        )
        assert (first.stored, first.duplicates) == (20, 0)
        assert (again.stored, again.duplicates) == (1, 15)
        cur = await conn.execute("SELECT count(*), min(battery_pct), max(seq) FROM telemetry_bts")
        assert await cur.fetchone() == (21, 50.0, 99)
        cur = await conn.execute("SELECT sectors_up FROM telemetry_bts WHERE seq = 0")
        assert await cur.fetchone() == ([True, True, False],)
        cur = await conn.execute(
            "SELECT sum(readings)::int FROM telemetry_bts_1m WHERE device_id = 'BTS-1'"
        )
        assert await cur.fetchone() == (21,)
    finally:
        await conn.close()


async def test_writer_is_idempotent_and_rollups_read_back_plain(database_url: str) -> None:
    await _write_twice_and_roll_up(database_url)


@pytest.mark.timescale
async def test_writer_is_idempotent_and_rollups_read_back_timescale(tsdb_url: str) -> None:
    await _write_twice_and_roll_up(tsdb_url)


flag_readings = st.lists(
    st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 5), st.integers(0, 3),
              st.one_of(st.none(), st.lists(st.booleans(), min_size=1, max_size=3)),
              st.one_of(st.none(), st.booleans())),
    max_size=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(rows=flag_readings)
def test_the_latest_flags_are_those_of_each_devices_newest_reading_that_has_them(
    rows: list[tuple[str, int, int, list[bool] | None, bool | None]],
) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    batch = Batch()
    reading = READING_TYPES[Kind.BTS]
    batch.readings[Kind.BTS] = [
        reading(device_id=d, ts=t0 + timedelta(seconds=s), seq=q, sectors_up=up, backhaul_up=bh)
        for d, s, q, up, bh in rows
    ]
    expected: dict[str, dict[str, object]] = {}
    for device in ("A", "B"):
        mine = [r for r in batch.readings[Kind.BTS] if r.device_id == device]
        row: dict[str, object] = {}
        for name in ("sectors_up", "backhaul_up"):
            having = [r for r in mine if getattr(r, name) is not None]
            if having:  # the first of the newest (ts, seq), as they arrived
                newest = max(having, key=lambda r: (r.ts, r.seq))
                row[name] = getattr(newest, name)
        if row:
            flagged = [r.ts for r in mine if r.sectors_up is not None or r.backhaul_up is not None]
            expected[device] = {"device_id": device, "ts": max(flagged), **row}
    assert {r["device_id"]: r for r in latest_flags(batch)} == expected
