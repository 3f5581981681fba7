"""What a dashboard user can change. Each action re-checks the session's role in the database
(store.users.require_role) before it touches anything: hiding a button is courtesy, this is
the lock — a viewer who crafts the request that an operator's click would send is refused."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from store import alerts
from store.audit_log import AuditRow, latest
from store.users import Role, User, require_role


def acknowledge_alert(
    conn: psycopg.Connection,
    token: str | None,
    alert_id: int,
    comment: str | None,
    *,
    address: str | None = None,
) -> alerts.AlertRow:
    """Raises PermissionDenied for a viewer or a dead session, before anything is written."""
    user = require_role(conn, token, Role.OPERATOR)
    return alerts.acknowledge(
        conn, alert_id, by=user.username, comment=comment or None, address=address
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
    user = require_role(conn, token, Role.OPERATOR)
    request = alerts.SilenceRequest(
        rule=alert.rule,
        subject=alert.subject,
        ends_at=now + timedelta(hours=hours),
        created_by=user.username,
        comment=comment or None,
    )
    return alerts.silence(conn, request, address=address)


def add_user(
    conn: psycopg.Connection,
    token: str | None,
    username: str,
    password: str,
    role: str,
    name: str,
    *,
    address: str | None = None,
) -> User:
    from store.users import add_user as store_add_user

    admin = require_role(conn, token, Role.ADMIN)
    return store_add_user(
        conn, username, password, role, display_name=name or None, by=admin.username,
        address=address,
    )  # fmt: skip


def audit_log(
    conn: psycopg.Connection, token: str | None, actor: str | None = None
) -> list[AuditRow]:
    """The audit log, latest first: admins only (it names who logged in from where)."""
    require_role(conn, token, Role.ADMIN)
    return latest(conn, actor=actor)
