"""The ingest write path: one transaction per batch, binary COPY, idempotent on (device, ts, seq).

Readings are copied into a per-connection staging table and moved with
``INSERT … ON CONFLICT DO NOTHING``, so a batch redelivered after a crash stores nothing twice.
The caller acknowledges the batch's MQTT messages only after :func:`write_batch` returns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from devices.codec import MetaRecord, Rejection, StatusRecord
from devices.kinds import Kind
from store.registry import UPSERT_DEVICE, device_row
from store.tables import READING_TABLES

_STAGED: set[tuple[int, str]] = set()


@dataclass(slots=True)
class Batch:
    readings: dict[Kind, list[Any]] = field(default_factory=lambda: defaultdict(list))
    metas: list[MetaRecord] = field(default_factory=list)
    statuses: list[StatusRecord] = field(default_factory=list)
    rejections: list[tuple[datetime, Rejection]] = field(default_factory=list)
    messages: int = 0

    def __len__(self) -> int:
        return self.messages


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: int
    duplicates: int
    rejected: int
    state_changes: int


async def _ensure_staging(conn: psycopg.AsyncConnection, table: str) -> str:
    stage = f"stage_{table}"
    key = (id(conn), table)
    if key not in _STAGED:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        _STAGED.add(key)
    return stage


async def _copy_readings(conn: psycopg.AsyncConnection, kind: Kind, items: list[Any]) -> int:
    table = READING_TABLES[kind]
    stage = await _ensure_staging(conn, table.name)
    cur = conn.cursor()
    columns = ", ".join(table.columns)
    async with cur.copy(f"COPY {stage} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(table.copy_types))
        for item in items:
            await copy.write_row(msgspec.structs.astuple(item))
    await cur.execute(f"INSERT INTO {table.name} SELECT * FROM {stage} ON CONFLICT DO NOTHING")
    return cur.rowcount


async def _apply_status(conn: psycopg.AsyncConnection, status: StatusRecord) -> bool:
    cur = await conn.execute(
        "WITH changed AS ("
        " UPDATE devices SET state = %(state)s, state_since = %(ts)s, state_reason = %(reason)s,"
        "   last_seen = CASE WHEN %(state)s = 'online' THEN now() ELSE last_seen END"
        " WHERE device_id = %(id)s AND state IS DISTINCT FROM %(state)s"
        "   AND (state_since IS NULL OR state_since <= %(ts)s)"
        " RETURNING device_id)"
        " INSERT INTO status_events (ts, device_id, state, reason)"
        " SELECT %(ts)s, device_id, %(state)s, %(reason)s FROM changed",
        {
            "id": status.source.device_id,
            "state": status.state.value,
            "ts": status.ts,
            "reason": status.reason,
        },
    )
    return cur.rowcount > 0


async def _copy_rejections(
    conn: psycopg.AsyncConnection, rejections: list[tuple[datetime, Rejection]]
) -> None:
    cur = conn.cursor()
    sql = "COPY rejects (received_at, reason, topic, device_id, detail, payload) FROM STDIN"
    async with cur.copy(sql + " (FORMAT BINARY)") as copy:
        copy.set_types(["timestamptz", "text", "text", "text", "text", "bytea"])
        for received_at, r in rejections:
            row = (received_at, r.reason.value, r.topic, r.device_id, r.detail, r.payload)
            await copy.write_row(row)


async def write_batch(conn: psycopg.AsyncConnection, batch: Batch) -> WriteResult:
    """Store a batch in one transaction; returns what was stored and what was already there."""
    stored = copied = changes = 0
    async with conn.transaction():
        for meta in batch.metas:
            await conn.execute(UPSERT_DEVICE, device_row(meta.source.kind, meta.document))
        for status in batch.statuses:
            changes += await _apply_status(conn, status)
        seen: list[str] = []
        for kind, items in batch.readings.items():
            if items:
                copied += len(items)
                stored += await _copy_readings(conn, kind, items)
                seen.extend({item.device_id for item in items})
        if seen:
            await conn.execute(
                "UPDATE devices SET last_seen = now() WHERE device_id = ANY(%s)", (seen,)
            )
        if batch.rejections:
            await _copy_rejections(conn, batch.rejections)
    return WriteResult(stored, copied - stored, len(batch.rejections), changes)
