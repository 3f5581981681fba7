"""The alert outbox: every transition, once fanned out, waits here per channel ('mqtt',
'webhook:NAME', or a recipient's 'email:NAME', 'telegram:NAME', 'sms:NAME') until that channel
has delivered it. Which channels a transition goes to is the caller's routing (``Target``):
each recipient has its own rows, so a slow one delays nobody and dead letters are per
recipient. Rows survive any restart; a channel delivers an alert's transitions in their
order, and different alerts independently.

Fair and finite: a channel attempts only each alert's head row (its lowest undelivered seq),
due ones, most severe first then oldest, so no backlog of one alert holds another back; a row
that can never succeed is dead (kept with its last error, never attempted again), and the
alert's next transition becomes its head.

Silences act at fan-out: a transition of a silenced alert is marked suppressed and gets no
outbox rows, except a resolution of an alert whose earlier news was delivered (what operators
have seen open is always closed for them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from store.alerts import SEVERITIES
from store.scope import Scope, clause, params

_PICK = """
SELECT t.transition_id, t.alert_id, t.seq, t.event, a.severity, a.rule, a.district_code,
    ARRAY(SELECT e.route FROM alert_escalations e WHERE e.alert_id = t.alert_id) AS escalated,
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
    severity_rank: int  # 0 critical … 3 info (store.alerts.SEVERITIES)
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """What routing looks at to choose a transition's channels."""

    rule: str
    severity: str
    district_code: int | None
    escalated: tuple[str, ...] = ()  # escalation routes this alert has been escalated on


Routes = Sequence[str] | Callable[[Target], Sequence[str]]


async def fan_out(
    conn: psycopg.AsyncConnection, channels: Routes, now: datetime, limit: int = 5000
) -> int:
    """Queue new transitions on their channels (in the caller's transaction): ``channels``,
    or what it returns for each transition's alert; returns rows queued."""
    cur = await conn.execute(_PICK, (limit,))
    picked = await cur.fetchall()
    told: dict[int, bool] = {}
    marks: list[tuple[bool, int]] = []
    rows: list[tuple[int, int, int, str, datetime, int]] = []
    latest: dict[int, bool] = {}
    for (transition_id, alert_id, seq, event, severity, rule, district_code, escalated,
         silenced, told_before) in picked:  # fmt: skip
        told.setdefault(alert_id, told_before)
        hide = silenced and not (event == "resolved" and told[alert_id])
        if not hide:
            told[alert_id] = True
            rank = SEVERITIES.index(severity)
            to = (channels(Target(rule, severity, district_code, tuple(escalated)))
                  if callable(channels) else channels)  # fmt: skip
            rows += [(transition_id, alert_id, seq, c, now, rank) for c in to]
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
                " next_attempt_at, severity_rank) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                rows,
            )
    return len(rows)


# Alerts open (not acknowledged, not silenced) since before the route's delay that it has not
# escalated yet: recorded in alert_escalations (so a restart never sends again) and their latest
# transition queued to the route's recipients, marked escalated.
_ESCALATE = """
WITH due AS (
    SELECT a.alert_id FROM alerts a
    WHERE a.state = 'open' AND NOT a.suppressed AND a.opened_at <= %(before)s
        AND a.severity = ANY (%(severities)s::text[])
        AND (%(districts)s::int[] IS NULL OR a.district_code = ANY (%(districts)s::int[]))
        AND (%(rules)s::text IS NULL OR a.rule ~ %(rules)s::text)
        AND NOT EXISTS (SELECT 1 FROM alert_escalations e
                        WHERE e.alert_id = a.alert_id AND e.route = %(route)s)
    LIMIT %(limit)s
), marked AS (
    INSERT INTO alert_escalations (alert_id, route, escalated_at)
    SELECT alert_id, %(route)s, %(now)s FROM due
    ON CONFLICT DO NOTHING RETURNING alert_id
), queued AS (
    INSERT INTO alert_outbox (transition_id, alert_id, seq, channel, next_attempt_at,
                              severity_rank, escalated)
    SELECT t.transition_id, t.alert_id, t.seq, c.channel, %(now)s,
        array_position(%(all)s::text[], a.severity) - 1, true
    FROM marked m JOIN alerts a USING (alert_id)
    JOIN alert_transitions t ON t.alert_id = a.alert_id AND t.seq = a.last_seq
    CROSS JOIN unnest(%(channels)s::text[]) AS c (channel)
    ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM marked)::int, (SELECT count(*) FROM queued)::int
"""


@dataclass(frozen=True, slots=True)
class Escalation:
    route: str
    after: timedelta
    severities: list[str]  # the severities it takes
    districts: list[int] | None
    rules: str | None  # an anchored regular expression over rule names
    channels: list[str]


async def escalate(
    conn: psycopg.AsyncConnection, escalation: Escalation, now: datetime, limit: int = 1000
) -> tuple[int, int]:
    """Escalate the alerts due (in the caller's transaction); returns (alerts, rows queued)."""
    e = escalation
    cur = await conn.execute(
        _ESCALATE,
        {"before": now - e.after, "severities": e.severities, "districts": e.districts,
         "rules": e.rules, "route": e.route, "now": now, "limit": limit,
         "all": list(SEVERITIES), "channels": e.channels},
    )  # fmt: skip
    row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


# The due heads of a channel's queue, most severe first, oldest (outbox_id: queue order) next.
# The scan follows alert_outbox_drain in that order and stops at the limit, so a critical row
# is found first however many rows wait; a row with an earlier seq of its alert still waiting
# is not a head (an alert's transitions go in order) and is skipped by one probe of
# alert_outbox_pending. Alerts in flight are left out so that they take no slot. The cost is
# the rows looked at before the batch is full: a few per head in a backlog of many alerts;
# ~95 ms when one alert has 10,000 transitions waiting ahead of the rest (measured), which
# delays lesser alerts only, since rows of a critical alert come first in the scan.
_HEADS = """
SELECT o.outbox_id, o.transition_id, o.alert_id, o.seq, o.channel, o.attempts,
    o.next_attempt_at, o.severity_rank,
    t.payload || jsonb_build_object('transition_id', t.transition_id)
        || CASE WHEN o.escalated THEN '{"escalated": true}'::jsonb ELSE '{}'::jsonb END
        AS payload
FROM alert_outbox o JOIN alert_transitions t USING (transition_id)
WHERE o.channel = %(channel)s AND o.delivered_at IS NULL AND o.dead_at IS NULL
    AND o.next_attempt_at <= %(now)s AND o.alert_id <> ALL (%(busy)s::bigint[])
    AND NOT EXISTS (
        SELECT 1 FROM alert_outbox e
        WHERE e.channel = o.channel AND e.alert_id = o.alert_id AND e.seq < o.seq
        AND e.delivered_at IS NULL AND e.dead_at IS NULL)
ORDER BY o.severity_rank, o.outbox_id
LIMIT %(limit)s
"""


async def pending(
    conn: psycopg.AsyncConnection,
    channel: str,
    now: datetime,
    *,
    busy: list[int] | None = None,
    limit: int = 100,
) -> list[Delivery]:
    """Due head rows of a channel (one per alert, its lowest undelivered seq), most severe
    first, then oldest; alerts in ``busy`` (in flight) are skipped."""
    async with conn.cursor(row_factory=class_row(Delivery)) as cur:
        await cur.execute(
            _HEADS, {"channel": channel, "now": now, "busy": busy or [], "limit": limit}
        )
        return await cur.fetchall()


async def mark_delivered(conn: psycopg.AsyncConnection, outbox_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE alert_outbox SET delivered_at = %s, last_attempt_at = %s,"
        " attempts = attempts + 1, last_error = NULL WHERE outbox_id = %s",
        (now, now, outbox_id),
    )


async def mark_failed(
    conn: psycopg.AsyncConnection,
    outbox_id: int,
    now: datetime,
    error: str,
    retry_at: datetime | None,
) -> None:
    """Record a failed attempt; ``retry_at`` None: the row is dead, never attempted again."""
    await conn.execute(
        "UPDATE alert_outbox SET attempts = attempts + 1, last_attempt_at = %(now)s,"
        " last_error = %(error)s, next_attempt_at = coalesce(%(retry_at)s, next_attempt_at),"
        " dead_at = CASE WHEN %(retry_at)s::timestamptz IS NULL THEN %(now)s END"
        " WHERE outbox_id = %(id)s",
        {"now": now, "error": error[:500], "retry_at": retry_at, "id": outbox_id},
    )


@dataclass(frozen=True, slots=True)
class ChannelBacklog:
    channel: str
    pending: int
    failing: int  # pending rows that have failed at least once
    dead: int  # rows given up: never attempted again
    oldest: datetime | None  # of the pending rows
    last_error: str | None  # of the pending rows


def backlog(conn: psycopg.Connection, *, scope: Scope) -> list[ChannelBacklog]:
    """Per channel: rows still to deliver, how many have failed, the dead ones, the oldest
    pending and the latest error of a pending row. A row is the delivery of one alert, so it
    lies in that alert's province: a provincial reader sees its own alerts' deliveries (and the
    errors they met), a national one every row."""
    with conn.cursor(row_factory=class_row(ChannelBacklog)) as cur:
        cur.execute(
            "SELECT channel, count(*) FILTER (WHERE dead_at IS NULL)::int AS pending,"
            " count(*) FILTER (WHERE dead_at IS NULL AND attempts > 0)::int AS failing,"
            " count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead,"
            " min(t.ts) FILTER (WHERE dead_at IS NULL) AS oldest,"
            " (array_agg(last_error ORDER BY last_attempt_at DESC NULLS LAST)"
            "  FILTER (WHERE dead_at IS NULL))[1] AS last_error"
            " FROM alert_outbox o JOIN alert_transitions t USING (transition_id)"
            " JOIN alerts a ON a.alert_id = o.alert_id"
            f" WHERE delivered_at IS NULL AND {clause('a.district_code')}"
            " GROUP BY channel ORDER BY channel",
            params(scope),
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    channel: str
    alert_id: int
    seq: int
    attempts: int
    dead_at: datetime
    last_error: str | None


def dead_letters(
    conn: psycopg.Connection, per_channel: int = 5, *, scope: Scope
) -> list[DeadLetter]:
    """The latest dead rows of each channel, newest first: why they were given up. Of the
    alerts in the scope, as :func:`backlog`."""
    with conn.cursor(row_factory=class_row(DeadLetter)) as cur:
        cur.execute(
            "SELECT d.channel, d.alert_id, d.seq, d.attempts, d.dead_at, d.last_error"
            " FROM (SELECT DISTINCT channel FROM alert_outbox WHERE dead_at IS NOT NULL) c"
            " CROSS JOIN LATERAL (SELECT o.* FROM alert_outbox o"
            "  JOIN alerts a ON a.alert_id = o.alert_id WHERE o.channel = c.channel"
            f"  AND o.dead_at IS NOT NULL AND {clause('a.district_code', '%(scope)s')}"
            "  ORDER BY o.dead_at DESC LIMIT %(n)s) d"
            " ORDER BY d.channel, d.dead_at DESC",
            {"n": per_channel, "scope": scope.param},
        )
        return cur.fetchall()
