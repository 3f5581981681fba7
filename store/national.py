"""The national map's headline figures, one row per province in a reader's scope.

Every figure reaches its province through ``districts.province_code`` (the rows carry a national
GSO district code), so the whole table is one query of a few grouped scans, not one per province.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row

from store.scope import Scope, province_clause


@dataclass(frozen=True, slots=True)
class ProvinceHeadline:
    code: int  # GSO
    name: str
    lat: float  # where the national map puts its figures
    lon: float
    sites: int  # BTS sites registered
    sites_online: int
    sites_offline: int
    sites_unknown: int  # never heard from (liveness ``unknown``)
    cameras_offline: int
    broadband_offline: int
    dead_spot_villages: int  # villages no operator covers now (coverage_places)
    dead_spot_population: int
    alerts_critical: int  # unresolved
    alerts_major: int


_HEADLINES = f"""
WITH p AS (
    SELECT code, name, lat, lon FROM provinces WHERE {province_clause("code", "%(scope)s")}
), dev AS (
    SELECT d.province_code,
           count(*) FILTER (WHERE v.kind = 'bts') AS sites,
           count(*) FILTER (WHERE v.kind = 'bts' AND v.state = 'online') AS sites_online,
           count(*) FILTER (WHERE v.kind = 'bts' AND v.state = 'offline') AS sites_offline,
           count(*) FILTER (WHERE v.kind = 'bts' AND v.state = 'unknown') AS sites_unknown,
           count(*) FILTER (WHERE v.kind = 'camera' AND v.state = 'offline') AS cameras_offline,
           count(*) FILTER (WHERE v.kind = 'broadband' AND v.state = 'offline')
               AS broadband_offline
    FROM devices v JOIN districts d ON d.code = v.district_code
    GROUP BY d.province_code
), cov AS (
    SELECT d.province_code, count(*) AS dead_spot_villages,
           sum(c.population) AS dead_spot_population
    FROM coverage_places c JOIN districts d ON d.code = c.district_code
    WHERE c.place_kind = 'village' AND c.dead_spot
    GROUP BY d.province_code
), al AS (
    SELECT d.province_code,
           count(*) FILTER (WHERE a.severity = 'critical') AS alerts_critical,
           count(*) FILTER (WHERE a.severity = 'major') AS alerts_major
    FROM alerts a JOIN districts d ON d.code = a.district_code
    WHERE a.state <> 'resolved'
    GROUP BY d.province_code
)
SELECT p.code, p.name, p.lat, p.lon,
       coalesce(dev.sites, 0)::int AS sites,
       coalesce(dev.sites_online, 0)::int AS sites_online,
       coalesce(dev.sites_offline, 0)::int AS sites_offline,
       coalesce(dev.sites_unknown, 0)::int AS sites_unknown,
       coalesce(dev.cameras_offline, 0)::int AS cameras_offline,
       coalesce(dev.broadband_offline, 0)::int AS broadband_offline,
       coalesce(cov.dead_spot_villages, 0)::int AS dead_spot_villages,
       coalesce(cov.dead_spot_population, 0)::int AS dead_spot_population,
       coalesce(al.alerts_critical, 0)::int AS alerts_critical,
       coalesce(al.alerts_major, 0)::int AS alerts_major
FROM p
LEFT JOIN dev ON dev.province_code = p.code
LEFT JOIN cov ON cov.province_code = p.code
LEFT JOIN al ON al.province_code = p.code
ORDER BY p.name
"""


def province_headlines(conn: psycopg.Connection, *, scope: Scope) -> list[ProvinceHeadline]:
    """Each province in ``scope`` with its sites by liveness, cameras and broadband nodes
    offline, villages without coverage now and the people in them, and unresolved alerts by
    severity. A province with nothing reported yet has its zeros, not a missing row."""
    with conn.cursor(row_factory=class_row(ProvinceHeadline)) as cur:
        cur.execute(_HEADLINES, {"scope": scope.param})
        return cur.fetchall()
