"""Liveness transitions that no message announces: silence past N intervals, and the return."""

from __future__ import annotations

from datetime import datetime

import psycopg

# A device that has sent nothing for ``missed`` reporting intervals goes offline.
MARK_SILENT_OFFLINE = """
WITH silent AS (
    UPDATE devices SET state = 'offline', state_since = %(now)s, state_reason = 'missed_intervals'
    WHERE state = 'online' AND last_seen < %(now)s - make_interval(secs => interval_s * %(missed)s)
    RETURNING device_id
)
INSERT INTO status_events (ts, device_id, state, reason)
SELECT %(now)s, device_id, 'offline', 'missed_intervals' FROM silent
RETURNING device_id
"""

# ...and comes back when it is heard from again (its retained status is still ``online``).
MARK_RESUMED_ONLINE = """
WITH resumed AS (
    UPDATE devices SET state = 'online', state_since = %(now)s, state_reason = 'resumed'
    WHERE state = 'offline' AND state_reason = 'missed_intervals' AND last_seen > state_since
    RETURNING device_id
)
INSERT INTO status_events (ts, device_id, state, reason)
SELECT %(now)s, device_id, 'online', 'resumed' FROM resumed
RETURNING device_id
"""


async def apply_liveness(
    conn: psycopg.AsyncConnection, now: datetime, missed: int
) -> tuple[list[str], list[str]]:
    """Returns (devices gone silent, devices resumed)."""
    params = {"now": now, "missed": missed}
    async with conn.transaction():
        cur = await conn.execute(MARK_SILENT_OFFLINE, params)
        silent = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(MARK_RESUMED_ONLINE, params)
        resumed = [r[0] for r in await cur.fetchall()]
    return silent, resumed
