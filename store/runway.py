"""The battery runway (0020): when each tower on battery goes dark, and when each place loses
signal per operator (and ``'any'``: all mobile signal), as the coverage service last forecast
it (processing/coverage/runway.py). Only the current picture: a row leaves when its tower is
back on mains or dark. Reads for the CLI, the alert engine and the dashboard; the service's
writes live here too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from store.scope import Scope, clause, device_clause, params


@dataclass(frozen=True, slots=True)
class SiteRunway:
    """One tower on battery. ``dark_at`` is None when the forecast is unknown (method
    ``unknown``: no battery reading to go on)."""

    device_id: str
    on_battery_since: datetime
    battery_pct: float | None
    read_at: datetime
    drain_pct_per_h: float | None
    method: str  # 'fit' (its own readings), 'nominal' (too few: the stated rate), 'unknown'
    readings: int
    dark_at: datetime | None
    dark_early: datetime | None
    dark_late: datetime | None
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class PlaceAtRisk:
    """A place every serving tower of ``operator`` of which is on battery, with its names.
    ``loses_at`` is None when one of those towers has no forecast."""

    place_kind: str
    place_id: str
    operator: str  # an operator, or 'any'
    name: str
    commune: str
    district: str
    district_code: int
    lat: float | None
    lon: float | None
    population: int
    sites: list[str]
    loses_at: datetime | None
    loses_early: datetime | None
    loses_late: datetime | None
    computed_at: datetime


_PLACES = (
    """
SELECT r.place_kind, r.place_id, r.operator, p.name, c.name AS commune, d.name AS district,
       p.district_code, v.lat, v.lon, r.population, r.sites, r.loses_at, r.loses_early,
       r.loses_late, r.computed_at
FROM place_runway r
JOIN coverage_places p ON p.place_kind = r.place_kind AND p.place_id = r.place_id
JOIN communes c ON c.code = p.commune_code
JOIN districts d ON d.code = p.district_code
LEFT JOIN villages v ON r.place_kind = 'village' AND v.village_id = r.place_id
WHERE (%(operator)s::text IS NULL OR r.operator = %(operator)s)
  AND (%(place_kind)s::text IS NULL OR r.place_kind = %(place_kind)s)
  AND (%(within_s)s::float8 IS NULL
       OR r.loses_at <= now() + make_interval(secs => %(within_s)s))
  AND """
    + clause("p.district_code", "%(scope)s")
    + """
ORDER BY r.loses_at ASC NULLS LAST, r.population DESC, r.place_id, r.operator
LIMIT %(limit)s
"""
)


def places_at_risk(
    conn: psycopg.Connection[Any],
    *,
    scope: Scope,
    operator: str | None = "any",
    place_kind: str | None = "village",
    within_s: float | None = None,
    limit: int | None = None,
) -> list[PlaceAtRisk]:
    """Places at risk, soonest first (unknown forecasts last, then by population).
    ``operator=None`` gives every operator's rows and ``'any'``'s; ``within_s`` keeps those
    forecast to lose signal within that many seconds from now. Places in the scope only."""
    values = {
        "operator": operator,
        "place_kind": place_kind,
        "within_s": within_s,
        "limit": limit,
        "scope": scope.param,
    }
    with conn.cursor(row_factory=class_row(PlaceAtRisk)) as cur:
        cur.execute(_PLACES, values)
        return cur.fetchall()


def site_runways(conn: psycopg.Connection[Any], *, scope: Scope) -> list[SiteRunway]:
    """Every tower in the scope on battery, soonest dark first (unknown last)."""
    with conn.cursor(row_factory=class_row(SiteRunway)) as cur:
        cur.execute(
            "SELECT device_id, on_battery_since, battery_pct, read_at, drain_pct_per_h, method,"
            " readings, dark_at, dark_early, dark_late, computed_at FROM site_runway"
            f" WHERE {device_clause('device_id')} ORDER BY dark_at ASC NULLS LAST, device_id",
            params(scope),
        )
        return cur.fetchall()


# -- the coverage service's side: battery readings in, the current picture out ---------------
_STRETCHES = """
SELECT l.device_id, l.ts AS read_at, l.battery_pct, r.since, r.ts_s, r.pct
FROM telemetry_bts_latest l
CROSS JOIN LATERAL (
    SELECT max(m.ts) AS mains_at FROM telemetry_bts m
    WHERE m.device_id = l.device_id AND m.power_source <> 'battery'
      AND m.ts >= l.ts - make_interval(secs => %(window_s)s) AND m.ts <= l.ts
) s
CROSS JOIN LATERAL (
    SELECT min(t.ts) AS since,
           array_agg(extract(epoch FROM t.ts)::float8 ORDER BY t.ts)
               FILTER (WHERE t.battery_pct IS NOT NULL) AS ts_s,
           array_agg(t.battery_pct ORDER BY t.ts) FILTER (WHERE t.battery_pct IS NOT NULL) AS pct
    FROM telemetry_bts t
    WHERE t.device_id = l.device_id AND t.ts <= l.ts
      AND t.ts > coalesce(s.mains_at, l.ts - make_interval(secs => %(window_s)s))
) r
WHERE l.power_source = 'battery' AND l.device_id = ANY(%(devices)s)
"""


async def battery_stretches(
    conn: psycopg.AsyncConnection[Any], devices: list[str], window_s: float
) -> list[dict[str, Any]]:
    """For each of ``devices`` whose last reading says battery: that reading (read_at,
    battery_pct) and the readings since its last one on another source, at most ``window_s``
    back (since: the first of them; ts_s, pct: those with a battery %, epoch seconds, in time
    order; None when there is none). One query; each tower's readings through its index."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_STRETCHES, {"devices": devices, "window_s": window_s})
    return await cur.fetchall()


_SITE_COLUMNS = (
    "device_id", "on_battery_since", "battery_pct", "read_at", "drain_pct_per_h", "method",
    "readings", "dark_at", "dark_early", "dark_late",
)  # fmt: skip
_PLACE_COLUMNS = (
    "place_kind", "place_id", "operator", "loses_at", "loses_early", "loses_late", "sites",
    "population",
)  # fmt: skip


async def write_runway(
    conn: psycopg.AsyncConnection[Any],
    sites: list[dict[str, Any]],
    places: list[dict[str, Any]],
    computed_at: datetime,
) -> None:
    """Make both tables hold exactly this picture, in one transaction (readers never see the
    towers of one pass with the places of another)."""
    async with conn.transaction():
        cur = conn.cursor()
        await cur.execute("DELETE FROM site_runway")
        await cur.execute("DELETE FROM place_runway")
        for table, columns, rows in (
            ("site_runway", _SITE_COLUMNS, sites),
            ("place_runway", _PLACE_COLUMNS, places),
        ):
            if not rows:
                continue
            names = ", ".join((*columns, "computed_at"))
            async with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row([*(row[c] for c in columns), computed_at])


def battery_reports(conn: psycopg.Connection[Any], within_s: float) -> int:
    """Towers whose last reading, within ``within_s``, says battery: what the runway should
    cover (more of them than ``site_runway`` holds: the service is not writing it)."""
    row = conn.execute(
        "SELECT count(*) FROM telemetry_bts_latest WHERE power_source = 'battery'"
        " AND ts > now() - make_interval(secs => %s)",
        (within_s,),
    ).fetchone()
    return int(row[0]) if row else 0
