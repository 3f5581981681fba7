"""The ingest write path: one transaction per batch, binary COPY, idempotent on (device, ts, seq).

Readings are copied straight into their table inside a savepoint (``WriteMode.DIRECT``): the
common case, a batch seen for the first time, costs one COPY. When the batch holds a reading
that is already stored (a redelivery after a crash) the unique index refuses the COPY, the
savepoint rolls back and the batch goes the idempotent way: COPY into a staging table, then
``INSERT … ON CONFLICT DO NOTHING``. ``WriteMode.STAGED`` always goes that way
(``bench/ingest.py`` measures both). The caller acknowledges the batch's MQTT messages only
after :func:`write_batch` returns.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from devices.codec import MetaRecord, Rejection, StatusRecord
from devices.kinds import Kind
from devices.metrics import SERVING_FLAGS
from store.arrays import register_array_dumpers
from store.readings import latest_table, upsert_latest
from store.registry import UPSERT_DEVICE, device_row
from store.tables import READING_TABLES, ReadingTable

# Temporary tables live as long as their connection: remember which ones each has made.
_STAGED: weakref.WeakKeyDictionary[psycopg.AsyncConnection, set[str]] = weakref.WeakKeyDictionary()

# What a reject row keeps of a payload, a topic and a detail (migration 0010).
REJECT_PAYLOAD_PREFIX = 1024
REJECT_TEXT_PREFIX = 512

# Errors that a retry of the whole batch clears: the database is not down, two writers met.
TRANSIENT_ERRORS: tuple[type[psycopg.Error], ...] = (
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.LockNotAvailable,
)

# ``last_seen`` at one-second resolution: a batch does not rewrite the rows of devices heard
# from a moment ago, and SKIP LOCKED means two ingesters never wait on (or deadlock over) them.
_TOUCH_DEVICES = """
UPDATE devices d SET last_seen = now()
FROM (SELECT device_id FROM devices
      WHERE device_id = ANY(%s) AND (last_seen IS NULL OR last_seen < now() - interval '1 second')
      ORDER BY device_id FOR UPDATE SKIP LOCKED) AS due
WHERE d.device_id = due.device_id
"""

# A status changes the current state only when it is newer than the state it replaces; an
# older one (late, replayed) is kept as history, once. An undated one (a retained bare status
# replayed on subscribing) only sets a state never known.
_APPLY_STATUS = """
WITH changed AS (
    UPDATE devices SET state = %(state)s, state_since = %(ts)s, state_reason = %(reason)s,
        last_seen = CASE WHEN %(state)s = 'online' THEN now() ELSE last_seen END
    WHERE device_id = %(id)s AND state IS DISTINCT FROM %(state)s
      AND (state_since IS NULL OR state = 'unknown'
           OR (%(dated)s AND state_since <= %(ts)s))
    RETURNING device_id),
history AS (
    SELECT device_id FROM devices
    WHERE device_id = %(id)s AND %(dated)s AND state_since > %(ts)s
      AND NOT EXISTS (SELECT 1 FROM status_events e WHERE e.device_id = %(id)s
                      AND e.ts = %(ts)s AND e.state = %(state)s))
INSERT INTO status_events (ts, device_id, state, reason)
SELECT %(ts)s, device_id, %(state)s, %(reason)s FROM changed
UNION ALL
SELECT %(ts)s, device_id, %(state)s, %(reason)s || ' (late)' FROM history
"""


# The latest serving flags per device (migration 0009). New devices get a row; a known one is
# rewritten only when a flag changed and the reading is newer than the stored change, so a
# steady fleet writes (and locks) nothing here. A flag a reading leaves out keeps its value.
_FLAGS_RECORDSET = """
SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(device_id text, ts timestamptz,
    sectors_up boolean[], backhaul_up boolean, uplink_up boolean) ORDER BY device_id
"""
_INSERT_FLAGS = f"INSERT INTO device_flags {_FLAGS_RECORDSET} ON CONFLICT (device_id) DO NOTHING"
_UPDATE_FLAGS = f"""
UPDATE device_flags f SET ts = r.ts, sectors_up = coalesce(r.sectors_up, f.sectors_up),
    backhaul_up = coalesce(r.backhaul_up, f.backhaul_up),
    uplink_up = coalesce(r.uplink_up, f.uplink_up)
FROM ({_FLAGS_RECORDSET}) r
WHERE f.device_id = r.device_id AND f.ts < r.ts
  AND (f.sectors_up, f.backhaul_up, f.uplink_up) IS DISTINCT FROM
      (coalesce(r.sectors_up, f.sectors_up), coalesce(r.backhaul_up, f.backhaul_up),
       coalesce(r.uplink_up, f.uplink_up))
"""


# Readings stored this minute by this connection (migration 0017); the first count of a
# minute also prunes counts past two days, skipping any another writer is pruning.
_COUNT_MINUTE = """
WITH counted AS (
    INSERT INTO ingest_minutes AS m (minute, writer, messages, lag_sum_s)
    VALUES (date_bin(interval '1 minute', now(), timestamptz '2000-01-01'), pg_backend_pid(),
            %(n)s, %(n)s * extract(epoch FROM now())::float8 - %(ts_sum)s::float8)
    ON CONFLICT (minute, writer) DO UPDATE SET messages = m.messages + EXCLUDED.messages,
        lag_sum_s = m.lag_sum_s + EXCLUDED.lag_sum_s
    RETURNING xmax = 0 AS fresh)
DELETE FROM ingest_minutes WHERE (SELECT fresh FROM counted)
  AND (minute, writer) IN (SELECT minute, writer FROM ingest_minutes
                           WHERE minute < now() - interval '2 days' FOR UPDATE SKIP LOCKED)
"""


class WriteMode(StrEnum):
    DIRECT = "direct"  # COPY into the table; the staged way only when a duplicate is met
    STAGED = "staged"  # always COPY into staging, then INSERT … ON CONFLICT DO NOTHING


@dataclass(slots=True)
class Batch:
    readings: dict[Kind, list[Any]] = field(default_factory=lambda: defaultdict(list))
    metas: list[MetaRecord] = field(default_factory=list)
    statuses: list[StatusRecord] = field(default_factory=list)
    rejections: list[tuple[datetime, Rejection]] = field(default_factory=list)
    messages: int = 0
    outbound: int = 0  # messages on the service's own topics: acknowledged, nothing stored

    def __len__(self) -> int:
        return self.messages


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: int
    duplicates: int
    rejected: int
    state_changes: int
    fallbacks: int = 0  # tables whose direct COPY met a stored reading


async def _ensure_staging(conn: psycopg.AsyncConnection, table: str) -> str:
    stage = f"stage_{table}"
    made = _STAGED.setdefault(conn, set())
    if table not in made:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        made.add(table)
    return stage


async def _copy(
    cur: psycopg.AsyncCursor[Any], into: str, table: ReadingTable, items: list[Any]
) -> None:
    columns = ", ".join(table.columns)
    async with cur.copy(f"COPY {into} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(table.copy_types))
        astuple = msgspec.structs.astuple
        for item in items:
            await copy.write_row(astuple(item))


async def _copy_staged(conn: psycopg.AsyncConnection, table: ReadingTable, items: list[Any]) -> int:
    stage = await _ensure_staging(conn, table.name)
    cur = conn.cursor()
    await _copy(cur, stage, table, items)
    # Each kind's staging table is filled once per batch; ON COMMIT DELETE ROWS empties it.
    await cur.execute(f"INSERT INTO {table.name} SELECT * FROM {stage} ON CONFLICT DO NOTHING")
    return max(cur.rowcount, 0)


async def _copy_readings(
    conn: psycopg.AsyncConnection, kind: Kind, items: list[Any], mode: WriteMode
) -> tuple[int, bool]:
    """Rows stored, and whether the direct way fell back to the staged one."""
    table = READING_TABLES[kind]
    if mode is WriteMode.DIRECT:
        try:
            async with conn.transaction():  # a savepoint inside the batch's transaction
                await _copy(conn.cursor(), table.name, table, items)
            return len(items), False
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            pass
    return await _copy_staged(conn, table, items), mode is WriteMode.DIRECT


def _prefix(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


async def _copy_rejections(
    conn: psycopg.AsyncConnection, rejections: list[tuple[datetime, Rejection]]
) -> None:
    """One row per rejection, holding what it takes to recognise the payload (its first
    REJECT_PAYLOAD_PREFIX bytes, size and SHA-256), never all of it: a device's rejected
    bytes cannot fill the disk faster than its accepted ones."""
    cur = conn.cursor()
    sql = ("COPY rejects (received_at, reason, topic, device_id, detail, payload, payload_size,"
           " payload_sha256) FROM STDIN (FORMAT BINARY)")  # fmt: skip
    async with cur.copy(sql) as copy:
        copy.set_types(["timestamptz", "text", "text", "text", "text", "bytea", "int4", "bytea"])
        for received_at, r in rejections:
            payload = r.payload
            await copy.write_row((
                received_at, r.reason.value, _prefix(r.topic, REJECT_TEXT_PREFIX),
                r.device_id, _prefix(r.detail, REJECT_TEXT_PREFIX),
                payload[:REJECT_PAYLOAD_PREFIX], len(payload), hashlib.sha256(payload).digest(),
            ))  # fmt: skip


def latest_flags(batch: Batch) -> list[dict[str, Any]]:
    """Per device, each serving flag's value in its newest reading of the batch that has it."""
    out: dict[str, dict[str, Any]] = {}
    for kind, names in SERVING_FLAGS.items():
        # device → flag → (ts, seq) of the reading its value came from; one pass, every
        # reading of the batch (this runs for each reading stored).
        newest: dict[str, dict[str, tuple[datetime, int]]] = {}
        for item in batch.readings.get(kind, ()):
            when = None
            for name in names:
                value = getattr(item, name)
                if value is None:
                    continue
                device = item.device_id
                seen = newest.setdefault(device, {})
                when = when or (item.ts, item.seq)
                if name in seen and seen[name] >= when:
                    continue
                seen[name] = when
                row = out.get(device)
                if row is None:
                    row = out[device] = {"device_id": device, "ts": item.ts}
                elif item.ts > row["ts"]:
                    row["ts"] = item.ts
                row[name] = value
    return list(out.values())


async def _write_flags(conn: psycopg.AsyncConnection, batch: Batch) -> None:
    rows = latest_flags(batch)
    if rows:
        doc = msgspec.json.encode(rows).decode()
        await conn.execute(_INSERT_FLAGS, (doc,))
        await conn.execute(_UPDATE_FLAGS, (doc,))


def newest_readings(items: list[Any]) -> list[dict[str, Any]]:
    """Each device's newest reading of the batch (by ts, then seq), as column → value, in
    device order."""
    newest: dict[str, Any] = {}
    for item in items:
        known = newest.get(item.device_id)
        if known is None or (item.ts, item.seq) > (known.ts, known.seq):
            newest[item.device_id] = item
    return [msgspec.structs.asdict(newest[d]) for d in sorted(newest)]


async def _write_latest(conn: psycopg.AsyncConnection, kind: Kind, items: list[Any]) -> None:
    """One upsert per kind and batch into its last-state table (migration 0017); ``now()``
    stamps arrival as the reading tables' default does."""
    table = latest_table(kind)
    rows = sql.SQL(
        "SELECT {columns}, now() FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
        " ORDER BY device_id"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in READING_TABLES[kind].columns),
        table=sql.Identifier(table),
    )
    doc = msgspec.json.encode(newest_readings(items)).decode()
    await conn.execute(upsert_latest(kind, rows), (doc,))


async def write_batch(
    conn: psycopg.AsyncConnection, batch: Batch, *, mode: WriteMode = WriteMode.DIRECT
) -> WriteResult:
    """Store a batch in one transaction; returns what was stored and what was already there."""
    stored = copied = changes = fallbacks = 0
    register_array_dumpers(conn)  # a dictionary entry each: cheaper than remembering the conn
    async with conn.transaction():
        for meta in batch.metas:
            await conn.execute(UPSERT_DEVICE, device_row(meta.source.kind, meta.document))
        for status in batch.statuses:
            cur = await conn.execute(
                _APPLY_STATUS,
                {
                    "id": status.source.device_id,
                    "state": status.state.value,
                    "ts": status.ts,
                    "reason": status.reason,
                    "dated": status.dated,
                },
            )
            changes += cur.rowcount > 0
        seen: set[str] = set()
        ts_sum = 0.0  # of the readings stored, epoch seconds (a kind's mean where some were not)
        for kind, items in batch.readings.items():
            if items:
                copied += len(items)
                rows, fell_back = await _copy_readings(conn, kind, items, mode)
                stored += rows
                fallbacks += fell_back
                ts_sum += rows * sum(i.ts.timestamp() for i in items) / len(items)
                await _write_latest(conn, kind, items)
                seen.update(item.device_id for item in items)
        if stored:
            await conn.execute(_COUNT_MINUTE, {"n": stored, "ts_sum": ts_sum})
        if seen:
            await _write_flags(conn, batch)
            await conn.execute(_TOUCH_DEVICES, (sorted(seen),))
        if batch.rejections:
            await _copy_rejections(conn, batch.rejections)
    return WriteResult(stored, copied - stored, len(batch.rejections), changes, fallbacks)


async def registered_among(conn: psycopg.AsyncConnection, device_ids: list[str]) -> set[str]:
    """Which of these devices the registry knows (another ingester may have just added them)."""
    cur = await conn.execute(
        "SELECT device_id FROM devices WHERE device_id = ANY(%s)", (device_ids,)
    )
    return {row[0] for row in await cur.fetchall()}


async def prune_rejects(conn: psycopg.AsyncConnection) -> int:
    """Delete rejects past their retention where no policy does it (plain PostgreSQL,
    migration 0010); returns how many went."""
    cur = await conn.execute("SELECT prune_rejects()")
    row = await cur.fetchone()
    await conn.commit()
    return int(row[0]) if row else 0
