"""Dashboard users, roles and login sessions.

Passwords are bcrypt hashes ($2a$, cost 12: the form pgcrypto's crypt() checks); argon2id
hashes of older versions still verify on the owner's path and are rehashed there. A session is a
random token whose SHA-256 alone is stored, with an absolute expiry and an idle limit. Every
privileged action checks the token's role in the database at the moment of the action, never
what the browser sent.

Sessions, throttling and the audit rows of a login live in SECURITY DEFINER functions
(migration 0013), one path for every caller. Who checks the password depends on who connects:
a role that may read password hashes (the owner: the command line, `ioc up`) checks it here in
Python; the dashboard's role cannot read them, and ``ioc_login`` checks it inside the database,
so a hash never leaves it and no session is made without the password.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

import bcrypt
import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.rows import class_row

from store import audit_log, throttle
from store.scope import Scope
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


class PasswordResetNeeded(PermissionDenied):
    """The account's password is stored in a form the database cannot check (argon2, from an
    older version): under the dashboard's role only an admin's reset lets it log in."""

    def __init__(self) -> None:
        super().__init__("an admin must reset this password (ioc users add --replace)")


class LoginLocked(PermissionDenied):
    """Too many failed logins for the account or from the address: refused whatever the
    password, until ``until`` or an admin's `ioc users unlock`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"login locked until {until.isoformat(timespec='minutes')}")
        self.until = until


DEFAULT_SESSION_TTL = timedelta(hours=12)  # one operator shift
_USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
_ARGON2 = PasswordHasher()  # verifies the argon2id hashes of older versions, never makes one
BCRYPT_COST = 12
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further: a longer one would be silently cut
# (username, password) → why it is too weak, or None. Production's stricter rule (length, common
# passwords: ioc/production.py) is handed down by the shell, which this layer may not import.
password_policy: Callable[[str, str], str | None] | None = None


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role
    disabled: bool
    provinces: list[int] | None = None  # GSO codes this account sees; None: every province

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))

    @property
    def scope(self) -> Scope:
        return Scope.of(self.provinces)


@dataclass(frozen=True, slots=True)
class Session:
    token: str  # give it to the client; only its hash is stored
    user: User
    expires_at: datetime


def hash_password(password: str) -> str:
    """A bcrypt hash with the $2a$ prefix, the one pgcrypto's crypt() reads (it refuses $2b$)."""
    salt = bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")
    return bcrypt.hashpw(password.encode(), salt).decode()


def _checked_user(username: str, password: str, role: Role | str) -> Role:
    """The role of a new user, once its name and password pass; ValueError otherwise."""
    if not _USERNAME.match(username):
        raise ValueError(f"username {username!r}: 2-64 characters of a-z, 0-9, '_', '.', '-'")
    try:
        role = Role(role)
    except ValueError:
        raise ValueError(f"role {role!r}: one of {', '.join(r.value for r in Role)}") from None
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password: at least {MIN_PASSWORD_LEN} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password: at most {MAX_PASSWORD_BYTES} bytes (bcrypt reads no further)")
    if password_policy and (problem := password_policy(username, password)):
        raise ValueError(f"password: {problem}")
    return role


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
    provinces: list[int] | None = None,
) -> User:
    """Create a user (or, with ``replace``, reset its password, role, name and provinces).
    ``provinces``: the GSO codes it sees; None: the whole country. ``by`` is who does it, for
    the audit log (default: the command-line user)."""
    role = _checked_user(username, password, role)
    scope = Scope.of(provinces)  # ValueError for an empty list
    conflict = (
        "DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
        " display_name = EXCLUDED.display_name, provinces = EXCLUDED.provinces,"
        " disabled = false, updated_at = now()"
        if replace
        else "DO NOTHING"
    )
    with conn.transaction(), conn.cursor(row_factory=class_row(User)) as cur:
        existed = conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone()
        cur.execute(
            "INSERT INTO users (username, display_name, role, password_hash, provinces)"
            f" VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) {conflict}"
            " RETURNING username, display_name, role, disabled, provinces",
            (username, display_name or username, role.value, hash_password(password),
             scope.param),
        )  # fmt: skip
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
            detail=f"role {role.value}"
            + (f", provinces {','.join(map(str, scope.param))}" if scope.param else "")
            + (", password reset" if existed else ""),
        )
    return user


def add_user_in_session(
    conn: psycopg.Connection,
    token: str | None,
    username: str,
    password: str,
    role: Role | str,
    *,
    display_name: str | None = None,
    address: str | None = None,
    provinces: list[int] | None = None,
) -> User:
    """:func:`add_user` from the dashboard: the database checks that the session is an
    admin's, and that ``provinces`` lie within the admin's own (psycopg InsufficientPrivilege
    otherwise), and names them in the audit log."""
    role = _checked_user(username, password, role)
    scope = Scope.of(provinces)
    with conn.transaction():
        row = conn.execute(
            "SELECT ioc_add_user(%s, %s, %s, %s, %s, %s, %s)",
            (token or "", username, display_name or username, role.value,
             hash_password(password), address, scope.param),
        ).fetchone()  # fmt: skip
    if not (row and row[0]):
        raise ValueError(f"user {username!r} exists (ioc users add --replace resets it)")
    return User(username, display_name or username, role, False, scope.param)


def list_users(conn: psycopg.Connection, *, scope: Scope) -> list[User]:
    """The accounts a reader of ``scope`` may see: every one nationally; for an admin of some
    provinces, the accounts of those provinces only (not the national ones)."""
    with conn.cursor(row_factory=class_row(User)) as cur:
        cur.execute(
            "SELECT username, display_name, role, disabled, provinces FROM users"
            " WHERE %(scope)s::integer[] IS NULL OR provinces <@ %(scope)s::integer[]"
            " ORDER BY username",
            {"scope": scope.param},
        )
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
def _dummy_hash() -> bytes:
    # Checked in place of a real hash when the name is unknown: the same bcrypt work, so the
    # time a refusal takes does not tell whether the account exists.
    return hash_password(secrets.token_urlsafe(16)).encode()


def _check_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(right password, its hash should be rewritten as bcrypt)."""
    secret = password.encode()
    if stored is not None and stored.startswith("$argon2"):
        try:
            return bool(_ARGON2.verify(stored, password)), True
        except (VerificationError, InvalidHashError):
            return False, False
    if stored is None or not stored.startswith("$2") or len(secret) > MAX_PASSWORD_BYTES:
        bcrypt.checkpw(secret[:MAX_PASSWORD_BYTES], _dummy_hash())
        return False, False
    return bcrypt.checkpw(secret, stored.encode()), not stored.startswith("$2a$")


def _reads_hashes(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT has_column_privilege('public.users', 'password_hash', 'SELECT')"
    ).fetchone()
    return bool(row and row[0])


_LOGIN_ARGS = (
    "%(address)s, %(ttl)s, %(idle)s, %(account)s, %(per_address)s, %(window)s, %(lockout)s"
)


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
    unused for that long. ``now`` is honoured for the owner only (the database's clock rules
    the dashboard's role). Raises PasswordResetNeeded for an argon2 hash under the dashboard's
    role, PermissionDenied where that role has no login function (no pgcrypto)."""
    name = throttle.account_name(username)
    params: dict[str, object] = {
        "name": name, "password": password, "address": address, "ttl": ttl, "idle": idle,
        "now": now, "account": None, "per_address": None, "window": None, "lockout": None,
    }  # fmt: skip
    if limits is not None:
        params |= {"account": limits.account_failures, "per_address": limits.address_failures,
                   "window": limits.window, "lockout": limits.lockout}  # fmt: skip
    rehash = False
    with conn.transaction():
        if _reads_hashes(conn):
            row = conn.execute(
                "SELECT password_hash FROM users WHERE username = %s AND NOT disabled", (name,)
            ).fetchone()
            ok, rehash = _check_password(str(row[0]) if row else None, password)
            outcome = conn.execute(
                "SELECT * FROM ioc_login_finish(%(name)s, %(ok)s, %(address)s, %(now)s, %(ttl)s,"
                " %(idle)s, %(account)s, %(per_address)s, %(window)s, %(lockout)s)",
                params | {"ok": ok},
            ).fetchone()
        elif conn.execute("SELECT to_regproc('public.ioc_login')").fetchone() == (None,):
            raise PermissionDenied(
                "this database has no pgcrypto: the dashboard cannot log in under its own role"
            )
        else:
            outcome = conn.execute(
                f"SELECT * FROM ioc_login(%(name)s, %(password)s, {_LOGIN_ARGS})", params
            ).fetchone()
        assert outcome is not None
        result, token, expires_at, locked_until = outcome
        if result == "ok" and rehash:
            conn.execute(
                "UPDATE users SET password_hash = %s WHERE username = %s",
                (hash_password(password), name),
            )
    if result == "locked":
        raise LoginLocked(locked_until)
    if result == "reset_needed":
        raise PasswordResetNeeded()
    if result != "ok":
        return None
    user = session_user(conn, token, now=now)
    assert user is not None
    return Session(token, user, expires_at)


def session_user(
    conn: psycopg.Connection, token: str | None, *, now: datetime | None = None
) -> User | None:
    """The user a live session token belongs to; None when unknown, expired, idle for longer
    than its limit, or disabled. Touches the session at most once a minute."""
    if not token:
        return None
    with conn.cursor(row_factory=class_row(User)) as cur:
        cur.execute("SELECT * FROM ioc_session_user(%s, %s)", (token, now))
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


def logout(conn: psycopg.Connection, token: str, *, address: str | None = None) -> None:
    with conn.transaction():
        conn.execute("SELECT ioc_logout(%s, %s)", (token, address))


def password_scheme(conn: psycopg.Connection, username: str) -> str | None:
    """How the user's password is stored (``bcrypt``, or ``argon2id`` from an older version),
    for audits; never the hash."""
    row = conn.execute(
        "SELECT password_hash FROM users WHERE username = %s", (username,)
    ).fetchone()
    if row is None:
        return None
    scheme = str(row[0]).split("$")
    if len(scheme) <= 2 or scheme[0]:
        return "unknown"
    return "bcrypt" if scheme[1] in ("2a", "2b", "2y") else scheme[1]
