"""Cameras as the camera page shows them: each one's state and latest reading, and whether an
alert says its storage is nearly full (the threshold is the alert rule's, not repeated here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from devices.kinds import Kind
from store.readings import LATEST_WINDOW, health_case, latest_table
from store.scope import Scope, clause

STORAGE_RULE = "camera_storage_low"  # processing/alerts/rules.toml


@dataclass(frozen=True, slots=True)
class CameraState:
    device_id: str
    name: str | None
    district_code: int | None
    district_name: str | None
    commune_name: str | None
    state: str  # a devices.health.DisplayState, as the map shows it
    last_seen: datetime | None
    # Latest reading within the latest window, from the last-state table the ingest writer keeps
    # (0017): never a search of the readings hypertable. None: none, or not reported.
    online: bool | None
    recording: bool | None
    storage_free_pct: float | None
    tamper: bool | None
    storage_alert: bool  # an unresolved storage alert stands on it


def cameras(conn: psycopg.Connection, now: datetime, *, scope: Scope) -> list[CameraState]:
    """The cameras in the scope, in device order."""
    query = sql.SQL(
        "SELECT d.device_id, d.name, d.district_code, ds.name AS district_name,"
        " c.name AS commune_name,"
        " CASE WHEN d.state <> 'online' THEN d.state WHEN r.device_id IS NULL THEN 'online'"
        " ELSE {health} END AS state, d.last_seen,"
        " r.online, r.recording, r.storage_free_pct, r.tamper,"
        " EXISTS (SELECT 1 FROM alerts a WHERE a.rule = %(rule)s AND a.subject = d.device_id"
        "   AND a.state <> 'resolved') AS storage_alert"
        " FROM devices d LEFT JOIN districts ds ON ds.code = d.district_code"
        " LEFT JOIN communes c ON c.code = d.commune_code"
        " LEFT JOIN (SELECT device_id, online, recording, storage_free_pct, tamper FROM {latest}"
        "   WHERE ts > %(since)s) r ON r.device_id = d.device_id"
        " WHERE d.kind = 'camera' AND {scoped} ORDER BY d.device_id"
    ).format(
        health=health_case(Kind.CAMERA),
        latest=sql.Identifier(latest_table(Kind.CAMERA)),
        scoped=sql.SQL(clause("d.district_code", "%(scope)s")),
    )
    with conn.cursor(row_factory=class_row(CameraState)) as cur:
        cur.execute(
            query, {"since": now - LATEST_WINDOW, "rule": STORAGE_RULE, "scope": scope.param}
        )
        return cur.fetchall()
