"""``ioc secrets``: the deployment's secret files (ioc/secrets.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ioc.cli_common import clear_errors
from ioc.secrets import DEFAULT_FOLDER

secrets_app: typer.Typer = typer.Typer(help="Deployment secrets.", no_args_is_help=True)


@secrets_app.command("init")
@clear_errors
def secrets_init(
    folder: Annotated[
        Path, typer.Argument(help="where compose's secrets: files live")
    ] = DEFAULT_FOLDER,
    ingesters: Annotated[int, typer.Option(help="ingester broker accounts, one each")] = 2,
    webhook: Annotated[
        list[str] | None, typer.Option(help="an alert webhook's name, for its HMAC key")
    ] = None,
    rotate: Annotated[
        list[str] | None,
        typer.Option(help="renew this secret (a file name, or webhook:NAME); repeatable"),
    ] = None,
) -> None:
    """Make every missing secret (random, 256 bits); existing ones are kept unless --rotate."""
    from ioc.secrets import WEBHOOK_SECRETS, deployment_secrets, init_secrets

    made, kept = init_secrets(folder, ingesters=ingesters, webhooks=webhook or (),
                              rotate=rotate or ())  # fmt: skip
    purpose = {s.name: s.purpose for s in deployment_secrets(ingesters=ingesters)}
    for name in made:
        hook = name.removeprefix("webhook:")  # one key inside the webhooks' file
        if hook != name:
            typer.echo(f"made {folder / WEBHOOK_SECRETS}: HMAC key of webhook {hook}")
        else:
            typer.echo(f"made {folder / name}: {purpose[name]}")
    typer.echo(f"{folder}: {len(made)} made, {len(kept)} kept as they were")
    if made:
        typer.echo("next: ioc devices provision (broker accounts); a rotated database login "
                   "or account takes effect when migrate and its services restart")  # fmt: skip
