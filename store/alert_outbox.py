"""The alert outbox: every transition, once fanned out, waits here per channel ('mqtt',
'webhook:NAME') until that channel has delivered it. Rows survive any restart; a channel
delivers an alert's transitions in their order, and different alerts independently.

Silences act at fan-out: a transition of a silenced alert is marked suppressed and gets no
outbox rows, except a resolution of an alert whose earlier news was delivered (what operators
have seen open is always closed for them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

_PICK = """
SELECT t.transition_id, t.alert_id, t.seq, t.event,
    EXISTS (SELECT 1 FROM alert_silences s WHERE s.starts_at <= t.ts AND s.ends_at > t.ts
            AND (s.rule IS NULL OR s.rule = a.rule)
            AND (s.subject IS NULL OR s.subject = a.subject)) AS silenced,
    EXISTS (SELECT 1 FROM alert_transitions u WHERE u.alert_id = t.alert_id
            AND u.fanned_out AND NOT u.suppressed) AS told_before
FROM alert_transitions t JOIN alerts a USING (alert_id)
WHERE NOT t.fanned_out ORDER BY t.transition_id LIMIT %s
FOR UPDATE OF t
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    outbox_id: int
    transition_id: int
    alert_id: int
    seq: int
    channel: str
    attempts: int
    next_attempt_at: datetime
    payload: dict[str, Any]


async def fan_out(
    conn: psycopg.AsyncConnection, channels: list[str], now: datetime, limit: int = 5000
) -> int:
    """Queue new transitions on every channel (in the caller's transaction); returns rows queued."""
    cur = await conn.execute(_PICK, (limit,))
    picked = await cur.fetchall()
    told: dict[int, bool] = {}
    marks: list[tuple[bool, int]] = []
    rows: list[tuple[int, int, int, str, datetime]] = []
    latest: dict[int, bool] = {}
    for transition_id, alert_id, seq, event, silenced, told_before in picked:
        told.setdefault(alert_id, told_before)
        hide = silenced and not (event == "resolved" and told[alert_id])
        if not hide:
            told[alert_id] = True
            rows += [(transition_id, alert_id, seq, c, now) for c in channels]
        marks.append((hide, transition_id))
        latest[alert_id] = hide
    if not picked:
        return 0
    async with conn.cursor() as c:
        await c.executemany(
            "UPDATE alert_transitions SET fanned_out = true, suppressed = %s"
            " WHERE transition_id = %s",
            marks,
        )
        await c.executemany(
            "UPDATE alerts SET suppressed = %s WHERE alert_id = %s",
            [(hide, alert_id) for alert_id, hide in latest.items()],
        )
        if rows:
            await c.executemany(
                "INSERT INTO alert_outbox (transition_id, alert_id, seq, channel,"
                " next_attempt_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )
    return len(rows)


async def pending(conn: psycopg.AsyncConnection, channel: str, limit: int = 2000) -> list[Delivery]:
    """Undelivered rows of a channel, in delivery order per alert (alert, seq)."""
    async with conn.cursor(row_factory=class_row(Delivery)) as cur:
        await cur.execute(
            "SELECT o.outbox_id, o.transition_id, o.alert_id, o.seq, o.channel, o.attempts,"
            " o.next_attempt_at, t.payload || jsonb_build_object('transition_id', t.transition_id)"
            " AS payload FROM alert_outbox o JOIN alert_transitions t USING (transition_id)"
            " WHERE o.channel = %s AND o.delivered_at IS NULL ORDER BY o.alert_id, o.seq LIMIT %s",
            (channel, limit),
        )
        return await cur.fetchall()


async def mark_delivered(conn: psycopg.AsyncConnection, outbox_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET delivered_at = %s, last_attempt_at = %s,"
        " attempts = attempts + 1, last_error = NULL WHERE outbox_id = %s",
        (now, now, outbox_id),
    )


async def mark_failed(
    conn: psycopg.AsyncConnection, outbox_id: int, now: datetime, error: str, retry_at: datetime
) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, last_attempt_at = %s,"
        " last_error = %s, next_attempt_at = %s WHERE outbox_id = %s",
        (now, error[:500], retry_at, outbox_id),
    )


@dataclass(frozen=True, slots=True)
class ChannelBacklog:
    channel: str
    pending: int
    failing: int  # pending rows that have failed at least once
    oldest: datetime | None
    last_error: str | None


def backlog(conn: psycopg.Connection) -> list[ChannelBacklog]:
    """Per channel: undelivered rows, how many have failed, the oldest and the latest error."""
    with conn.cursor(row_factory=class_row(ChannelBacklog)) as cur:
        cur.execute(
            "SELECT channel, count(*)::int AS pending, count(*) FILTER (WHERE attempts > 0)::int"
            " AS failing, min(t.ts) AS oldest,"
            " (array_agg(last_error ORDER BY last_attempt_at DESC NULLS LAST))[1] AS last_error"
            " FROM alert_outbox o JOIN alert_transitions t USING (transition_id)"
            " WHERE delivered_at IS NULL GROUP BY channel ORDER BY channel"
        )
        return cur.fetchall()
