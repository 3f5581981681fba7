"""The device registry: one upsert for birth records and scenario loads, with change history;
the devices on the map, search, a device's detail and status history, the known ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.rows import class_row, dict_row

from devices.health import KEY_METRICS, latest_metrics
from devices.kinds import Kind
from store.readings import LATEST_WINDOW, health_case, latest_table
from store.scope import Scope, clause, device_clause, params

# Birth records are re-sent on every reconnect: only a real change of the document is
# written, and each change leaves a row in device_meta_history. A birth is merged over the
# registered record (merged_birth does the same in Python): a field it leaves out keeps its
# registered value, so a partial record (older firmware, a foreign client) never wipes the
# site's operator or sectors.
UPSERT_DEVICE = """
WITH upserted AS (
    INSERT INTO devices AS d (device_id, kind, name, operator, lat, lon, district_code,
                              commune_code, interval_s, meta, meta_updated)
    VALUES (%(device_id)s, %(kind)s, %(name)s, %(operator)s, %(lat)s, %(lon)s, %(district_code)s,
            %(commune_code)s, coalesce(%(interval_s)s, 60), %(meta)s::jsonb, now())
    ON CONFLICT (device_id) DO UPDATE SET
        kind = EXCLUDED.kind, name = coalesce(%(name)s, d.name),
        operator = coalesce(%(operator)s, d.operator),
        lat = EXCLUDED.lat, lon = EXCLUDED.lon,
        district_code = coalesce(%(district_code)s, d.district_code),
        commune_code = coalesce(%(commune_code)s, d.commune_code),
        interval_s = coalesce(%(interval_s)s, d.interval_s),
        meta = coalesce(d.meta, '{}') || EXCLUDED.meta, meta_updated = now()
    WHERE d.meta IS DISTINCT FROM coalesce(d.meta, '{}') || EXCLUDED.meta
    RETURNING device_id, meta
)
INSERT INTO device_meta_history (device_id, meta) SELECT device_id, meta FROM upserted
"""

_VOLATILE = ("ts", "seq")  # change on every birth; not part of the device's description


def _description(document: dict[str, Any]) -> dict[str, Any]:
    """The fields of a birth record that describe the device (what the registry keeps)."""
    return {k: v for k, v in document.items() if k not in _VOLATILE and v is not None}


def device_row(kind: Kind, document: dict[str, Any]) -> dict[str, Any]:
    meta = _description(document)
    return {
        "device_id": document["device_id"],
        "kind": kind.value,
        "name": meta.get("name"),
        "operator": meta.get("operator"),
        "lat": meta.get("lat"),
        "lon": meta.get("lon"),
        "district_code": meta.get("district_code"),
        "commune_code": meta.get("commune_code"),
        "interval_s": meta.get("interval_s"),
        "meta": msgspec.json.encode(meta).decode(),
    }


def merged_birth(registered: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The record a birth leaves in the registry: its fields over the registered ones."""
    return registered | _description(document)


async def registered_births(
    conn: psycopg.AsyncConnection, kind: Kind, device_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The registered birth records of these devices of one kind (those the registry has)."""
    cur = await conn.execute(
        "SELECT device_id, meta FROM devices WHERE kind = %s AND device_id = ANY(%s)",
        (kind.value, device_ids),
    )
    return {r[0]: r[1] for r in await cur.fetchall() if isinstance(r[1], dict)}


def register_devices(conn: psycopg.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Upsert device registry rows (built with :func:`device_row`)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(UPSERT_DEVICE, list(rows))


async def known_device_ids(conn: psycopg.AsyncConnection) -> set[str]:
    cur = await conn.execute("SELECT device_id FROM devices")
    return {row[0] for row in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class MapDevice:
    device_id: str
    kind: str
    name: str | None
    operator: str | None
    lat: float
    lon: float
    district_code: int | None
    state: str  # a devices.health.DisplayState: liveness refined by the latest reading
    last_seen: datetime | None
    latest: dict[str, Any] | None  # key metrics of the latest reading (metric name → value)


def map_devices(conn: psycopg.Connection, now: datetime, *, scope: Scope) -> list[MapDevice]:
    """Towers, cameras and broadband nodes with a position, in the state the map shows. The
    latest reading comes from the last-state tables the writer keeps (migration 0017), never
    from a search of the readings hypertables."""
    rows: list[MapDevice] = []
    for kind in KEY_METRICS:
        metrics = latest_metrics(kind)
        # The latest reading's metrics come back as columns and become a dict here: cheaper
        # than a JSON document per device built, sent and parsed on every refresh.
        query = sql.SQL(
            "SELECT d.device_id, d.kind, d.name, d.operator, d.lat, d.lon, d.district_code,"
            " CASE WHEN d.state <> 'online' THEN d.state WHEN r.device_id IS NULL THEN 'online'"
            " ELSE {health} END AS state, d.last_seen, r.device_id IS NOT NULL, {metrics}"
            " FROM devices d LEFT JOIN ("
            "   SELECT device_id, {columns} FROM {table} WHERE ts > %(since)s"
            " ) r ON r.device_id = d.device_id"
            " WHERE d.kind = %(kind)s AND d.lat IS NOT NULL AND d.lon IS NOT NULL"
            f" AND {clause('d.district_code', '%(scope)s')}"
            ' ORDER BY d.device_id COLLATE "C"'
        ).format(
            health=health_case(kind),
            metrics=sql.SQL(", ").join(sql.Identifier("r", m) for m in metrics),
            columns=sql.SQL(", ").join(sql.Identifier(m) for m in metrics),
            table=sql.Identifier(latest_table(kind)),
        )
        found = conn.execute(
            query, {"since": now - LATEST_WINDOW, "kind": kind.value, "scope": scope.param}
        )
        for device_id, kind_, name, op, lat, lon, district, state, seen, has, *values in found:
            latest = dict(zip(metrics, values, strict=True)) if has else None
            rows.append(MapDevice(device_id, kind_, name, op, lat, lon, district, state, seen,
                                  latest))  # fmt: skip
    return rows


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    device_id: str
    kind: str
    name: str | None
    operator: str | None
    district_code: int | None
    state: str


def search_devices(
    conn: psycopg.Connection, text: str, limit: int = 25, *, scope: Scope
) -> list[DeviceSummary]:
    """Devices in the scope whose id or name contains ``text`` (any case); exact id first."""
    pattern = "%" + text.strip().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
    with conn.cursor(row_factory=class_row(DeviceSummary)) as cur:
        cur.execute(
            "SELECT device_id, kind, name, operator, district_code, state FROM devices"
            " WHERE kind <> 'probe' AND (device_id ILIKE %(p)s OR name ILIKE %(p)s)"
            f" AND {clause('district_code', '%(scope)s')}"
            " ORDER BY (lower(device_id) = lower(%(t)s)) DESC, device_id LIMIT %(limit)s",
            {"p": pattern, "t": text.strip(), "limit": limit, "scope": scope.param},
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    device_id: str
    kind: str
    name: str | None
    operator: str | None
    lat: float | None
    lon: float | None
    district_code: int | None
    district_name: str | None
    commune_code: int | None
    commune_name: str | None
    interval_s: int
    meta: dict[str, Any]
    state: str
    state_since: datetime | None
    state_reason: str | None
    last_seen: datetime | None


def device_detail(conn: psycopg.Connection, device_id: str, *, scope: Scope) -> DeviceDetail | None:
    """None when there is no such device, or it lies outside the scope: the two look alike."""
    with conn.cursor(row_factory=class_row(DeviceDetail)) as cur:
        cur.execute(
            "SELECT d.device_id, d.kind, d.name, d.operator, d.lat, d.lon, d.district_code,"
            " ds.name AS district_name, d.commune_code, c.name AS commune_name, d.interval_s,"
            " d.meta, d.state, d.state_since, d.state_reason, d.last_seen FROM devices d"
            " LEFT JOIN districts ds ON ds.code = d.district_code"
            " LEFT JOIN communes c ON c.code = d.commune_code"
            f" WHERE d.device_id = %s AND {clause('d.district_code')}",
            (device_id, *params(scope)),
        )
        return cur.fetchone()


def status_events(
    conn: psycopg.Connection, device_id: str, limit: int = 50, *, scope: Scope
) -> list[dict[str, Any]]:
    """A device's state changes, newest first (none for a device outside the scope)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT ts, state, reason FROM status_events WHERE device_id = %s"
            f" AND {device_clause('device_id')} ORDER BY ts DESC LIMIT %s",
            (device_id, *params(scope), limit),
        )
        return cur.fetchall()
