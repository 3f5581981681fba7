"""Named queries of the coverage engine: its inputs (towers, places, probe samples) and its
outputs (place coverage and history, change events, N-1 criticality, refusals)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row

from store.scope import Scope, clause, params

Row = dict[str, Any]

# -- inputs ----------------------------------------------------------------------------------


async def bts_registry(conn: psycopg.AsyncConnection) -> list[Row]:
    """Every registered base station: its birth record, liveness and province (through its
    district; None where that district is not loaded)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT d.device_id, d.operator, d.meta, d.state, d.meta_updated, d.district_code,"
        " x.province_code FROM devices d LEFT JOIN districts x ON x.code = d.district_code"
        " WHERE d.kind = 'bts' ORDER BY d.device_id"
    )
    return await cur.fetchall()


# The coverage service LISTENs here; migration 0009's triggers notify with 'state' (a status
# event or a serving flag changed) or 'registry' (a tower's or node's birth record changed).
WAKE_CHANNEL = "ioc_coverage"


async def listen(conn: psycopg.AsyncConnection) -> None:
    await conn.execute(f"LISTEN {WAKE_CHANNEL}")


async def radio_fingerprints(conn: psycopg.AsyncConnection) -> dict[str, str]:
    """device id → fingerprint of what the radio model reads from its birth record, and of its
    district (which province's engine holds it): blind to births that change nothing radio (a
    simulated fleet announces its own interval)."""
    cur = await conn.execute(
        "SELECT device_id, md5(concat_ws('|', operator, lat, lon, district_code,"
        " meta->>'antenna_height_m', meta->'sectors')) FROM devices WHERE kind = 'bts'"
    )
    return {r[0]: r[1] for r in await cur.fetchall()}


async def feeders(conn: psycopg.AsyncConnection) -> dict[int, list[str]]:
    """Commune code → the broadband nodes whose birth record lists it in ``communes_served``."""
    cur = await conn.execute(
        "SELECT c.code::int, d.device_id FROM devices d, LATERAL jsonb_array_elements_text("
        "  CASE WHEN jsonb_typeof(d.meta->'communes_served') = 'array'"
        "  THEN d.meta->'communes_served' ELSE '[]'::jsonb END) AS c(code)"
        " WHERE d.kind = 'broadband' AND c.code ~ '^[0-9]{1,9}$' ORDER BY 1, 2"
    )
    out: dict[int, list[str]] = {}
    for code, device_id in await cur.fetchall():
        out.setdefault(code, []).append(device_id)
    return out


async def serving_inputs(conn: psycopg.AsyncConnection) -> list[Row]:
    """Liveness and the latest serving flags of every base station and broadband node."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT d.device_id, d.kind, d.state, d.state_since, d.commune_code, f.ts AS flags_at,"
        " f.sectors_up, f.backhaul_up, f.uplink_up FROM devices d"
        " LEFT JOIN device_flags f USING (device_id) WHERE d.kind IN ('bts', 'broadband')"
    )
    return await cur.fetchall()


async def probe_samples(conn: psycopg.AsyncConnection, since: datetime) -> list[Row]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT device_id, ts, lat, lon, operator, technology, rsrp_dbm,"
        " coalesce(no_service, false) AS no_service FROM measurements_probe WHERE ts >= %s",
        (since,),
    )
    return await cur.fetchall()


async def places(conn: psycopg.AsyncConnection) -> dict[str, list[Row]]:
    """Districts, communes, villages and the provinces' outlines, as loaded by the scenario."""
    out: dict[str, list[Row]] = {}
    cur = conn.cursor(row_factory=dict_row)
    for key, sql in (
        (
            "districts",
            "SELECT code, name, mountainous, polygon, province_code FROM districts ORDER BY code",
        ),
        (
            "communes",
            "SELECT code, name, district_code, division_type, lat, lon FROM communes ORDER BY code",
        ),
        (
            "villages",
            "SELECT village_id, name, commune_code, district_code, lat, lon, population"
            " FROM villages ORDER BY village_id",
        ),
        (
            "outline",
            "SELECT points, province_code FROM map_features WHERE kind = 'outline' ORDER BY name",
        ),
    ):
        await cur.execute(sql)
        out[key] = await cur.fetchall()
    return out


async def place_states(
    conn: psycopg.AsyncConnection,
) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """The stored verdicts: (kind, id) → (operators covering, operators resting on unknown
    towers), to diff against after a restart."""
    cur = await conn.execute("SELECT place_kind, place_id, operators, unknown FROM coverage_places")
    return {(r[0], r[1]): (list(r[2]), list(r[3])) for r in await cur.fetchall()}


# -- outputs ---------------------------------------------------------------------------------

UPSERT_PLACE = """
INSERT INTO coverage_places AS p (place_kind, place_id, name, district_code, commune_code,
    population, operators, measured, unknown, dead_spot, levels, since, updated_at)
VALUES (%(place_kind)s, %(place_id)s, %(name)s, %(district_code)s, %(commune_code)s,
    %(population)s, %(operators)s, %(measured)s, %(unknown)s, %(dead_spot)s, %(levels)s::jsonb,
    %(ts)s, %(ts)s)
ON CONFLICT (place_kind, place_id) DO UPDATE SET
    name = EXCLUDED.name, district_code = EXCLUDED.district_code,
    commune_code = EXCLUDED.commune_code, population = EXCLUDED.population,
    since = CASE WHEN p.operators IS DISTINCT FROM EXCLUDED.operators THEN EXCLUDED.since
                 ELSE p.since END,
    operators = EXCLUDED.operators, measured = EXCLUDED.measured, unknown = EXCLUDED.unknown,
    dead_spot = EXCLUDED.dead_spot, levels = EXCLUDED.levels, updated_at = EXCLUDED.updated_at
"""

INSERT_HISTORY = """
INSERT INTO coverage_history (ts, place_kind, place_id, operators, measured, dead_spot)
VALUES (%(ts)s, %(place_kind)s, %(place_id)s, %(operators)s, %(measured)s, %(dead_spot)s)
"""

INSERT_EVENT = """
INSERT INTO coverage_events (ts, village_id, kind, operators_lost, operators_now, towers,
    population)
VALUES (%(ts)s, %(village_id)s, %(kind)s, %(operators_lost)s, %(operators_now)s, %(towers)s,
    %(population)s)
"""


def _jsonb(rows: Iterable[Row]) -> list[Row]:
    return [{**r, "levels": msgspec.json.encode(r["levels"]).decode()} for r in rows]


async def write_coverage(
    conn: psycopg.AsyncConnection,
    *,
    places: Iterable[Row],
    history: Iterable[Row],
    events: Iterable[Row],
) -> None:
    """Changed places, their history rows and the village events, in one transaction, so a
    consumer never sees an event whose state is not stored (or the reverse)."""
    async with conn.transaction():
        cur = conn.cursor()
        rows = _jsonb(places)
        if rows:
            await cur.executemany(UPSERT_PLACE, rows)
        hist = list(history)
        if hist:
            await cur.executemany(INSERT_HISTORY, hist)
        ev = list(events)
        if ev:
            await cur.executemany(INSERT_EVENT, ev)


async def write_critical(conn: psycopg.AsyncConnection, rows: Iterable[Row], ts: datetime) -> None:
    async with conn.transaction():
        cur = conn.cursor()
        await cur.execute("DELETE FROM critical_towers")
        await cur.executemany(
            "INSERT INTO critical_towers (device_id, operator, population_all, villages_all,"
            " population_operator, villages_operator, computed_at) VALUES (%(device_id)s,"
            " %(operator)s, %(population_all)s, %(villages_all)s, %(population_operator)s,"
            " %(villages_operator)s, %(ts)s)",
            [{**r, "ts": ts} for r in rows],
        )


# (place_kind, place_id, operator, device_id): one tower serving one place for its operator
ServingPair = tuple[str, str, str, str]


async def write_place_towers(
    conn: psycopg.AsyncConnection, pairs: set[ServingPair], ts: datetime
) -> tuple[int, int]:
    """Make ``place_towers`` hold exactly ``pairs``: the ones gone deleted, the new ones
    inserted with ``since`` = ``ts``, the rest (and their ``since``) left alone. Diffed against
    what is stored, so a restarted service keeps each pair's ``since``. Returns (added, gone)."""
    async with conn.transaction():
        cur = conn.cursor()
        await cur.execute("SELECT place_kind, place_id, operator, device_id FROM place_towers")
        stored = {(str(a), str(b), str(c), str(d)) for a, b, c, d in await cur.fetchall()}
        gone, new = sorted(stored - pairs), sorted(pairs - stored)
        if gone:
            await cur.execute(
                "DELETE FROM place_towers t USING unnest(%s::text[], %s::text[], %s::text[],"
                " %s::text[]) AS g(place_kind, place_id, operator, device_id)"
                " WHERE (t.place_kind, t.place_id, t.operator, t.device_id)"
                " = (g.place_kind, g.place_id, g.operator, g.device_id)",
                [list(col) for col in zip(*gone, strict=True)],
            )
        if new:
            await cur.execute(
                "INSERT INTO place_towers (place_kind, place_id, operator, device_id, since)"
                " SELECT *, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])",
                [ts, *(list(col) for col in zip(*new, strict=True))],
            )
    return len(new), len(gone)


async def write_rejections(
    conn: psycopg.AsyncConnection, source: str, rows: Iterable[Mapping[str, Any]], ts: datetime
) -> None:
    """Replace the picture of what ``source`` ('sector' or 'probe') had refused."""
    async with conn.transaction():
        cur = conn.cursor()
        await cur.execute("DELETE FROM coverage_rejections WHERE source = %s", (source,))
        await cur.executemany(
            "INSERT INTO coverage_rejections (source, device_id, sector, reason, count, seen_at)"
            " VALUES (%(source)s, %(device_id)s, %(sector)s, %(reason)s, %(count)s, %(ts)s)",
            [{**r, "source": source, "ts": ts} for r in rows],
        )


# -- reads for reports and the dashboard -----------------------------------------------------


def coverage_rows(conn: psycopg.Connection, kind: str = "village", *, scope: Scope) -> list[Row]:
    """Every place's verdict in the scope. Not its levels: the map refreshes this every few
    seconds and a JSON document per village was most of its cost; one place's levels are on
    its own page."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT p.place_kind, p.place_id, p.name, p.district_code, d.name AS district,"
            " p.commune_code, c.name AS commune, p.population, p.operators, p.measured,"
            " p.unknown, p.dead_spot, p.since, p.updated_at FROM coverage_places p"
            " LEFT JOIN districts d ON d.code = p.district_code"
            " LEFT JOIN communes c ON c.code = p.commune_code"
            f" WHERE p.place_kind = %s AND {clause('p.district_code')}"
            " ORDER BY p.district_code, p.place_id",
            (kind, *params(scope)),
        )
        return cur.fetchall()


def commune_centres(conn: psycopg.Connection, *, scope: Scope) -> tuple[int, int]:
    """(commune centres with 3G/4G from towers heard from, commune centres judged), in the
    scope."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE cardinality(operators) > 0), count(*) FROM coverage_places"
        f" WHERE place_kind = 'commune' AND {clause('district_code')}",
        params(scope),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def critical_top(conn: psycopg.Connection, limit: int, *, scope: Scope) -> list[Row]:
    """The towers in the scope whose loss would take signal from the most people (N-1)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT c.device_id, c.operator, d.district_code, c.population_all, c.villages_all,"
            " c.population_operator, c.villages_operator, c.computed_at FROM critical_towers c"
            f" LEFT JOIN devices d ON d.device_id = c.device_id WHERE {clause('d.district_code')}"
            " ORDER BY c.population_all DESC, c.population_operator DESC, c.device_id LIMIT %s",
            (*params(scope), limit),
        )
        return cur.fetchall()


def events_since(conn: psycopg.Connection, after_id: int = 0) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, ts, village_id, kind, operators_lost, operators_now, towers, population"
            " FROM coverage_events WHERE id > %s ORDER BY id",
            (after_id,),
        )
        return cur.fetchall()


def rejections(conn: psycopg.Connection) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT source, device_id, sector, reason, count FROM coverage_rejections"
            " ORDER BY source, device_id, sector, reason"
        )
        return cur.fetchall()
