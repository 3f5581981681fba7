"""Loading the scenario's places (districts, communes, villages, map features).

Takes plain rows so that store/ does not depend on seeds/; ``ioc scenario load`` converts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import psycopg

from store.registry import UPSERT_DEVICE

Row = Mapping[str, Any]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def load_places(
    conn: psycopg.Connection,
    *,
    districts: Iterable[Row],
    communes: Iterable[Row],
    villages: Iterable[Row],
    features: Iterable[Row],
) -> None:
    """Replace the scenario's places in one transaction (idempotent)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM villages; DELETE FROM communes; DELETE FROM districts;"
            " DELETE FROM map_features"
        )
        cur.executemany(
            "INSERT INTO districts (code, name, town, lat, lon, mountainous, polygon)"
            " VALUES (%(code)s, %(name)s, %(town)s, %(lat)s, %(lon)s, %(mountainous)s,"
            " %(polygon)s::jsonb)",
            [{**d, "polygon": _json(d["polygon"])} for d in districts],
        )
        cur.executemany(
            "INSERT INTO communes (code, name, district_code, division_type, lat, lon,"
            " population, has_fibre) VALUES (%(code)s, %(name)s, %(district_code)s,"
            " %(division_type)s, %(lat)s, %(lon)s, %(population)s, %(has_fibre)s)",
            list(communes),
        )
        cur.executemany(
            "INSERT INTO villages (village_id, name, commune_code, district_code, lat, lon,"
            " population, synthetic, seed_dead_spot) VALUES (%(village_id)s, %(name)s,"
            " %(commune_code)s, %(district_code)s, %(lat)s, %(lon)s, %(population)s,"
            " %(synthetic)s, %(seed_dead_spot)s)",
            list(villages),
        )
        cur.executemany(
            "INSERT INTO map_features (name, kind, points, synthetic)"
            " VALUES (%(name)s, %(kind)s, %(points)s::jsonb, %(synthetic)s)",
            [{**f, "points": _json(f["points"])} for f in features],
        )


def register_devices(conn: psycopg.Connection, rows: Iterable[Row]) -> None:
    """Upsert device registry rows (built with :func:`store.registry.device_row`)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(UPSERT_DEVICE, list(rows))
