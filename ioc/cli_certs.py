"""``ioc certs``: certificates for the broker's TLS listener and the dashboard's proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ioc.cli_common import clear_errors

certs_app: typer.Typer = typer.Typer(help="TLS certificates.", no_args_is_help=True)
DEFAULT_FOLDER = Path("deploy/mosquitto/certs")


@certs_app.command("dev")
@clear_errors
def certs_dev(
    out: Annotated[Path, typer.Option(help="folder for ca.crt, server.crt, server.key")] = (
        DEFAULT_FOLDER
    ),
    host: Annotated[
        list[str] | None, typer.Option("--host", help="broker name or address (repeatable)")
    ] = None,
    days: Annotated[int, typer.Option(help="validity")] = 30,
    force: Annotated[bool, typer.Option(help="replace an existing CA")] = False,
    owner: Annotated[
        str | None, typer.Option(help="the broker's user, to read server.key (compose: 1883)")
    ] = None,
) -> None:
    """A throwaway CA and broker certificate, for tests and trials only."""
    from ioc.certs import DEFAULT_HOSTS, CertFiles, make_dev_ca

    if CertFiles(out).ca_key.exists() and not force:
        raise ValueError(f"--out: {out} already holds a CA (ca.key); --force replaces it")
    files = make_dev_ca(out, tuple(host) if host else DEFAULT_HOSTS, days=days)
    if owner is not None:
        from ioc.provision import give_to

        give_to(files.server_key, owner)
    typer.echo(f"CA {files.ca_cert} and broker certificate {files.server_cert} ({days} days)")
    typer.echo(f"clients trust it with: mqtts://HOST:8883?ca_file={files.ca_cert.resolve()}")


@certs_app.command("dashboard")
@clear_errors
def certs_dashboard(
    out: Annotated[Path, typer.Option(help="folder for dashboard.crt, dashboard.key")] = Path(
        "deploy/proxy"
    ),
    ca: Annotated[Path, typer.Option(help="the folder of `ioc certs dev`'s CA")] = DEFAULT_FOLDER,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="the name users open the dashboard at (repeatable)"),
    ] = None,
    days: Annotated[int, typer.Option(help="validity")] = 30,
) -> None:
    """The reverse proxy's certificate, signed by the throwaway CA (trials; production: yours)."""
    from ioc.certs import DASHBOARD_HOSTS, CertFiles, sign_server_cert

    cert, key = out / "dashboard.crt", out / "dashboard.key"
    sign_server_cert(CertFiles(ca), cert, key, tuple(host) if host else DASHBOARD_HOSTS, days=days)
    typer.echo(f"dashboard certificate {cert} (key {key}), signed by {CertFiles(ca).ca_cert}")
