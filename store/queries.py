"""Named read queries for processing and the dashboard: the only SQL outside the write path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row


@dataclass(frozen=True, slots=True)
class DeviceMapRow:
    device_id: str
    kind: str
    name: str | None
    operator: str | None
    lat: float
    lon: float
    district_code: int | None
    state: str
    state_since: datetime | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class StateCount:
    kind: str
    state: str
    devices: int


def device_map(conn: psycopg.Connection) -> list[DeviceMapRow]:
    with conn.cursor(row_factory=class_row(DeviceMapRow)) as cur:
        cur.execute(
            "SELECT device_id, kind, name, operator, lat, lon, district_code, state,"
            " state_since, last_seen FROM devices"
            " WHERE lat IS NOT NULL AND lon IS NOT NULL AND kind <> 'probe' ORDER BY device_id"
        )
        return cur.fetchall()


def state_counts(conn: psycopg.Connection) -> list[StateCount]:
    with conn.cursor(row_factory=class_row(StateCount)) as cur:
        cur.execute(
            "SELECT kind, state, count(*)::int AS devices FROM devices"
            " GROUP BY kind, state ORDER BY kind, state"
        )
        return cur.fetchall()


def districts(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT code, name, town, lat, lon, mountainous, polygon FROM districts ORDER BY code"
        )
        return cur.fetchall()


def map_features(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT name, kind, points, synthetic FROM map_features ORDER BY kind, name")
        return cur.fetchall()


def villages(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT village_id, name, commune_code, district_code, lat, lon, population,"
            " seed_dead_spot FROM villages ORDER BY village_id"
        )
        return cur.fetchall()


def reject_counts(conn: psycopg.Connection, since: datetime) -> dict[str, int]:
    rows = conn.execute(
        "SELECT reason, count(*) FROM rejects WHERE received_at >= %s GROUP BY reason", (since,)
    ).fetchall()
    return {reason: int(n) for reason, n in rows}


def status_events(
    conn: psycopg.Connection, device_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT ts, state, reason FROM status_events WHERE device_id = %s"
            " ORDER BY ts DESC LIMIT %s",
            (device_id, limit),
        )
        return cur.fetchall()


async def known_device_ids(conn: psycopg.AsyncConnection) -> set[str]:
    cur = await conn.execute("SELECT device_id FROM devices")
    return {row[0] for row in await cur.fetchall()}
