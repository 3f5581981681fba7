"""Dashboard users, roles and login sessions.

Passwords are argon2id hashes; a session is a random token whose SHA-256 alone is stored, with
an absolute expiry and an idle limit. Every privileged action asks :func:`require_role` with
the token, so the role comes from the database at the moment of the action, never from what the
browser sent. Logins are throttled (store/throttle.py) and, like every change to a user, written
to the audit log (store/audit_log.py) in the same transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import class_row

from store import audit_log, throttle
from store.throttle import Throttle


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything
    OPERATOR = "operator"  # + acknowledges and silences alerts
    ADMIN = "admin"  # + users, rules, settings

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class PermissionDenied(PermissionError):
    """The session is missing, expired, or its user's role is too low for the action."""


class LoginLocked(PermissionDenied):
    """Too many failed logins for the account or from the address: refused whatever the
    password, until ``until`` or an admin's `ioc users unlock`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"login locked until {until.isoformat(timespec='minutes')}")
        self.until = until


DEFAULT_SESSION_TTL = timedelta(hours=12)  # one operator shift
# A page run touches its session's last_seen at most this often: the idle limit is minutes,
# and a write per run (every few seconds on the live map) would buy nothing.
TOUCH_EVERY = timedelta(minutes=1)
_USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD_LEN = 8
# (username, password) → why it is too weak, or None. Production's stricter rule (length, common
# passwords: ioc/production.py) is handed down by the shell, which this layer may not import.
password_policy: Callable[[str, str], str | None] | None = None


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role
    disabled: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # give it to the client; only its hash is stored
    user: User
    expires_at: datetime


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    conn: psycopg.Connection,
    username: str,
    password: str,
    role: Role | str,
    *,
    display_name: str | None = None,
    replace: bool = False,
    by: str | None = None,
    address: str | None = None,
) -> User:
    """Create a user (or, with ``replace``, reset its password, role and name). ``by`` is who
    does it, for the audit log (default: the command-line user)."""
    if not _USERNAME.match(username):
        raise ValueError(f"username {username!r}: 2-64 characters of a-z, 0-9, '_', '.', '-'")
    try:
        role = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password: at least {MIN_PASSWORD_LEN} characters")
    if password_policy and (problem := password_policy(username, password)):
        raise ValueError(f"password: {problem}")
    conflict = (
        "DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
        " display_name = EXCLUDED.display_name, disabled = false, updated_at = now()"
        if replace
        else "DO NOTHING"
    )
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cur:
        existed = conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone()
        cur.execute(
            "INSERT INTO users (username, display_name, role, password_hash)"
            f" VALUES (%s, %s, %s, %s) ON CONFLICT (username) {conflict}"
            " RETURNING username, display_name, role, disabled",
            (username, display_name or username, role.value, _HASHER.hash(password)),
        )
        user = cur.fetchone()
        if user is None:
            raise ValueError(f"user {username!r} exists (use --replace to reset it)")
        if replace:  # a reset password ends the sessions opened with the old one
            cur.execute("DELETE FROM user_sessions WHERE username = %s", (username,))
        event: audit_log.Event = "user_changed" if existed else "user_added"
        audit_log.record(
            conn,
            event,
            by or audit_log.cli_actor(),
            address=address,
            subject=username,
            detail=f"role {role.value}" + (", password reset" if existed else ""),
        )
    return user


def list_users(conn: psycopg.Connection) -> list[User]:
    with conn.cursor(row_factory=class_row(User)) as cur:
        cur.execute("SELECT username, display_name, role, disabled FROM users ORDER BY username")
        return cur.fetchall()


def set_disabled(
    conn: psycopg.Connection, username: str, disabled: bool, *, by: str | None = None
) -> None:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE users SET disabled = %s, updated_at = now() WHERE username = %s",
            (disabled, username),
        )
        if cur.rowcount == 0:
            raise LookupError(f"no user {username!r}")
        if disabled:
            conn.execute("DELETE FROM user_sessions WHERE username = %s", (username,))
        audit_log.record(
            conn,
            "user_changed",
            by or audit_log.cli_actor(),
            subject=username,
            detail="disabled" if disabled else "enabled",
        )


def remove_user(conn: psycopg.Connection, username: str, *, by: str | None = None) -> None:
    """Delete a user; their sessions go with them (the audit log keeps their name)."""
    with conn.transaction():
        cur = conn.execute("DELETE FROM users WHERE username = %s", (username,))
        if cur.rowcount == 0:
            raise LookupError(f"no user {username!r}")
        audit_log.record(conn, "user_removed", by or audit_log.cli_actor(), subject=username)


@cache
def _dummy_hash() -> str:
    # Verified in place of a real hash when the name is unknown: the same argon2 work, so the
    # time a refusal takes does not tell whether the account exists.
    return _HASHER.hash(secrets.token_urlsafe(16))


def _password_ok(stored: str | None, password: str) -> bool:
    try:
        return bool(_HASHER.verify(stored or _dummy_hash(), password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def login(
    conn: psycopg.Connection,
    username: str,
    password: str,
    *,
    ttl: timedelta = DEFAULT_SESSION_TTL,
    idle: timedelta | None = None,
    limits: Throttle | None = None,
    address: str | None = None,
    now: datetime | None = None,
) -> Session | None:
    """A new session for the right password of an enabled user; None otherwise. With
    ``limits`` (the dashboard always passes them) failures are counted and a lock on the account
    or ``address`` raises LoginLocked, right password or not. ``idle``: the session ends when
    unused for that long."""
    name = throttle.account_name(username)
    now = now or datetime.now(UTC)
    row = conn.execute(
        "SELECT password_hash FROM users WHERE username = %s AND NOT disabled", (name,)
    ).fetchone()
    stored = str(row[0]) if row else None
    ok = _password_ok(stored, password)  # before the lock check: a lock costs the same time
    if limits is not None and (until := throttle.lock_in_force(conn, name, address, now)):
        with conn.transaction():
            audit_log.record(conn, "login_failed", name, address=address, detail="locked", at=now)
        raise LoginLocked(until)
    if not ok or stored is None:
        with conn.transaction():
            audit_log.record(conn, "login_failed", name, address=address, at=now)
            if limits is not None:
                throttle.count_failure(conn, name, address, limits, now)
        return None
    token = secrets.token_urlsafe(32)
    with conn.transaction():
        if _HASHER.check_needs_rehash(stored):
            conn.execute(
                "UPDATE users SET password_hash = %s WHERE username = %s",
                (_HASHER.hash(password), name),
            )
        conn.execute("DELETE FROM user_sessions WHERE expires_at < %s", (now,))
        conn.execute(
            "INSERT INTO user_sessions"
            " (token_hash, username, created_at, expires_at, last_seen, idle_timeout)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (_token_hash(token), name, now, now + ttl, now, idle),
        )
        throttle.forget_failures(conn, name)
        audit_log.record(conn, "login_ok", name, address=address, at=now)
    user = session_user(conn, token, now=now)
    assert user is not None
    return Session(token, user, now + ttl)


def session_user(
    conn: psycopg.Connection, token: str | None, *, now: datetime | None = None
) -> User | None:
    """The user a live session token belongs to; None when unknown, expired, idle for longer
    than its limit, or disabled. Touches the session at most once per TOUCH_EVERY."""
    if not token:
        return None
    now = now or datetime.now(UTC)
    params = {"hash": _token_hash(token), "now": now, "touch": now - TOUCH_EVERY}
    row = conn.execute(
        "SELECT u.username, u.display_name, u.role, u.disabled, s.last_seen < %(touch)s"
        " FROM user_sessions s JOIN users u ON s.username = u.username"
        " WHERE s.token_hash = %(hash)s AND s.expires_at > %(now)s AND NOT u.disabled"
        " AND (s.idle_timeout IS NULL OR s.last_seen + s.idle_timeout > %(now)s)",
        params,
    ).fetchone()
    if row is None:
        return None
    if row[4]:  # greatest(): a page run with an older clock never moves last_seen back
        conn.execute(
            "UPDATE user_sessions SET last_seen = greatest(last_seen, %(now)s)"
            " WHERE token_hash = %(hash)s",
            params,
        )
    return User(*row[:4])


def require_role(
    conn: psycopg.Connection, token: str | None, needed: Role, *, now: datetime | None = None
) -> User:
    """The session's user if its role allows ``needed``; raises PermissionDenied otherwise."""
    user = session_user(conn, token, now=now)
    if user is None:
        raise PermissionDenied("not logged in, or the session has expired")
    if not user.role.allows(needed):
        raise PermissionDenied(f"role {user.role.value} may not do what needs {needed.value}")
    return user


def logout(conn: psycopg.Connection, token: str, *, address: str | None = None) -> None:
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM user_sessions WHERE token_hash = %s RETURNING username",
            (_token_hash(token),),
        ).fetchone()
        if row is not None:
            audit_log.record(conn, "logout", row[0], address=address)


def password_scheme(conn: psycopg.Connection, username: str) -> str | None:
    """How the user's password is stored (e.g. ``argon2id``), for audits; never the hash."""
    row = conn.execute(
        "SELECT password_hash FROM users WHERE username = %s", (username,)
    ).fetchone()
    if row is None:
        return None
    scheme = str(row[0]).split("$")
    return scheme[1] if len(scheme) > 2 and not scheme[0] else "unknown"
