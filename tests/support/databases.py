"""Databases for the tests and the benchmarks: scratch ones made and dropped in one place, and
the one query helper."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from store.audit import reading_rows


@contextmanager
def scratch_database(server_url: str, prefix: str = "ioc_test") -> Iterator[str]:
    """A new empty database on this server, and its URL; dropped (sessions and all) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo("", **info)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """One query on a connection of its own: the tests' way to look at the database."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def stored_readings(database_url: str) -> int:
    """Readings on disk, or -1 while the database does not answer (a fault test's restart)."""
    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            return reading_rows(conn)
    except psycopg.OperationalError:
        return -1
