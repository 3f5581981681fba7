"""The device registry: one upsert for birth records and scenario loads, with change history."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg

from devices.kinds import Kind

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
