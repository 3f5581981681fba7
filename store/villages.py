"""One village as the dashboard's detail page shows it, and the villages a tower's coverage
changes have touched: reads over the places (0001), the coverage engine's verdicts and its
village events (0004), and which towers serve which village now (0019, ``place_towers``).

A tower and a village meet in two records: ``place_towers``, the engine's current picture of
which towers' predicted signal covers the village (written with N-1, so it may trail a change
by ``critical_every_s``), and the events that name a tower as the cause of a village's loss or
return of signal (history)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from store.scope import Scope, clause, device_clause, params, village_clause

Row = dict[str, Any]


def village(conn: psycopg.Connection, village_id: str, *, scope: Scope) -> Row | None:
    """The village, its commune and district, and the engine's current verdict (None fields
    where the engine has not judged it yet). None when there is no such village in the scope."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT v.village_id, v.name, v.commune_code, c.name AS commune_name,"
            " v.district_code, d.name AS district_name, v.lat, v.lon, v.population,"
            " v.synthetic, p.operators, p.measured, p.unknown, p.dead_spot, p.levels, p.since,"
            " p.updated_at FROM villages v JOIN communes c ON c.code = v.commune_code"
            " JOIN districts d ON d.code = v.district_code"
            " LEFT JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = v.village_id"
            f" WHERE v.village_id = %s AND {clause('v.district_code')}",
            (village_id, *params(scope)),
        )
        return cur.fetchone()


def village_events(
    conn: psycopg.Connection, village_id: str, limit: int = 100, *, scope: Scope
) -> list[Row]:
    """The village's coverage changes, newest first: its outage timeline (none outside the
    scope)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, ts, kind, operators_lost, operators_now, towers, population"
            " FROM coverage_events WHERE village_id = %s"
            f" AND {village_clause('village_id')} ORDER BY ts DESC, id DESC LIMIT %s",
            (village_id, *params(scope), limit),
        )
        return cur.fetchall()


def nearest_towers(
    conn: psycopg.Connection, lat: float, lon: float, per_operator: int = 2, *, scope: Scope
) -> list[Row]:
    """The base stations in the scope nearest a point, ``per_operator`` of each operator,
    with their state and distance (equirectangular: exact enough at a province's scale)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT device_id, name, operator, state, distance_km FROM ("
            " SELECT device_id, name, operator, state, 6371.0 * sqrt("
            "  power(radians(lat - %(lat)s), 2)"
            "  + power(radians(lon - %(lon)s) * cos(radians(%(lat)s)), 2)) AS distance_km,"
            " row_number() OVER (PARTITION BY operator ORDER BY power(lat - %(lat)s, 2)"
            "  + power((lon - %(lon)s) * cos(radians(%(lat)s)), 2)) AS rank"
            " FROM devices WHERE kind = 'bts' AND lat IS NOT NULL AND lon IS NOT NULL"
            f" AND {clause('district_code', '%(scope)s')}) near"
            " WHERE rank <= %(n)s ORDER BY distance_km",
            {"lat": lat, "lon": lon, "n": per_operator, "scope": scope.param},
        )
        return cur.fetchall()


def tower_villages(
    conn: psycopg.Connection, device_id: str, limit: int = 200, *, scope: Scope
) -> list[Row]:
    """Villages whose signal the engine has seen this tower's loss or return change: each
    with its latest such event, largest population first. Only a tower and villages in the
    scope."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT DISTINCT ON (e.village_id) e.village_id, v.name, c.name AS commune_name,"
            " v.population, e.kind, e.ts, p.dead_spot FROM coverage_events e"
            " JOIN villages v ON v.village_id = e.village_id"
            " JOIN communes c ON c.code = v.commune_code"
            " LEFT JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = e.village_id"
            " WHERE %(id)s = ANY (e.towers)"
            f" AND {device_clause('%(id)s', '%(scope)s')}"
            f" AND {clause('v.district_code', '%(scope)s')}"
            " ORDER BY e.village_id, e.ts DESC, e.id DESC",
            {"id": device_id, "scope": scope.param},
        )
        rows = cur.fetchall()
    return sorted(rows, key=lambda r: (-int(r["population"]), r["village_id"]))[:limit]


def tower_serves(
    conn: psycopg.Connection, device_id: str, limit: int = 500, *, scope: Scope
) -> list[Row]:
    """Villages this tower serves now, with how many towers of its operator and of any
    operator serve each (1: it is the only one), those it alone serves first, then by
    population. Only a tower and villages in the scope."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM (SELECT s.place_id AS village_id, v.name, c.name AS commune_name,"
            " v.population, s.operator, s.since, p.dead_spot,"
            " (SELECT count(*) FROM place_towers o WHERE o.place_kind = s.place_kind"
            "  AND o.place_id = s.place_id AND o.operator = s.operator) AS towers_operator,"
            " (SELECT count(DISTINCT o.device_id) FROM place_towers o"
            "  WHERE o.place_kind = s.place_kind AND o.place_id = s.place_id) AS towers_all"
            " FROM place_towers s JOIN villages v ON v.village_id = s.place_id"
            " JOIN communes c ON c.code = v.commune_code"
            " LEFT JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = s.place_id"
            " WHERE s.device_id = %(id)s AND s.place_kind = 'village'"
            f" AND {device_clause('%(id)s', '%(scope)s')}"
            f" AND {clause('v.district_code', '%(scope)s')}) served"
            " ORDER BY towers_all > 1, towers_operator > 1, population DESC, village_id"
            " LIMIT %(limit)s",
            {"id": device_id, "limit": limit, "scope": scope.param},
        )
        return cur.fetchall()


def village_serving(conn: psycopg.Connection, village_id: str, *, scope: Scope) -> list[Row]:
    """The towers serving this village now, by operator, with their state and distance:
    a village and towers in the scope only."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT s.operator, s.device_id, d.name, d.state, s.since, 6371.0 * sqrt("
            "  power(radians(d.lat - v.lat), 2)"
            "  + power(radians(d.lon - v.lon) * cos(radians(v.lat)), 2)) AS distance_km"
            " FROM place_towers s JOIN villages v ON v.village_id = s.place_id"
            " LEFT JOIN devices d ON d.device_id = s.device_id"
            " WHERE s.place_kind = 'village' AND s.place_id = %(id)s"
            f" AND {clause('v.district_code', '%(scope)s')}"
            f" AND {device_clause('s.device_id', '%(scope)s')}"
            " ORDER BY s.operator, distance_km NULLS LAST, s.device_id",
            {"id": village_id, "scope": scope.param},
        )
        return cur.fetchall()
