"""Alerts, their transitions and silences: the named queries operators (CLI, dashboard) and the
alert engine use. Every change of an alert is one row in ``alert_transitions`` (time, actor,
comment, and the alert as it then stood), numbered per alert so it is delivered in order.

Operator functions take a sync connection and commit their own transaction; the engine's take
an async connection and run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from store.scope import NATIONAL, Scope, clause, params

SEVERITIES = ("critical", "major", "minor", "info")  # most urgent first
UNRESOLVED = ("open", "acknowledged")


class AlertNotFound(LookupError):
    """No alert has this id."""


class AlertStateError(ValueError):
    """The alert is not in a state that allows this (acknowledging a resolved alert)."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: int
    rule: str
    subject: str
    subject_kind: str
    severity: str
    state: str  # open, acknowledged, resolved
    summary: str
    summary_vi: str
    details: dict[str, Any]
    district_code: int | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolve_reason: str | None
    flapping: bool
    suppressed: bool  # its latest news fell in a silence and was not delivered
    incident_id: int | None = None  # the incident it is listed under (store/incidents.py)
    inhibited: bool = False  # a symptom under its cause's incident


@dataclass(frozen=True, slots=True)
class TransitionRow:
    transition_id: int
    alert_id: int
    seq: int
    ts: datetime
    event: str  # opened, updated, flapping, acknowledged, resolved, unsilenced
    actor: str  # "engine" or the operator's name
    comment: str | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class SilenceRow:
    silence_id: int
    rule: str | None
    subject: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What :func:`list_alerts` returns; every field narrows, None/empty means any."""

    states: tuple[str, ...] = ()  # UNRESOLVED for the open set
    severities: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    subject: str | None = None
    district_code: int | None = None
    since: datetime | None = None  # opened at or after
    limit: int = 200


_ALERT_COLUMNS = ", ".join(AlertRow.__dataclass_fields__)


def list_alerts(
    conn: psycopg.Connection, filters: AlertFilter | None = None, *, scope: Scope
) -> list[AlertRow]:
    """Alerts matching ``filters`` in the scope's provinces, unresolved first, then most
    urgent, then newest."""
    f = filters or AlertFilter()
    where: list[str] = [clause("district_code", "%(scope)s")]
    params: dict[str, Any] = {"scope": scope.param}
    for column, values in (("state", f.states), ("severity", f.severities), ("rule", f.rules)):
        if values:
            where.append(f"{column} = ANY(%({column}s)s)")
            params[f"{column}s"] = list(values)
    if f.subject is not None:
        where.append("subject = %(subject)s")
        params["subject"] = f.subject
    if f.district_code is not None:
        where.append("district_code = %(district)s")
        params["district"] = f.district_code
    if f.since is not None:
        where.append("opened_at >= %(since)s")
        params["since"] = f.since
    params["limit"] = f.limit
    order = "(state = 'resolved'), array_position(%(order)s::text[], severity), opened_at DESC"
    params["order"] = list(SEVERITIES)
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"
            f" ORDER BY {order} LIMIT %(limit)s",
            params,
        )
        return cur.fetchall()


def get_alert(conn: psycopg.Connection, alert_id: int, *, scope: Scope) -> AlertRow:
    """Raises AlertNotFound, also for an alert outside the scope (it looks just the same)."""
    with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = %(id)s"
            f" AND {clause('district_code', '%(scope)s')}",
            {"id": alert_id, "scope": scope.param},
        )
        row = cur.fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return row


def transitions(conn: psycopg.Connection, alert_id: int, *, scope: Scope) -> list[TransitionRow]:
    """An alert's history, oldest first (none for an alert outside the scope)."""
    with conn.cursor(row_factory=class_row(TransitionRow)) as cur:
        cur.execute(
            "SELECT t.transition_id, t.alert_id, t.seq, t.ts, t.event, t.actor, t.comment,"
            " t.suppressed FROM alert_transitions t JOIN alerts a USING (alert_id)"
            f" WHERE t.alert_id = %(id)s AND {clause('a.district_code', '%(scope)s')}"
            " ORDER BY t.seq",
            {"id": alert_id, "scope": scope.param},
        )
        return cur.fetchall()


def open_counts(conn: psycopg.Connection, *, scope: Scope) -> dict[str, int]:
    """Unresolved alerts per severity (every severity present, zero when none)."""
    rows = conn.execute(
        "SELECT severity, count(*) FROM alerts WHERE state <> 'resolved'"
        f" AND {clause('district_code')} GROUP BY severity",
        params(scope),
    ).fetchall()
    found = {severity: int(n) for severity, n in rows}
    return {s: found.get(s, 0) for s in SEVERITIES}


# One engine transition: bump the alert's sequence, change it, and snapshot it into the history
# row (an operator's acknowledgement or resolution is ioc_alert_operator_transition, migration
# 0013, with the same snapshot).
# ``{set}`` and ``{guard}`` are fixed fragments chosen below, never user input.
_TRANSITION = """
WITH a AS (
    UPDATE alerts SET last_seq = last_seq + 1, updated_at = %(ts)s{set}
    WHERE alert_id = %(alert_id)s{guard}
    RETURNING *
)
INSERT INTO alert_transitions (alert_id, seq, ts, event, actor, comment, payload)
SELECT alert_id, last_seq, %(ts)s, %(event)s, %(actor)s, %(comment)s,
       to_jsonb(a) - 'last_seq' || jsonb_build_object('event', %(event)s::text, 'seq', last_seq,
           'ts', %(ts)s::timestamptz, 'actor', %(actor)s::text, 'comment', %(comment)s::text)
FROM a RETURNING transition_id
"""

TRANSITIONS: dict[str, str] = {
    "resolved": _TRANSITION.format(
        set=", state = 'resolved', resolved_at = %(ts)s, resolved_by = %(actor)s,"
        " resolve_reason = %(comment)s, flapping = false",
        guard=" AND state <> 'resolved'",
    ),
    "updated": _TRANSITION.format(
        set=", summary = %(summary)s, summary_vi = %(summary_vi)s, details = %(details)s::jsonb,"
        " flapping = %(flapping)s",
        guard=" AND state <> 'resolved'",
    ),
    "flapping": _TRANSITION.format(set=", flapping = true", guard=" AND state <> 'resolved'"),
    "unsilenced": _TRANSITION.format(
        set=", suppressed = false", guard=" AND state <> 'resolved' AND suppressed"
    ),
}

OPEN = """
WITH a AS (
    INSERT INTO alerts (rule, subject, subject_kind, severity, state, summary, summary_vi, details,
                        district_code, opened_at, updated_at, flapping, last_seq)
    VALUES (%(rule)s, %(subject)s, %(subject_kind)s, %(severity)s, 'open', %(summary)s,
            %(summary_vi)s, %(details)s::jsonb, %(district_code)s, %(ts)s, %(ts)s, %(flapping)s, 1)
    ON CONFLICT (rule, subject) WHERE state <> 'resolved' DO NOTHING
    RETURNING *
)
INSERT INTO alert_transitions (alert_id, seq, ts, event, actor, comment, payload)
SELECT alert_id, 1, %(ts)s, 'opened', 'engine', %(comment)s,
       to_jsonb(a) - 'last_seq' || jsonb_build_object('event', 'opened', 'seq', 1,
           'ts', %(ts)s::timestamptz, 'actor', 'engine', 'comment', %(comment)s::text)
FROM a RETURNING alert_id
"""


def _operator_transition(
    conn: psycopg.Connection,
    event: str,
    alert_id: int,
    actor: str,
    comment: str | None,
    now: datetime | None,
    address: str | None,
) -> AlertRow:
    # The transition, its history row and its audit row are one SQL function (migration 0013),
    # the same one the dashboard's session-checked ioc_acknowledge calls.
    if not actor.strip():
        raise ValueError("the operator's name (--by) is empty")
    with conn.transaction():
        before = get_alert(conn, alert_id, scope=NATIONAL)
        row = conn.execute(
            "SELECT ioc_alert_operator_transition(%s, %s, %s, %s, %s, %s)",
            (event, alert_id, actor.strip(), comment, address, now),
        ).fetchone()
        if not (row and row[0]):
            raise AlertStateError(f"alert {alert_id} is {before.state}; it cannot be {event}")
        return get_alert(conn, alert_id, scope=NATIONAL)


def acknowledge_in_session(
    conn: psycopg.Connection,
    token: str | None,
    alert_id: int,
    comment: str | None = None,
    *,
    address: str | None = None,
) -> AlertRow:
    """Acknowledge as the user of a dashboard session: the database checks the session and
    that its role is at least operator (psycopg InsufficientPrivilege otherwise) and names the
    actor. Raises AlertNotFound or AlertStateError like :func:`acknowledge`."""
    with conn.transaction():
        # Read whole-country: ioc_acknowledge itself refuses an alert outside the session's
        # provinces (InsufficientPrivilege), before any state is told.
        before = get_alert(conn, alert_id, scope=NATIONAL)
        row = conn.execute(
            "SELECT ioc_acknowledge(%s, %s, %s, %s)", (token or "", alert_id, comment, address)
        ).fetchone()
        if not (row and row[0]):
            raise AlertStateError(f"alert {alert_id} is {before.state}; it cannot be acknowledged")
        return get_alert(conn, alert_id, scope=NATIONAL)


def acknowledge(
    conn: psycopg.Connection,
    alert_id: int,
    by: str,
    comment: str | None = None,
    *,
    now: datetime | None = None,
    address: str | None = None,
) -> AlertRow:
    """Mark an open alert as seen by ``by`` (from ``address``, for the audit log); raises
    AlertNotFound or AlertStateError."""
    return _operator_transition(conn, "acknowledged", alert_id, by, comment, now, address)


def resolve(
    conn: psycopg.Connection,
    alert_id: int,
    by: str,
    reason: str,
    *,
    now: datetime | None = None,
    address: str | None = None,
) -> AlertRow:
    """Close an unresolved alert by hand. If its condition still holds, the engine waits for it
    to clear before it may open again (no immediate re-open)."""
    if not reason.strip():
        raise ValueError("a manual resolution needs a reason")
    return _operator_transition(conn, "resolved", alert_id, by, reason, now, address)


@dataclass(frozen=True, slots=True)
class SilenceRequest:
    rule: str | None
    subject: str | None
    ends_at: datetime
    created_by: str
    comment: str | None = None
    starts_at: datetime | None = None  # default: now


def _checked(request: SilenceRequest) -> datetime:
    """When the silence starts; raises ValueError on a bad request."""
    starts = request.starts_at or datetime.now(UTC)
    if request.rule is None and request.subject is None:
        raise ValueError("a silence needs a rule, a subject or both")
    if request.ends_at <= starts:
        raise ValueError(f"a silence must end after it starts ({starts.isoformat()})")
    return starts


def _silence_row(conn: psycopg.Connection, silence_id: int) -> SilenceRow:
    with conn.cursor(row_factory=class_row(SilenceRow)) as cur:
        cur.execute(
            "SELECT silence_id, rule, subject, starts_at, ends_at, created_by, comment, created_at"
            " FROM alert_silences WHERE silence_id = %s",
            (silence_id,),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def silence(
    conn: psycopg.Connection, request: SilenceRequest, *, address: str | None = None
) -> SilenceRow:
    """Hide the news of alerts of ``rule`` on ``subject`` (either may be None, not both) until
    ``ends_at``; the alerts are still stored. Raises ValueError on a bad request."""
    starts = _checked(request)
    if not request.created_by.strip():
        raise ValueError("the operator's name (--by) is empty")
    with conn.transaction():
        row = conn.execute(
            "SELECT ioc_alert_silence(%s, %s, %s, %s, %s, %s, %s)",
            (request.rule, request.subject, starts, request.ends_at,
             request.created_by.strip(), request.comment, address),
        ).fetchone()  # fmt: skip
        assert row is not None
        return _silence_row(conn, row[0])


def silence_in_session(
    conn: psycopg.Connection,
    token: str | None,
    request: SilenceRequest,
    *,
    address: str | None = None,
) -> SilenceRow:
    """:func:`silence` as the user of a dashboard session (checked by the database, which names
    the actor: ``request.created_by`` is not used)."""
    starts = _checked(request)
    with conn.transaction():
        row = conn.execute(
            "SELECT ioc_silence(%s, %s, %s, %s, %s, %s, %s)",
            (token or "", request.rule, request.subject, starts, request.ends_at,
             request.comment, address),
        ).fetchone()  # fmt: skip
        assert row is not None
        return _silence_row(conn, row[0])


def list_silences(
    conn: psycopg.Connection, *, active_at: datetime | None = None, include_ended: bool = False
) -> list[SilenceRow]:
    """Silences in force at ``active_at`` (default now), or all of them with ``include_ended``."""
    sql = (
        "SELECT silence_id, rule, subject, starts_at, ends_at, created_by, comment, created_at"
        " FROM alert_silences"
    )
    params: tuple[Any, ...] = ()
    if not include_ended:
        sql += " WHERE ends_at > %s"
        params = (active_at or datetime.now(UTC),)
    with conn.cursor(row_factory=class_row(SilenceRow)) as cur:
        cur.execute(sql + " ORDER BY ends_at", params)
        return cur.fetchall()


def end_silence(conn: psycopg.Connection, silence_id: int, *, now: datetime | None = None) -> None:
    """End a silence now; hidden news of still-open alerts is then delivered by the engine."""
    now = now or datetime.now(UTC)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE alert_silences SET ends_at = greatest(starts_at + interval '1 microsecond',"
            " least(ends_at, %s)) WHERE silence_id = %s",
            (now, silence_id),
        )
        if cur.rowcount == 0:
            raise LookupError(f"no silence {silence_id}")
