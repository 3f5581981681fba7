"""The ``ioc`` command."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from ioc.cli_alerts import alerts_app
from ioc.cli_certs import certs_app
from ioc.cli_common import (
    clear_errors,
    database,
    load_settings,
    require_database,
    require_mqtt,
    setup_logging,
)
from ioc.cli_coverage import coverage_app
from ioc.cli_devices import devices_app
from ioc.cli_roles import roles_app
from ioc.cli_simulate import simulate_app
from ioc.cli_users import users_app
from ioc.errors import SettingError
from ioc.settings import Settings

app = typer.Typer(help="IOC telemetry service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
scenario_app = typer.Typer(help="The Bình Định scenario.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(scenario_app, name="scenario")
app.add_typer(users_app, name="users")
app.add_typer(alerts_app, name="alerts")
app.add_typer(devices_app, name="devices")
app.add_typer(certs_app, name="certs")
app.add_typer(coverage_app, name="coverage")
app.add_typer(roles_app, name="roles")
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


@scenario_app.command("info")
@clear_errors
def scenario_info() -> None:
    """Print the scenario's headline counts."""
    from seeds import load_scenario

    for key, value in load_scenario().summary().items():
        typer.echo(f"{key:<38} {value}")


@scenario_app.command("load")
@clear_errors
def scenario_load() -> None:
    """Load places and the device registry into the database (idempotent)."""
    from ioc.scenario import load_into
    from store.migrate import upgrade

    with database(load_settings()) as conn:
        upgrade(conn)
        counts = load_into(conn)
    typer.echo("loaded " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def ingest_config(settings: Settings, client_id: str | None = None, shared: bool = False) -> Any:
    from ingest.config import IngestConfig
    from ioc.production import share_group_problem

    production = shared and settings.mode == "production"
    if production and (problem := share_group_problem(settings.ingest_share_group)):
        raise SettingError(problem)
    return IngestConfig(
        share_group=settings.ingest_share_group,
        database_url=require_database(settings),
        mqtt_url=require_mqtt(settings),
        topic_root=settings.topic_root,
        client_id=client_id or settings.ingest_client_id,
        shared_subscription=shared,
        batch_size=settings.ingest_batch_size,
        batch_age_s=settings.ingest_batch_age_s,
        writers=settings.ingest_writers,
        max_payload_bytes=settings.max_payload_bytes,
        max_future_s=settings.max_future_s,
        max_age_s=settings.max_age_days * 86400,
        max_topic_chars=settings.max_topic_chars,
        window_bytes=settings.ingest_window_mb * 1024 * 1024,
        self_register=settings.self_register,
        protocol=settings.mqtt_protocol,
        metrics_address=settings.ingest_metrics_address,
    )


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
        int, typer.Option(envvar="IOC_INGEST_METRICS_PORT", help="/metrics, /health; 0: none")
    ] = 9464,
    log_json: Annotated[bool, typer.Option("--log-json", help="one JSON object a line")] = False,
) -> None:
    """Run an ingester: MQTT → database (SIGTERM drains, commits and acks, then exits 0)."""
    from ioc.cli_ingest import ingest_command

    setup_logging()
    ingest_command(
        lambda: ingest_config(load_settings(), client_id, shared or instances > 1),
        instances=instances, stats=stats, metrics_port=metrics_port, log_json=log_json,
    )


@app.command()
@clear_errors
def processing() -> None:
    """Run the processing jobs (liveness)."""
    from processing.liveness import LivenessConfig, run_liveness

    setup_logging()
    settings = load_settings()
    config = LivenessConfig(
        database_url=require_database(settings),
        missed_intervals=settings.liveness_missed_intervals,
        min_silence_s=settings.liveness_min_silence_s,
        check_every_s=settings.liveness_check_s,
    )
    asyncio.run(run_liveness(config))


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
    cmd = dashboard_command(port or settings.dashboard_port, address)
    os.execv(cmd[0], cmd)


@app.command()
@clear_errors
def up(
    speed: Annotated[float | None, typer.Option(help="fleet time acceleration")] = None,
    limit: Annotated[int | None, typer.Option(help="simulate only the first N devices")] = None,
    port: Annotated[int | None, typer.Option(help="dashboard port")] = None,
) -> None:
    """Everything on one machine: database, broker, ingester, processing, fleet, dashboard."""
    from ioc.up import run_up

    setup_logging()
    run_up(load_settings(), speed=speed, limit=limit, port=port)


def main() -> None:
    app()
