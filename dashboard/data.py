"""The dashboard's one door to the database (a pool shared by all browser sessions) and its
settings, read from the ``IOC_*`` variables that `ioc up` / `ioc dashboard` pass on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import streamlit as st
from psycopg_pool import ConnectionPool

from dashboard.i18n import t

# Declared and documented in ioc/settings.py; the dashboard may not import ioc/, so it reads
# the environment that the shell sets from those settings.
DATABASE_URL_ENV = "IOC_DATABASE_URL"
REFRESH_ENV = "IOC_DASHBOARD_REFRESH_S"
TILE_URL_ENV = "IOC_DASHBOARD_TILE_URL"
SESSION_HOURS_ENV = "IOC_DASHBOARD_SESSION_HOURS"


def refresh_seconds() -> float:
    return float(os.environ.get(REFRESH_ENV, "5"))


def tile_url() -> str | None:
    """An XYZ raster tile URL ({z}/{x}/{y}) on the closed network, or None for no basemap."""
    return os.environ.get(TILE_URL_ENV) or None


def session_ttl() -> timedelta:
    return timedelta(hours=float(os.environ.get(SESSION_HOURS_ENV, "12")))


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
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        st.error(t("app.no_database", env=DATABASE_URL_ENV))
        st.stop()
    with _pool(url).connection() as conn:
        yield conn
