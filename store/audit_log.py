"""The audit log: who did what to the dashboard's users and alerts, when, and from where.

Rows are written with the action, in its transaction, so an action and its record commit
together: by the store functions of the command line's actions (store/users.py, throttle.py),
and for logins, logouts, acknowledgements, resolutions, silences and the dashboard's new users
by the SQL functions of migration 0013 that do them (the dashboard's role may not insert here).
Reading it is an admin's business; the dashboard and `ioc users audit` check that first.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from psycopg.rows import class_row

Event = Literal[
    "login_ok", "login_failed", "locked", "unlock", "logout", "acknowledge", "resolve",
    "silence", "user_added", "user_changed", "user_removed",
]  # fmt: skip
_ACTOR_MAX = 64  # a login's typed name is stored as typed, but not a megabyte of it


@dataclass(frozen=True, slots=True)
class AuditRow:
    audit_id: int
    at: datetime
    actor: str
    address: str | None
    event: str
    subject: str | None
    detail: str | None


def cli_actor() -> str:
    """The actor of a command-line action: the shell's user, as the host knows them."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "cli"


def record(
    conn: psycopg.Connection,
    event: Event,
    actor: str,
    *,
    address: str | None = None,
    subject: str | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, address, event, subject, detail)"
        " VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s)",
        (at, actor[:_ACTOR_MAX], address, event, subject, detail),
    )


def latest(
    conn: psycopg.Connection, *, actor: str | None = None, limit: int = 200
) -> list[AuditRow]:
    """The newest ``limit`` entries, latest first, of one actor or everyone."""
    with conn.cursor(row_factory=class_row(AuditRow)) as cur:
        cur.execute(
            "SELECT audit_id, at, actor, address, event, subject, detail FROM audit_log"
            " WHERE %(actor)s::text IS NULL OR actor = %(actor)s"
            " ORDER BY at DESC, audit_id DESC LIMIT %(limit)s",
            {"actor": actor, "limit": limit},
        )
        return cur.fetchall()
