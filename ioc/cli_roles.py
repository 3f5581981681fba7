"""``ioc roles``: the database roles services log in with."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ioc.cli_common import clear_errors, database, load_settings

roles_app: typer.Typer = typer.Typer(help="Database roles.", no_args_is_help=True)
PASSWORD_ENV = "IOC_DASHBOARD_DB_PASSWORD"


@roles_app.command("dashboard-login")
@clear_errors
def roles_dashboard_login(
    login: Annotated[str, typer.Option(help="the role name the dashboard logs in as")] = (
        "ioc_dashboard_web"
    ),
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help=f"read it from stdin, not {PASSWORD_ENV}")
    ] = False,
) -> None:
    """Create or update the dashboard's login: reads everything, writes only acknowledgements."""
    from ioc.production import secret_problem
    from store.migrate import upgrade
    from store.roles import dashboard_login

    settings = load_settings()
    password = (
        sys.stdin.readline().rstrip("\r\n") if password_stdin else settings.dashboard.db_password
    )
    source = "the password on stdin" if password_stdin else PASSWORD_ENV
    problem = secret_problem(password)
    if problem and (settings.mode == "production" or not password):
        raise ValueError(f"{source} {problem}")
    with database(settings) as conn:
        upgrade(conn)  # the ioc_dashboard role comes with migration 0008
        created = dashboard_login(conn, login, password)
    typer.echo(f"role {login} {'created' if created else 'updated'}: member of ioc_dashboard")
