"""Database roles: the dashboard's login, a member of the read-mostly ``ioc_dashboard`` role
that migration 0008 creates and grants."""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

DASHBOARD_ROLE = "ioc_dashboard"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def dashboard_login(conn: psycopg.Connection, login: str, password: str) -> bool:
    """Create or update ``login`` (LOGIN, this password, member of ioc_dashboard and nothing
    else); True when it was created. Needs a role that may create roles (the owner's)."""
    if not ROLE_NAME.match(login) or login == DASHBOARD_ROLE:
        raise ValueError(f"--login {login!r} is not a role name (a-z, 0-9, _) of its own")
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
        # Utility statements take no bind parameters: the password goes in as a quoted literal.
        verb = "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
        if not exists:
            verb = "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
        conn.execute(sql.SQL(verb).format(sql.Identifier(login), sql.Literal(password)))
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(DASHBOARD_ROLE), sql.Identifier(login))
        )
    return exists is None


def member_of_dashboard(conn: psycopg.Connection, login: str) -> bool:
    row = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (login, DASHBOARD_ROLE)).fetchone()
    return bool(row and row[0])
