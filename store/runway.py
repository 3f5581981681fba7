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
from psycopg.rows import class_row


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


_PLACES = """
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
ORDER BY r.loses_at ASC NULLS LAST, r.population DESC, r.place_id, r.operator
LIMIT %(limit)s
"""


def places_at_risk(
    conn: psycopg.Connection[Any],
    *,
    operator: str | None = "any",
    place_kind: str | None = "village",
    within_s: float | None = None,
    limit: int | None = None,
) -> list[PlaceAtRisk]:
    """Places at risk, soonest first (unknown forecasts last, then by population).
    ``operator=None`` gives every operator's rows and ``'any'``'s; ``within_s`` keeps those
    forecast to lose signal within that many seconds from now."""
    params = {
        "operator": operator,
        "place_kind": place_kind,
        "within_s": within_s,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(PlaceAtRisk)) as cur:
        cur.execute(_PLACES, params)
        return cur.fetchall()


def site_runways(conn: psycopg.Connection[Any]) -> list[SiteRunway]:
    """Every tower on battery, soonest dark first (unknown last)."""
    with conn.cursor(row_factory=class_row(SiteRunway)) as cur:
        cur.execute(
            "SELECT device_id, on_battery_since, battery_pct, read_at, drain_pct_per_h, method,"
            " readings, dark_at, dark_early, dark_late, computed_at FROM site_runway"
            " ORDER BY dark_at ASC NULLS LAST, device_id"
        )
        return cur.fetchall()
