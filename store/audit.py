"""Read-backs that check the ingest guarantee: is every reading there, and only once?

Used by the fault tests and ``bench/ingest.py``; named queries, like the rest of ``store/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from devices.kinds import Kind
from store.tables import READING_TABLES


@dataclass(frozen=True, slots=True)
class ReadingCount:
    rows: int
    distinct: int  # distinct (device_id, seq)

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct


def reading_count(conn: psycopg.Connection, kind: Kind = Kind.BTS) -> ReadingCount:
    table = READING_TABLES[kind].name
    row = conn.execute(f"SELECT count(*), count(DISTINCT (device_id, seq)) FROM {table}").fetchone()
    return ReadingCount(int(row[0]), int(row[1])) if row else ReadingCount(0, 0)


def reading_rows(conn: psycopg.Connection, kind: Kind = Kind.BTS) -> int:
    """Rows only: cheap enough to poll during a flood (no DISTINCT)."""
    row = conn.execute(f"SELECT count(*) FROM {READING_TABLES[kind].name}").fetchone()
    return int(row[0]) if row else 0


def reading_keys(conn: psycopg.Connection, kind: Kind = Kind.BTS) -> list[tuple[str, int]]:
    """Every (device_id, seq) stored, duplicates included."""
    rows = conn.execute(f"SELECT device_id, seq FROM {READING_TABLES[kind].name}").fetchall()
    return [(str(d), int(s)) for d, s in rows]


def received_at_epoch(
    conn: psycopg.Connection, kind: Kind = Kind.BTS
) -> dict[tuple[str, int], float]:
    """When each reading's committing transaction began (``received_at``), as epoch seconds."""
    rows = conn.execute(
        f"SELECT device_id, seq, extract(epoch FROM received_at)::float8"
        f" FROM {READING_TABLES[kind].name}"
    ).fetchall()
    return {(str(d), int(s)): float(t) for d, s, t in rows}


def reject_reasons(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
    return {str(reason): int(n) for reason, n in rows}
