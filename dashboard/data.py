"""The dashboard's one door to the database (a pool shared by all browser sessions) and its
config, which the shell's entry script (ioc/dashboard_main.py) builds from the settings tree
and hands over with ``configure`` before the pages run: dashboard/ may not import ioc/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import psycopg
import streamlit as st
from psycopg_pool import ConnectionPool

from dashboard.i18n import t
from store.throttle import Throttle
from store.users import PermissionDenied

if TYPE_CHECKING:  # only the type: the panel that runs the advisor imports it
    from processing.coverage.advise import AdvisorSetup


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardConfig:
    database_url: str | None  # None: the pages say which setting is missing
    refresh_s: float  # live map refresh period
    tile_url: str | None  # an XYZ raster tile URL ({z}/{x}/{y}) on the closed network, or none
    session_hours: float  # a login lasts
    idle_minutes: float  # a login unused this long ends
    login_failures: int  # failed logins of one account within the window that lock it
    address_failures: int  # failed logins from one address within the window that lock it
    login_window_minutes: float
    lockout_minutes: float
    advisor: AdvisorSetup | None = None  # the siting advisor's settings; None: panel off
    map_skip: tuple[str, ...] = ()  # layer ids the map leaves out: a bench times each so


# Set by the entry script at the top of every run, before st.navigation runs a page; one
# value per server process, since every session reads the same settings.
_config: DashboardConfig | None = None


def configure(config: DashboardConfig) -> None:
    global _config
    _config = config


def config() -> DashboardConfig:
    if _config is None:
        raise RuntimeError("the dashboard runs from ioc/dashboard_main.py (`ioc dashboard`)")
    return _config


def refresh_seconds() -> float:
    return config().refresh_s


def tile_url() -> str | None:
    return config().tile_url


def session_ttl() -> timedelta:
    return timedelta(hours=config().session_hours)


def idle_timeout() -> timedelta:
    return timedelta(minutes=config().idle_minutes)


def login_limits() -> Throttle:
    c = config()
    return Throttle(
        account_failures=c.login_failures,
        address_failures=c.address_failures,
        window=timedelta(minutes=c.login_window_minutes),
        lockout=timedelta(minutes=c.lockout_minutes),
    )


@st.cache_resource(show_spinner=False)
def _pool(url: str) -> ConnectionPool:
    # One pool per server process: Streamlit runs each browser session in its own thread, and
    # a shared single connection would interleave one session's transaction with another's.
    pool = ConnectionPool(
        url, min_size=1, max_size=8, kwargs={"autocommit": True}, open=False, name="dashboard"
    )
    pool.open(wait=True, timeout=10)
    return pool


@contextmanager
def db() -> Iterator[psycopg.Connection]:
    url = config().database_url
    if not url:
        st.error(t("app.no_database", env="IOC_DATABASE_URL"))
        st.stop()
    with _pool(url).connection() as conn:
        yield conn


@contextmanager
def refusals_shown(*shown: type[Exception]) -> Iterator[None]:
    """Around a page's write: a refusal (the user's role, the database role's grants) or a
    value the store turns down (``ValueError`` and ``shown``) is told to the user, not raised."""
    turned_down: tuple[type[Exception], ...] = (ValueError, *shown)
    try:
        yield
    except PermissionDenied as err:
        st.error(t("alerts.refused", reason=str(err)))
    except psycopg.errors.InsufficientPrivilege:  # the database role the dashboard runs as
        st.error(t("app.db_refused"))
    except turned_down as err:
        st.error(str(err))
