"""``ioc users``: dashboard accounts (viewer, operator, admin)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ioc.cli_common import clear_errors, database, load_settings

users_app: typer.Typer = typer.Typer(help="Dashboard users and roles.", no_args_is_help=True)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
@clear_errors
def users_add(
    username: Annotated[str, typer.Argument(help="login name: a-z, 0-9, '_', '.', '-'")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    replace: Annotated[
        bool, typer.Option(help="reset an existing user's password, role and name")
    ] = False,
) -> None:
    """Add a user (prompts for the password unless --password-stdin)."""
    from store.migrate import upgrade
    from store.users import add_user

    password = _password(password_stdin)
    with database(load_settings()) as conn:
        upgrade(conn)
        user = add_user(conn, username, password, role, display_name=name, replace=replace)
    typer.echo(f"user {user.username} ({user.role.value}) saved")


@users_app.command("list")
@clear_errors
def users_list() -> None:
    """List users and their roles."""
    from store.users import list_users

    with database(load_settings()) as conn:
        for user in list_users(conn):
            state = "  disabled" if user.disabled else ""
            typer.echo(f"{user.username:<24} {user.role.value:<9} {user.display_name}{state}")


@users_app.command("disable")
@clear_errors
def users_disable(username: str) -> None:
    """Disable a user and end their sessions."""
    from store.users import set_disabled

    with database(load_settings()) as conn:
        try:
            set_disabled(conn, username, True)
        except LookupError as err:
            raise ValueError(str(err)) from None
    typer.echo(f"user {username} disabled")
