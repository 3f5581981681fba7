"""The dashboard's one door to the database: a cached connection and the store's named queries."""

from __future__ import annotations

import os

import psycopg
import streamlit as st

from store.db import connect

# Set by `ioc up` / `ioc dashboard` from the service's settings (ioc/settings.py).
DATABASE_URL_ENV = "IOC_DATABASE_URL"
REFRESH_ENV = "IOC_DASHBOARD_REFRESH_S"


def refresh_seconds() -> float:
    return float(os.environ.get(REFRESH_ENV, "5"))


@st.cache_resource
def _connection(url: str) -> psycopg.Connection:
    return connect(url, autocommit=True)


def connection() -> psycopg.Connection:
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        st.error(
            f"{DATABASE_URL_ENV} is not set: start the dashboard with `ioc up` or `ioc dashboard`."
        )
        st.stop()
    conn = _connection(url)
    if conn.closed or conn.broken:
        _connection.clear()
        conn = _connection(url)
    return conn
