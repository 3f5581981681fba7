"""Incidents (migration 0015): open alerts grouped by cause and district, each told through its
own alert row. The engine's writes (async, inside its tick's transaction) and the listings
operators read (sync: CLI, dashboard). What an incident is: processing/alerts/incidents.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg.rows import class_row

from store import alert_engine as q
from store.alerts import SEVERITIES
from store.scope import Scope, clause


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# ---- the engine's writes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenIncident:
    incident_id: int
    cause: str
    district_code: int | None
    alert_id: int
    opened_at: datetime
    told_at: datetime
    told_size: int
    facts: dict[str, Any]
    linked: dict[str, bool]  # member alerts still open: alert id → inhibited


async def open_incidents(conn: psycopg.AsyncConnection) -> list[OpenIncident]:
    async with conn.cursor(row_factory=class_row(OpenIncident)) as cur:
        await cur.execute(
            "SELECT i.incident_id, i.cause, i.district_code, i.alert_id, i.opened_at, i.told_at,"
            " i.told_size, i.facts, (SELECT coalesce(jsonb_object_agg(a.alert_id::text,"
            "  a.inhibited), '{}'::jsonb) FROM alerts a"
            "  WHERE a.incident_id = i.incident_id AND a.state <> 'resolved') AS linked"
            " FROM incidents i WHERE i.resolved_at IS NULL"
        )
        return await cur.fetchall()


async def open_incident(conn: psycopg.AsyncConnection, cause: str, district_code: int | None,
                        alert: q.NewAlert, size: int,
                        now: datetime) -> tuple[int, int] | None:  # fmt: skip
    """Open the incident and its alert (whose 'opened' transition is its first message);
    returns (incident id, alert id), None when that alert is already open."""
    alert_id = await q.open_alert(conn, alert, now)
    if alert_id is None:
        return None
    cur = await conn.execute(
        "INSERT INTO incidents (cause, district_code, alert_id, opened_at, updated_at, told_at,"
        " told_size, facts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING incident_id",
        (cause, district_code, alert_id, now, now, now, size, _json(alert.details)),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), alert_id


async def update(conn: psycopg.AsyncConnection, incident_id: int, facts: dict[str, Any],
                 now: datetime, *, told: int | None = None) -> None:  # fmt: skip
    """New facts; ``told``: the size just told (a message went with it)."""
    await conn.execute(
        "UPDATE incidents SET facts = %s::jsonb, updated_at = %s,"
        " told_size = coalesce(%s, told_size),"
        " told_at = CASE WHEN %s::int IS NULL THEN told_at ELSE %s END WHERE incident_id = %s",
        (_json(facts), now, told, told, now, incident_id),
    )


async def set_severity(conn: psycopg.AsyncConnection, alert_id: int, severity: str) -> None:
    """An incident's alert takes its worst member's severity (before the transition telling
    it, which carries the alert as it then stands)."""
    await conn.execute(
        "UPDATE alerts SET severity = %s WHERE alert_id = %s AND severity <> %s",
        (severity, alert_id, severity),
    )


async def close(conn: psycopg.AsyncConnection, incident_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE incidents SET resolved_at = %s, updated_at = %s"
        " WHERE incident_id = %s AND resolved_at IS NULL",
        (now, now, incident_id),
    )


async def link(conn: psycopg.AsyncConnection, incident_id: int,
               members: dict[int, bool]) -> None:  # fmt: skip
    """List these alerts (alert id → inhibited) under the incident."""
    await conn.execute(
        "UPDATE alerts a SET incident_id = %s, inhibited = m.inhibited"
        " FROM unnest(%s::bigint[], %s::boolean[]) AS m (alert_id, inhibited)"
        " WHERE a.alert_id = m.alert_id",
        (incident_id, list(members), list(members.values())),
    )


# Transitions of member alerts, not yet fanned out: queued on the machine channels only (the
# MQTT topic) and marked fanned out and suppressed (not told to a person), so the fan-out never
# sends them; people hear of them through their incident. An alert told alone before it joined
# a group (it was the first) goes on being told alone: what a person saw open, they see close.
_QUIET = """
WITH quiet AS (
    UPDATE alert_transitions t SET fanned_out = true, suppressed = true
    FROM alerts a
    WHERE a.alert_id = t.alert_id AND NOT t.fanned_out AND t.alert_id = ANY (%(ids)s::bigint[])
        AND NOT EXISTS (SELECT 1 FROM alert_transitions u WHERE u.alert_id = t.alert_id
                        AND u.fanned_out AND NOT u.suppressed)
    RETURNING t.transition_id, t.alert_id, t.seq, a.severity
), queued AS (
    INSERT INTO alert_outbox (transition_id, alert_id, seq, channel, next_attempt_at,
                              severity_rank)
    SELECT quiet.transition_id, quiet.alert_id, quiet.seq, c.channel, %(now)s,
        array_position(%(all)s::text[], quiet.severity) - 1
    FROM quiet CROSS JOIN unnest(%(channels)s::text[]) AS c (channel)
    ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM quiet)::int, (SELECT count(*) FROM queued)::int
"""


async def fan_out_members(conn: psycopg.AsyncConnection, alert_ids: list[int],
                          channels: list[str], now: datetime) -> tuple[int, int]:  # fmt: skip
    """Queue these member alerts' new transitions on ``channels`` only (before the fan-out);
    returns (transitions taken, rows queued)."""
    if not alert_ids:
        return 0, 0
    cur = await conn.execute(
        _QUIET, {"ids": alert_ids, "channels": channels, "now": now, "all": list(SEVERITIES)}
    )
    row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


# ---- what operators read ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IncidentRow:
    incident_id: int
    cause: str
    district_code: int | None
    alert_id: int
    severity: str
    state: str  # of its alert: open, acknowledged, resolved
    summary: str
    summary_vi: str
    opened_at: datetime
    updated_at: datetime
    told_at: datetime
    told_size: int
    resolved_at: datetime | None
    facts: dict[str, Any]
    open_members: int  # member alerts not resolved
    all_members: int


def list_incidents(conn: psycopg.Connection, *, scope: Scope, open_only: bool = True,
                   limit: int = 100) -> list[IncidentRow]:  # fmt: skip
    """Incidents in the scope's provinces (by the district the incident groups), open first,
    then most severe, then most member alerts, then newest."""
    with conn.cursor(row_factory=class_row(IncidentRow)) as cur:
        cur.execute(
            "SELECT i.incident_id, i.cause, i.district_code, i.alert_id, a.severity, a.state,"
            " a.summary, a.summary_vi, i.opened_at, i.updated_at, i.told_at, i.told_size,"
            " i.resolved_at, i.facts,"
            " (SELECT count(*) FROM alerts m WHERE m.incident_id = i.incident_id"
            "  AND m.state <> 'resolved')::int AS open_members,"
            " (SELECT count(*) FROM alerts m WHERE m.incident_id = i.incident_id)::int"
            "  AS all_members"
            " FROM incidents i JOIN alerts a USING (alert_id)"
            " WHERE (NOT %(open_only)s OR i.resolved_at IS NULL)"
            f" AND {clause('i.district_code', '%(scope)s')}"
            " ORDER BY (i.resolved_at IS NOT NULL), array_position(%(order)s::text[], a.severity),"
            " open_members DESC, i.opened_at DESC LIMIT %(limit)s",
            {
                "open_only": open_only,
                "order": list(SEVERITIES),
                "limit": limit,
                "scope": scope.param,
            },
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class MemberRow:
    alert_id: int
    rule: str
    subject: str
    severity: str
    state: str
    summary: str
    summary_vi: str
    inhibited: bool
    opened_at: datetime


def members(
    conn: psycopg.Connection, incident_id: int, limit: int = 1000, *, scope: Scope
) -> list[MemberRow]:
    """An incident's member alerts in the scope: unresolved first, most urgent, newest."""
    with conn.cursor(row_factory=class_row(MemberRow)) as cur:
        cur.execute(
            "SELECT alert_id, rule, subject, severity, state, summary, summary_vi, inhibited,"
            " opened_at FROM alerts WHERE incident_id = %(id)s"
            f" AND {clause('district_code', '%(scope)s')}"
            " ORDER BY (state = 'resolved'), array_position(%(order)s::text[], severity),"
            " opened_at DESC LIMIT %(limit)s",
            {"id": incident_id, "order": list(SEVERITIES), "limit": limit, "scope": scope.param},
        )
        return cur.fetchall()
