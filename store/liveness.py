"""Liveness transitions that no message announces: silence past N intervals, and the return."""

from __future__ import annotations

from datetime import datetime

import psycopg

# A device that has sent nothing for ``missed`` reporting intervals (and at least
# ``min_silence_s``, so a short ingest stall does not flap a fast-reporting fleet) goes offline.
# SKIP LOCKED: rows the ingester is touching were just heard from, and never waiting here means
# this statement cannot deadlock with the ingester's ``last_seen`` updates.
MARK_SILENT_OFFLINE = """
WITH candidates AS (
    SELECT device_id FROM devices
    WHERE state = 'online'
      AND last_seen < %(now)s - make_interval(
          secs => greatest(interval_s * %(missed)s, %(min_silence_s)s))
    ORDER BY device_id
    FOR UPDATE SKIP LOCKED
), silent AS (
    UPDATE devices d
    SET state = 'offline', state_since = %(now)s, state_reason = 'missed_intervals'
    FROM candidates c WHERE d.device_id = c.device_id
    RETURNING d.device_id
)
INSERT INTO status_events (ts, device_id, state, reason)
SELECT %(now)s, device_id, 'offline', 'missed_intervals' FROM silent
RETURNING device_id
"""

# ...and comes back when it is heard from again (its retained status is still ``online``).
MARK_RESUMED_ONLINE = """
WITH candidates AS (
    SELECT device_id FROM devices
    WHERE state = 'offline' AND state_reason = 'missed_intervals' AND last_seen > state_since
    ORDER BY device_id
    FOR UPDATE SKIP LOCKED
), resumed AS (
    UPDATE devices d SET state = 'online', state_since = %(now)s, state_reason = 'resumed'
    FROM candidates c WHERE d.device_id = c.device_id
    RETURNING d.device_id
)
INSERT INTO status_events (ts, device_id, state, reason)
SELECT %(now)s, device_id, 'online', 'resumed' FROM resumed
RETURNING device_id
"""


async def apply_liveness(
    conn: psycopg.AsyncConnection, now: datetime, missed: int, min_silence_s: float
) -> tuple[list[str], list[str]]:
    """Returns (devices gone silent, devices resumed)."""
    params = {"now": now, "missed": missed, "min_silence_s": min_silence_s}
    async with conn.transaction():
        cur = await conn.execute(MARK_SILENT_OFFLINE, params)
        silent = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(MARK_RESUMED_ONLINE, params)
        resumed = [r[0] for r in await cur.fetchall()]
    return silent, resumed
