"""``ioc roles``: the database roles services log in with."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from ioc.cli_common import clear_errors, database, load_settings

roles_app: typer.Typer = typer.Typer(help="Database roles.", no_args_is_help=True)


def _password_env(service: str) -> str:
    return f"IOC_{service.upper()}_DB_PASSWORD"


@roles_app.command("login")
@clear_errors
def roles_login(
    service: Annotated[
        str, typer.Argument(help="ingest, processing, coverage, alerts or dashboard")
    ],
    login: Annotated[
        str | None, typer.Option(help="the role name it logs in as (default ioc_SERVICE_svc)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="read the password from this file (a compose secret)")
    ] = None,
) -> None:
    """Create or update SERVICE's database login: a member of its role only (migration 0013),
    the password otherwise from IOC_SERVICE_DB_PASSWORD."""
    from ioc.production import secret_problem
    from store.migrate import upgrade
    from store.roles import can_log_in_dashboard, default_login, service_login
    from store.throttle import Throttle, set_floor

    name = login or default_login(service)  # ValueError for an unknown service
    settings = load_settings()
    if password_stdin and password_file:
        raise ValueError("--password-stdin or --password-file, not both")
    if password_stdin:
        password, source = sys.stdin.readline().rstrip("\r\n"), "the password on stdin"
    elif password_file:
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        source = str(password_file)
    else:
        source = _password_env(service)
        password = os.environ.get(source, "")
        if service == "dashboard" and not password:  # also from a config file
            password = settings.dashboard.db_password
    problem = secret_problem(password)
    if problem and (settings.mode == "production" or not password):
        raise ValueError(f"{source} {problem}")
    with database(settings) as conn:
        upgrade(conn)  # the roles and their grants come with migration 0013
        if service == "dashboard" and not can_log_in_dashboard(conn):
            raise ValueError(
                "this database has no pgcrypto, so it cannot check dashboard passwords itself:"
                " run the dashboard as the owner here (as `ioc up` does)"
            )
        created = service_login(conn, service, name, password)
        if service == "dashboard":  # the login limits its role may not loosen
            d = settings.dashboard
            floor = Throttle(
                account_failures=d.login_failures,
                address_failures=d.address_failures,
                window=timedelta(minutes=d.login_window_minutes),
                lockout=timedelta(minutes=d.lockout_minutes),
            )
            with conn.transaction():
                set_floor(conn, floor)
    typer.echo(f"role {name} {'created' if created else 'updated'}: member of ioc_{service} only")
