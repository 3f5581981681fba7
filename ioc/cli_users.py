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
        bool, typer.Option(help="reset an existing user's password, role, name and provinces")
    ] = False,
    province: Annotated[
        str | None,
        typer.Option(
            help='the provinces this user sees, by name or GSO code ("Bắc Giang" or '
            '"Bắc Giang, 19"); left out: the whole country'
        ),
    ] = None,
) -> None:
    """Add a user (prompts for the password unless --password-stdin)."""
    from seeds.national import province_codes
    from store.migrate import upgrade
    from store.users import add_user

    provinces = province_codes(province) if province is not None else None
    password = _password(password_stdin)
    with database(load_settings()) as conn:
        upgrade(conn)
        user = add_user(
            conn, username, password, role, display_name=name, replace=replace, provinces=provinces
        )
    typer.echo(f"user {user.username} ({user.role.value}, {_sees(user.provinces)}) saved")


def _sees(provinces: list[int] | None) -> str:
    from seeds.national import province

    if provinces is None:
        return "every province"
    return ", ".join(province(code)["name"].removeprefix("Tỉnh ") for code in provinces)


@users_app.command("list")
@clear_errors
def users_list() -> None:
    """List users and their roles."""
    from datetime import UTC, datetime

    from store.scope import NATIONAL
    from store.throttle import locks
    from store.users import list_users

    with database(load_settings()) as conn:
        held = {
            (lock.kind, lock.subject): lock.locked_until for lock in locks(conn, datetime.now(UTC))
        }
        for user in list_users(conn, scope=NATIONAL):
            state = "  disabled" if user.disabled else ""
            if until := held.pop(("account", user.username), None):
                state += f"  locked until {until:%Y-%m-%d %H:%M %Z} (ioc users unlock)"
            typer.echo(
                f"{user.username:<24} {user.role.value:<9} {user.display_name:<24}"
                f" {_sees(user.provinces)}{state}"
            )
        # Locks on names that are no account, and on addresses, are news to an admin too.
        for (kind, subject), until in held.items():
            typer.echo(f"{kind} {subject} locked until {until:%Y-%m-%d %H:%M %Z}")


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


@users_app.command("remove")
@clear_errors
def users_remove(username: str) -> None:
    """Delete a user and their sessions (the audit log keeps their name)."""
    from store.users import remove_user

    with database(load_settings()) as conn:
        try:
            remove_user(conn, username)
        except LookupError as err:
            raise ValueError(str(err)) from None
    typer.echo(f"user {username} removed")


@users_app.command("unlock")
@clear_errors
def users_unlock(
    username: Annotated[str | None, typer.Argument(help="the account to unlock")] = None,
    address: Annotated[
        str | None, typer.Option(help="also (or only) lift the lock of this client address")
    ] = None,
) -> None:
    """Lift a login lock set by too many failed logins, before it ends by itself."""
    from store.audit_log import cli_actor
    from store.throttle import unlock

    if username is None and address is None:
        raise ValueError("name an account, --address, or both")
    with database(load_settings()) as conn:
        lifted = unlock(conn, username=username, address=address, by=cli_actor())
    what = " and ".join(x for x in (username, address and f"address {address}") if x)
    typer.echo(f"{what}: {'unlocked' if lifted else 'was not locked'}")


@users_app.command("audit")
@clear_errors
def users_audit(
    user: Annotated[str | None, typer.Option(help="only this user's actions")] = None,
    limit: Annotated[int, typer.Option(help="entries, latest first")] = 50,
) -> None:
    """The audit log: logins, failed logins, locks, alert actions and user changes."""
    from store.audit_log import latest

    with database(load_settings()) as conn:
        for e in latest(conn, actor=user, limit=limit):
            where = e.address or "-"
            extra = "  ".join(x for x in (e.subject, e.detail) if x)
            typer.echo(f"{e.at:%Y-%m-%d %H:%M:%S} {e.actor:<20} {where:<15} {e.event:<13} {extra}")
