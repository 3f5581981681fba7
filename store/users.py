"""Dashboard users, roles and login sessions.

Passwords are argon2id hashes; a session is a random token whose SHA-256 alone is stored, with
an absolute expiry. Every privileged action asks :func:`require_role` with the token, so the
role comes from the database at the moment of the action, never from what the browser sent.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import class_row


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


DEFAULT_SESSION_TTL = timedelta(hours=12)  # one operator shift
_USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD_LEN = 8


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
) -> User:
    """Create a user (or, with ``replace``, reset its password, role and name)."""
    if not _USERNAME.match(username):
        raise ValueError(f"username {username!r}: 2-64 characters of a-z, 0-9, '_', '.', '-'")
    try:
        role = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password: at least {MIN_PASSWORD_LEN} characters")
    conflict = (
        "DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
        " display_name = EXCLUDED.display_name, disabled = false, updated_at = now()"
        if replace
        else "DO NOTHING"
    )
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cur:
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
    return user


def list_users(conn: psycopg.Connection) -> list[User]:
    with conn.cursor(row_factory=class_row(User)) as cur:
        cur.execute("SELECT username, display_name, role, disabled FROM users ORDER BY username")
        return cur.fetchall()


def set_disabled(conn: psycopg.Connection, username: str, disabled: bool) -> None:
    with conn.transaction():
        cur = conn.execute(
            "UPDATE users SET disabled = %s, updated_at = now() WHERE username = %s",
            (disabled, username),
        )
        if cur.rowcount == 0:
            raise LookupError(f"no user {username!r}")
        if disabled:
            conn.execute("DELETE FROM user_sessions WHERE username = %s", (username,))


def login(
    conn: psycopg.Connection,
    username: str,
    password: str,
    *,
    ttl: timedelta = DEFAULT_SESSION_TTL,
    now: datetime | None = None,
) -> Session | None:
    """A new session for the right password of an enabled user; None otherwise."""
    row = conn.execute(
        "SELECT password_hash FROM users WHERE username = %s AND NOT disabled",
        (username.strip().lower(),),
    ).fetchone()
    if row is None:
        _HASHER.hash(password)  # the same work as a wrong password: no timing tell
        return None
    try:
        _HASHER.verify(row[0], password)
    except (VerificationError, InvalidHashError):
        return None
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    with conn.transaction():
        if _HASHER.check_needs_rehash(row[0]):
            conn.execute(
                "UPDATE users SET password_hash = %s WHERE username = %s",
                (_HASHER.hash(password), username.strip().lower()),
            )
        conn.execute("DELETE FROM user_sessions WHERE expires_at < %s", (now,))
        conn.execute(
            "INSERT INTO user_sessions (token_hash, username, created_at, expires_at, last_seen)"
            " VALUES (%s, %s, %s, %s, %s)",
            (_token_hash(token), username.strip().lower(), now, now + ttl, now),
        )
    user = session_user(conn, token, now=now)
    assert user is not None
    return Session(token, user, now + ttl)


def session_user(
    conn: psycopg.Connection, token: str | None, *, now: datetime | None = None
) -> User | None:
    """The user a live session token belongs to; None when unknown, expired or disabled."""
    if not token:
        return None
    with conn.cursor(row_factory=class_row(User)) as cur:
        cur.execute(
            "UPDATE user_sessions s SET last_seen = %(now)s FROM users u"
            " WHERE s.token_hash = %(hash)s AND s.username = u.username"
            " AND s.expires_at > %(now)s AND NOT u.disabled"
            " RETURNING u.username, u.display_name, u.role, u.disabled",
            {"hash": _token_hash(token), "now": now or datetime.now(UTC)},
        )
        return cur.fetchone()


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


def logout(conn: psycopg.Connection, token: str) -> None:
    conn.execute("DELETE FROM user_sessions WHERE token_hash = %s", (_token_hash(token),))


def password_scheme(conn: psycopg.Connection, username: str) -> str | None:
    """How the user's password is stored (e.g. ``argon2id``), for audits; never the hash."""
    row = conn.execute(
        "SELECT password_hash FROM users WHERE username = %s", (username,)
    ).fetchone()
    if row is None:
        return None
    scheme = str(row[0]).split("$")
    return scheme[1] if len(scheme) > 2 and not scheme[0] else "unknown"
