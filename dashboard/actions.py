"""What a dashboard user can change. Each action re-checks the session's role in the database
before it touches anything: hiding a button is courtesy, this is the lock — a viewer who crafts
the request that an operator's click would send is refused. Acknowledge, silence and a new
user go through the database's session-checked functions (migration 0013), the only way the
dashboard's own role may write them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import psycopg

from store import alerts
from store.audit_log import AuditRow, latest
from store.users import PermissionDenied, Role, User, add_user_in_session, require_role


@contextmanager
def _refusals() -> Iterator[None]:
    """The database's refusal of a session (dead, or a role too low) as PermissionDenied."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as refused:
        raise PermissionDenied(refused.diag.message_primary or str(refused)) from None


def acknowledge_alert(
    conn: psycopg.Connection,
    token: str | None,
    alert_id: int,
    comment: str | None,
    *,
    address: str | None = None,
) -> alerts.AlertRow:
    """Raises PermissionDenied for a viewer or a dead session, before anything is written."""
    with _refusals():
        return alerts.acknowledge_in_session(
            conn, token, alert_id, comment or None, address=address
        )


def silence_subject(
    conn: psycopg.Connection,
    token: str | None,
    alert: alerts.AlertRow,
    hours: float,
    comment: str | None,
    *,
    now: datetime,
    address: str | None = None,
) -> alerts.SilenceRow:
    """Silence this alert's rule on its subject for ``hours``."""
    request = alerts.SilenceRequest(
        rule=alert.rule,
        subject=alert.subject,
        ends_at=now + timedelta(hours=hours),
        created_by="",  # the session's user, named by the database
        comment=comment or None,
    )
    with _refusals():
        return alerts.silence_in_session(conn, token, request, address=address)


def add_user(
    conn: psycopg.Connection,
    token: str | None,
    username: str,
    password: str,
    role: str,
    name: str,
    *,
    provinces: list[int] | None = None,
    address: str | None = None,
) -> User:
    """An admin's new user, of ``provinces`` (None: the whole country); the database checks
    the session's role, that the provinces lie within the admin's own, and names the admin."""
    with _refusals():
        return add_user_in_session(conn, token, username, password, role,
                                   display_name=name or None, address=address,
                                   provinces=provinces)  # fmt: skip


def audit_log(
    conn: psycopg.Connection, token: str | None, actor: str | None = None
) -> list[AuditRow]:
    """The audit log, latest first: admins only (it names who logged in from where)."""
    require_role(conn, token, Role.ADMIN)
    return latest(conn, actor=actor)
