"""Database roles: one login per service, a member of exactly that service's group role
(``ioc_ingest``, ``ioc_processing``, ``ioc_coverage``, ``ioc_alerts``, ``ioc_dashboard``) that
migration 0013 creates and grants, and allowed to connect to this database only."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

SERVICES = ("ingest", "processing", "coverage", "alerts", "dashboard")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DASHBOARD_ROLE = "ioc_dashboard"


def group_role(service: str) -> str:
    if service not in SERVICES:
        raise ValueError(f"service {service!r}: one of {', '.join(SERVICES)}")
    return f"ioc_{service}"


def default_login(service: str) -> str:
    return f"{group_role(service)}_svc"


def can_log_in_dashboard(conn: psycopg.Connection) -> bool:
    """Whether this database checks dashboard passwords itself (pgcrypto was there for 0013)."""
    row = conn.execute("SELECT to_regproc('public.ioc_login') IS NOT NULL").fetchone()
    return bool(row and row[0])


def service_login(conn: psycopg.Connection, service: str, login: str, password: str) -> bool:
    """Create or update ``login``: LOGIN with this password, no superuser or role powers,
    member of ``service``'s group role and of no other role, CONNECT to this database. True
    when it was created. Needs a role that may create roles (the owner's)."""
    group = group_role(service)
    groups = {group_role(s) for s in SERVICES}
    if not ROLE_NAME.match(login) or login in groups:
        raise ValueError(f"--login {login!r} is not a role name (a-z, 0-9, _) of its own")
    with conn.transaction():
        found = conn.execute(
            "SELECT rolsuper OR rolcreaterole OR rolname = current_user FROM pg_roles"
            " WHERE rolname = %s",
            (login,),
        ).fetchone()
        if found and found[0]:  # never demote the owner or an administrator by a typo
            raise ValueError(f"--login {login!r} is an administrator's role, not a service's")
        # Utility statements take no bind parameters: the password goes in as a quoted literal.
        verb = "CREATE" if found is None else "ALTER"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(login), sql.Literal(password)
            )
        )
        held = conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s AND g.rolname <> %s",
            (login, group),
        ).fetchall()
        for (other,) in held:
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(other), sql.Identifier(login))
            )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
        # The group roles are the server's, shared by every IOC database on it: CONNECT is the
        # login's, for this database alone (migration 0013 took it from PUBLIC).
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(login)
            )
        )
    return found is None


def member_of(conn: psycopg.Connection, login: str, service: str) -> bool:
    row = conn.execute(
        "SELECT pg_has_role(%s, %s, 'MEMBER')", (login, group_role(service))
    ).fetchone()
    return bool(row and row[0])
