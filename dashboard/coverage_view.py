"""The coverage engine's results as the dashboard shows them (store/coverage.py, issue 4)."""

from __future__ import annotations

from typing import Any

import psycopg
import pydeck as pdk

from dashboard.headline import CoverageHeadline


def dead_spot_ids(conn: psycopg.Connection) -> set[str]:
    return set()


def coverage_headline(
    conn: psycopg.Connection, villages: list[dict[str, Any]]
) -> CoverageHeadline | None:
    return None


def coverage_layer(conn: psycopg.Connection, operator: str) -> list[pdk.Layer]:
    return []


def tower_dependents(conn: psycopg.Connection, device_id: str) -> list[dict[str, Any]] | None:
    """Villages served by this tower (``sole``: by it alone); None without a coverage engine."""
    return None


def report(conn: psycopg.Connection) -> dict[str, Any] | None:
    return None
