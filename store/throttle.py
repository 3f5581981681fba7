"""Login throttling: failed logins counted per account and per client address, and the locks
they set. Kept in the database, so a lock holds across dashboard processes and restarts and
an attacker gains nothing by spreading attempts over the dashboard's replicas. The counting and
locking rule itself is SQL, ``ioc_login_finish`` (migration 0013), the one path of every login
(the dashboard's role may not touch these tables); this module holds its limits and the
admin's side: the locks in force and `ioc users unlock`.

An account's count includes names that do not exist (a lock must not tell who exists). While
a lock holds, attempts are refused without being counted, so a lock ends when its period does
instead of being pushed on by every refused try; an admin lifts it early with
`ioc users unlock`. Two concurrent failures may both read a count one short of the limit: the
lock then lands one attempt late, which is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import psycopg
from psycopg.rows import class_row

from store import audit_log

LockKind = Literal["account", "address"]
# Which column of login_failures a lock of each kind counts (fixed names, never user input).
_COLUMN: dict[LockKind, str] = {"account": "username", "address": "address"}


@dataclass(frozen=True, slots=True)
class Throttle:
    """The limits, from the dashboard's settings (ioc/settings.py holds their defaults)."""

    account_failures: int  # failed logins of one account within `window` that lock it
    address_failures: int  # failed logins from one address within `window` that lock it
    window: timedelta
    lockout: timedelta  # how long a lock lasts


@dataclass(frozen=True, slots=True)
class Lock:
    kind: str
    subject: str
    locked_until: datetime


def account_name(username: str) -> str:
    """The name a login is counted and locked under: as stored, lowercase and trimmed."""
    return username.strip().lower()


def set_floor(conn: psycopg.Connection, limits: Throttle) -> None:
    """Store the limits no dashboard may loosen: ``ioc_login`` (the dashboard's role) applies
    these where the dashboard passes laxer ones, or none. The owner's business."""
    conn.execute(
        "INSERT INTO login_limits (account_failures, address_failures, win, lockout)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (only_row) DO UPDATE SET"
        " account_failures = EXCLUDED.account_failures,"
        " address_failures = EXCLUDED.address_failures, win = EXCLUDED.win,"
        " lockout = EXCLUDED.lockout",
        (limits.account_failures, limits.address_failures, limits.window, limits.lockout),
    )


def unlock(
    conn: psycopg.Connection,
    *,
    username: str | None = None,
    address: str | None = None,
    by: str,
) -> int:
    """Lift the account's and/or the address's lock and forget their failed logins (else the
    next failure would lock again at once). Returns how many locks were in force."""
    if username is None and address is None:
        raise ValueError("unlock what? an account, an address or both")
    lifted = 0
    with conn.transaction():
        wanted: tuple[tuple[LockKind, str | None], ...] = (
            ("account", None if username is None else account_name(username)),
            ("address", address),
        )
        for kind, subject in wanted:
            if subject is None:
                continue
            cur = conn.execute(
                "DELETE FROM login_locks WHERE kind = %s AND subject = %s"
                " RETURNING locked_until > now()",
                (kind, subject),
            )
            lifted += sum(in_force for (in_force,) in cur.fetchall())
            conn.execute(f"DELETE FROM login_failures WHERE {_COLUMN[kind]} = %s", (subject,))
            audit_log.record(conn, "unlock", by, subject=f"{kind} {subject}")
    return lifted


def locks(conn: psycopg.Connection, now: datetime) -> list[Lock]:
    """Locks in force at ``now``, accounts first."""
    with conn.cursor(row_factory=class_row(Lock)) as cur:
        cur.execute(
            "SELECT kind, subject, locked_until FROM login_locks WHERE locked_until > %s"
            " ORDER BY kind, subject",
            (now,),
        )
        return cur.fetchall()
