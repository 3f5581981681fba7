"""Connections, and the one place that decides between the TimescaleDB and plain paths."""

from __future__ import annotations

from enum import StrEnum

import psycopg


class StoreUnavailable(RuntimeError):
    """The database named by a setting cannot be reached or used."""


class Flavor(StrEnum):
    TIMESCALE = "timescale"
    PLAIN = "plain"


def connect(url: str, *, autocommit: bool = False, timeout_s: float = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=int(timeout_s))
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreUnavailable(f"cannot connect to the database: {first}") from err
    except psycopg.ProgrammingError as err:
        raise StoreUnavailable(f"invalid database URL: {err}") from err


async def aconnect(url: str, *, timeout_s: float = 10) -> psycopg.AsyncConnection:
    """An autocommit connection: work that must be atomic uses ``conn.transaction()``."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=int(timeout_s)
        )
    except psycopg.OperationalError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StoreUnavailable(f"cannot connect to the database: {first}") from err


def detect_flavor(conn: psycopg.Connection) -> Flavor:
    """TimescaleDB when the extension is installed here, or the server preloads it; else plain.

    The library must be in ``shared_preload_libraries``: a server that merely has the files
    (``pg_available_extensions``) ends the session on ``CREATE EXTENSION``.
    """
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return Flavor.TIMESCALE
    row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if not row or "timescaledb" not in str(row[0]):
        return Flavor.PLAIN
    with conn.transaction():
        conn.execute("SET LOCAL client_min_messages = warning")
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    return Flavor.TIMESCALE
