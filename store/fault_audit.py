"""Read-backs of the fault suite beyond ``store/audit.py``: the timestamps readings were
stored with (a skewed device clock must keep its own, not the ingester's)."""

from __future__ import annotations

from datetime import datetime

import psycopg

from devices.kinds import Kind
from store.tables import READING_TABLES


def reading_times(
    conn: psycopg.Connection, kind: Kind = Kind.BTS
) -> dict[tuple[str, int], datetime]:
    """(device_id, seq) → the reading's own timestamp, as stored."""
    rows = conn.execute(f"SELECT device_id, seq, ts FROM {READING_TABLES[kind].name}").fetchall()
    return {(str(d), int(s)): ts for d, s, ts in rows}
