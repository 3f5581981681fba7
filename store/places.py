"""The scenario's places (districts, communes, villages, map features): loading and reading.

Loading takes plain rows so that store/ does not depend on seeds/; ``ioc scenario load``
converts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from store.scope import Scope, clause, params, province_clause

Row = Mapping[str, Any]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def load_places(
    conn: psycopg.Connection,
    *,
    provinces: Iterable[Row],
    districts: Iterable[Row],
    communes: Iterable[Row],
    villages: Iterable[Row],
    features: Iterable[Row],
) -> None:
    """Replace the deployment's places, one province or several, in one transaction
    (idempotent). Each district and map feature names its ``province_code``."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM villages; DELETE FROM communes; DELETE FROM districts;"
            " DELETE FROM map_features; DELETE FROM provinces"
        )
        cur.executemany(
            "INSERT INTO provinces (code, name, lat, lon, synthetic)"
            " VALUES (%(code)s, %(name)s, %(lat)s, %(lon)s, %(synthetic)s)",
            list(provinces),
        )
        cur.executemany(
            "INSERT INTO districts (code, name, town, lat, lon, mountainous, polygon,"
            " province_code) VALUES (%(code)s, %(name)s, %(town)s, %(lat)s, %(lon)s,"
            " %(mountainous)s, %(polygon)s::jsonb, %(province_code)s)",
            [{**d, "polygon": _json(d["polygon"])} for d in districts],
        )
        cur.executemany(
            "INSERT INTO communes (code, name, district_code, division_type, lat, lon,"
            " population, has_fibre, households, households_passed) VALUES (%(code)s, %(name)s,"
            " %(district_code)s, %(division_type)s, %(lat)s, %(lon)s, %(population)s,"
            " %(has_fibre)s, %(households)s, %(households_passed)s)",
            # Households are planning data a scene may leave out (NULL: not known).
            [{"households": None, "households_passed": None, **c} for c in communes],
        )
        cur.executemany(
            "INSERT INTO villages (village_id, name, commune_code, district_code, lat, lon,"
            " population, synthetic, seed_dead_spot) VALUES (%(village_id)s, %(name)s,"
            " %(commune_code)s, %(district_code)s, %(lat)s, %(lon)s, %(population)s,"
            " %(synthetic)s, %(seed_dead_spot)s)",
            list(villages),
        )
        cur.executemany(
            "INSERT INTO map_features (name, kind, points, synthetic, province_code)"
            " VALUES (%(name)s, %(kind)s, %(points)s::jsonb, %(synthetic)s, %(province_code)s)",
            [{**f, "points": _json(f["points"])} for f in features],
        )


def districts(conn: psycopg.Connection, *, scope: Scope) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT code, name, town, lat, lon, mountainous, polygon, province_code FROM districts"
            f" WHERE {clause('code')} ORDER BY code",
            params(scope),
        )
        return cur.fetchall()


def provinces(conn: psycopg.Connection, *, scope: Scope) -> list[dict[str, Any]]:
    """The deployment's provinces the scope sees (``code``, ``name``), for pickers."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT code, name FROM provinces WHERE {province_clause('code', '%(scope)s')}"
            " ORDER BY name",
            {"scope": scope.param},
        )
        return cur.fetchall()


def district_names(conn: psycopg.Connection, *, scope: Scope) -> dict[int, str]:
    """The districts the scope sees, code to name: a page's district picker."""
    rows = conn.execute(
        f"SELECT code, name FROM districts WHERE {clause('code', '%(scope)s')}",
        {"scope": scope.param},
    )
    return {int(c): str(n) for c, n in rows}


def map_features(conn: psycopg.Connection, *, scope: Scope) -> list[dict[str, Any]]:
    """Outlines and roads; a feature names its province, not a district."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT name, kind, points, synthetic, province_code FROM map_features"
            f" WHERE {province_clause('province_code', '%(scope)s')} ORDER BY kind, name",
            {"scope": scope.param},
        )
        return cur.fetchall()


def villages(conn: psycopg.Connection, *, scope: Scope) -> list[dict[str, Any]]:
    """Villages with their commune and district names, for the map, the reports and benchmarks."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT v.village_id, v.name, v.commune_code, c.name AS commune_name,"
            " v.district_code, d.name AS district_name, v.lat, v.lon, v.population,"
            " v.seed_dead_spot FROM villages v JOIN communes c ON c.code = v.commune_code"
            f" JOIN districts d ON d.code = v.district_code WHERE {clause('v.district_code')}"
            " ORDER BY v.village_id",
            params(scope),
        )
        return cur.fetchall()
