"""The ``ioc`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

import ioc.cli_coverage_at  # noqa: F401  (registers `ioc coverage at`)
from ioc import cli_availability  # noqa: F401  (registers `ioc coverage availability`)
from ioc.cli_alerts import alerts_app
from ioc.cli_certs import certs_app
from ioc.cli_common import clear_errors, database, given, load_settings, setup_logging
from ioc.cli_coverage import coverage_app
from ioc.cli_devices import devices_app
from ioc.cli_roles import roles_app
from ioc.cli_secrets import secrets_app
from ioc.cli_simulate import simulate_app
from ioc.cli_users import users_app
from ioc.configs import ingest_config, liveness_config, require_database
from ioc.settings import Settings

app = typer.Typer(help="IOC telemetry service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
scenario_app = typer.Typer(
    help="A province's scenario: Bình Định's published one, or any of the 63 generated.",
    no_args_is_help=True,
)
Province = Annotated[
    str | None,
    typer.Option(
        help='any of the 63 by name or GSO code, e.g. "Bắc Giang", or several separated by '
        "commas, one deployment watching them all (IOC_PROVINCE)"
    ),
]
app.add_typer(db_app, name="db")
app.add_typer(scenario_app, name="scenario")
app.add_typer(users_app, name="users")
app.add_typer(alerts_app, name="alerts")
app.add_typer(devices_app, name="devices")
app.add_typer(certs_app, name="certs")
app.add_typer(coverage_app, name="coverage")
app.add_typer(roles_app, name="roles")
app.add_typer(secrets_app, name="secrets")
app.add_typer(simulate_app, name="simulate")


@db_app.command("upgrade")
@clear_errors
def db_upgrade() -> None:
    """Apply pending migrations (a second run does nothing)."""
    from store.migrate import current_flavor, upgrade

    with database(load_settings()) as conn:
        applied = upgrade(conn)
        flavor = current_flavor(conn)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing to apply"
    typer.echo(f"schema up to date ({flavor}): {names}")


def _province(settings: Settings, province: str | None) -> Settings:
    """The settings with ``--province`` in force, checked: an unknown name stops us here."""
    from seeds.national import province_codes

    chosen = province or settings.province
    province_codes(chosen)
    return settings.model_copy(update={"province": chosen})


@scenario_app.command("info")
@clear_errors
def scenario_info(province: Province = None) -> None:
    """Print the scenario's headline counts."""
    from seeds import load_scenario
    from seeds.national import province_codes

    codes = province_codes(_province(load_settings(), province).province)
    for code in codes:
        for key, value in load_scenario(code).summary().items():
            typer.echo(f"{key:<38} {value}")


@scenario_app.command("generate")
@clear_errors
def scenario_generate(
    province: Province = None,
    every: Annotated[bool, typer.Option("--all", help="all 63 provinces, national totals")] = False,
    out: Annotated[Path | None, typer.Option(help="write each places document here")] = None,
) -> None:
    """Build provinces' scenarios (synthetic but for Bình Định, deterministic) and count them."""
    from ioc.scenario import generate, line
    from seeds.national import all_codes

    if every == (province is not None):
        raise ValueError("give --province NAME or --all")
    chosen: list[str | int] = list(all_codes()) if every else [province or ""]
    totals = generate(chosen, out, lambda text: typer.echo(text, err=every))
    if every:
        typer.echo(f"national: {line(totals)}")


@scenario_app.command("load")
@clear_errors
def scenario_load(province: Province = None) -> None:
    """Load places and the device registry into the database (idempotent)."""
    from ioc.scenario import load_into
    from store.migrate import upgrade

    settings = _province(load_settings(), province)
    with database(settings) as conn:
        upgrade(conn)
        counts = load_into(conn, settings.province)
    typer.echo("loaded " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@app.command()
@clear_errors
def ingest(
    client_id: Annotated[str | None, typer.Option(help="stable MQTT client id")] = None,
    shared: Annotated[
        bool, typer.Option(help="join the ingesters' shared group (IOC_INGEST_SHARE_GROUP)")
    ] = False,
    instances: Annotated[int, typer.Option(help="N ingesters on the shared subscription")] = 1,
    stats: Annotated[bool, typer.Option("--stats", help="ask running ones: keeping up?")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="/metrics, /health; 0: none (IOC_INGEST_METRICS_PORT)")
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="one JSON object a line")] = False,
) -> None:
    """Run an ingester: MQTT → database (SIGTERM drains, commits and acks, then exits 0)."""
    from ioc.cli_ingest import ingest_command

    setup_logging()
    settings = load_settings()
    ingest_command(
        lambda: ingest_config(
            settings, shared=shared or instances > 1, **given(client_id=client_id)
        ),
        instances=instances,
        stats=stats,
        metrics_port=settings.ingest.metrics_port if metrics_port is None else metrics_port,
        log_json=log_json,
    )


@app.command()
@clear_errors
def processing() -> None:
    """Run the processing jobs (liveness)."""
    from processing.liveness import run_liveness

    setup_logging()
    asyncio.run(run_liveness(liveness_config(load_settings())))


@app.command()
@clear_errors
def dashboard(
    port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
    address: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
) -> None:
    """Serve the Streamlit IOC view."""
    import os

    from ioc.up import dashboard_command

    settings = load_settings()
    require_database(settings)
    cmd = dashboard_command(
        port or settings.dashboard.port, address, production=settings.mode == "production"
    )
    os.execv(cmd[0], cmd)


@app.command()
@clear_errors
def up(
    speed: Annotated[float | None, typer.Option(help="fleet time acceleration")] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="simulate only the first N devices (with a scenario: N beside its own)"),
    ] = None,
    port: Annotated[int | None, typer.Option(help="dashboard port")] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(help="play this scenario file (scenarios/*.yaml) on the province's fleet"),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="a typhoon in about five minutes, then the fleet goes on")
    ] = False,
    province: Province = None,
) -> None:
    """Everything on one machine: database, broker, ingester, processing, fleet, dashboard."""
    from ioc.story import story_for
    from ioc.up import run_up
    from seeds.national import BINH_DINH, province_codes

    settings = _province(load_settings(), province)
    if (scenario or demo) and BINH_DINH not in province_codes(settings.province):
        raise ValueError(
            "--scenario and --demo play Bình Định's devices (scenarios/*.yaml name them): "
            f"not with the province {settings.province!r}"
        )
    story = story_for(scenario, demo=demo, speed=speed)  # a bad file stops us before anything
    setup_logging()
    run_up(settings, speed=speed, limit=limit, port=port, story=story)


def main() -> None:
    app()
