"""The availability report's reads (issue 18 part 4): outages over a period from the coverage
history (0004's ``coverage_history``: each place's operators over time) and the events that
began them (``coverage_events``: the towers whose loss caused each change). No raw telemetry
is read; the interval arithmetic runs here, in SQL, and only aggregates come back.

The rules, stated once:
- A village is without a "subject" (``'any'``: every operator; or one operator) from a history
  row in which it has none of it until the next row that has it. The state at the period's
  start is the latest row before it; stretches are clipped to the period at both ends. Before
  a village's first history row its state is unknown and nothing is counted. A row with no
  operator that is not a dead spot says the village rests only on towers never heard from
  (the coverage service's ``unknown``, e.g. at start-up): it says nothing and is skipped.
- A village that had no row with the subject at all up to the period's end has never had it:
  a structural dead spot (the seeds' dead spots), not an outage. Those are reported apart and
  left out of the outage totals and of the population the availability is reckoned on.
- An outage (a run of rows without the subject) is caused by the towers of the event that
  began it: the latest event of the village at or before the run's first row, after the row
  before it, that lost the subject. For one operator only that operator's towers among them.
  Its people x minutes are split evenly between those towers, so the sites' figures add up to
  the attributed total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from store.scope import Scope, clause, params, village_clause

ANY = "any"  # the subject "every operator": a village with no mobile signal at all
# The villages a report covers: those in the reader's scope (every table below follows from
# them, but for the groups, which list the places themselves).
_IN_SCOPE = clause("p.district_code", "%(scope)s")

# One row per outage (village, subject, run of dark rows) overlapping the period, with the
# towers that caused it. Parameters: subjects (text[]), t0, t1 (timestamptz), scope.
_OUTAGES = (
    """
subjects AS (SELECT unnest(%(subjects)s::text[]) AS subject),
bound AS (
    -- how far back each village's history is read: to its last row with the subject before
    -- the period (an outage going on at the start began after it); without one, to its last
    -- row before the period (dark since its first row: only whether the period lights it
    -- matters, and no event can have caused that)
    SELECT p.place_id, s.subject, coalesce(lit.ts, last.ts, '-infinity') AS since
    FROM coverage_places p CROSS JOIN subjects s
    LEFT JOIN LATERAL (
        SELECT h.ts FROM coverage_history h
        WHERE h.place_kind = 'village' AND h.place_id = p.place_id AND h.ts < %(t0)s
          AND CASE WHEN s.subject = 'any' THEN cardinality(h.operators) > 0
                   ELSE s.subject = ANY (h.operators) END
        ORDER BY h.ts DESC LIMIT 1
    ) lit ON true
    LEFT JOIN LATERAL (
        SELECT h.ts FROM coverage_history h
        WHERE h.place_kind = 'village' AND h.place_id = p.place_id AND h.ts < %(t0)s
          AND (cardinality(h.operators) > 0 OR h.dead_spot)
        ORDER BY h.ts DESC LIMIT 1
    ) last ON true
    WHERE p.place_kind = 'village' AND """
    + _IN_SCOPE
    + """
),
marked AS (
    SELECT h.place_id, b.subject, h.ts,
           CASE WHEN b.subject = 'any' THEN cardinality(h.operators) = 0
                ELSE NOT (b.subject = ANY (h.operators)) END AS dark
    FROM bound b JOIN coverage_history h
      ON h.place_kind = 'village' AND h.place_id = b.place_id
     AND h.ts >= b.since AND h.ts < %(t1)s AND (cardinality(h.operators) > 0 OR h.dead_spot)
),
steps AS (
    SELECT place_id, subject, ts, dark,
           lag(dark) OVER w AS was_dark, lag(ts) OVER w AS prev_ts, lead(ts) OVER w AS next_ts,
           bool_and(dark) OVER (PARTITION BY place_id, subject) AS never_had
    FROM marked WINDOW w AS (PARTITION BY place_id, subject ORDER BY ts)
),
runs AS (
    -- each dark row carries the first row of its run (and the last lit row before it)
    SELECT *, max(CASE WHEN dark AND was_dark IS NOT TRUE THEN ts END) OVER w AS run_start,
           max(CASE WHEN dark AND was_dark IS NOT TRUE THEN prev_ts END) OVER w AS lit_until
    FROM steps WINDOW w AS (PARTITION BY place_id, subject ORDER BY ts)
),
outages AS (
    SELECT place_id, subject, run_start, max(lit_until) AS lit_until,
           sum(extract(epoch FROM least(coalesce(next_ts, %(t1)s), %(t1)s)
                              - greatest(ts, %(t0)s))::float8) / 60.0 AS minutes
    FROM runs
    WHERE dark AND NOT never_had AND coalesce(next_ts, %(t1)s) > %(t0)s
    GROUP BY place_id, subject, run_start
),
caused AS MATERIALIZED (
    SELECT o.place_id, o.subject, o.run_start, o.minutes, p.population, e.towers
    FROM outages o
    JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = o.place_id
    LEFT JOIN LATERAL (
        -- ordered by ts alone, so the (village_id, ts DESC) index stops at the first match
        SELECT ev.towers FROM coverage_events ev
        WHERE ev.village_id = o.place_id
          AND ev.ts <= o.run_start AND ev.ts > coalesce(o.lit_until, '-infinity')
          AND (o.subject = 'any' AND ev.kind = 'lost' OR o.subject = ANY (ev.operators_lost))
        ORDER BY ev.ts DESC LIMIT 1
    ) e ON true
),
never AS (
    SELECT DISTINCT place_id, subject FROM steps WHERE never_had
)
"""
)

_GROUP_KEYS: dict[str, tuple[str, str]] = {
    "district": ("p.district_code::text", "d.name"),
    "commune": ("p.commune_code::text", "c.name || ', ' || d.name"),
    "operator": ("s.subject", "s.subject"),
}

_GROUPS = (
    """
SELECT {key} AS key, min({name}) AS name,
       count(*) FILTER (WHERE n.place_id IS NULL)::int AS villages,
       coalesce(sum(p.population) FILTER (WHERE n.place_id IS NULL), 0)::bigint AS population,
       count(v.place_id)::int AS villages_hit,
       coalesce(sum(v.outages), 0)::int AS outages,
       coalesce(sum(v.minutes), 0)::float8 AS minutes,
       coalesce(sum(v.minutes * p.population), 0)::float8 AS people_minutes,
       count(n.place_id)::int AS dead_spots,
       coalesce(sum(p.population) FILTER (WHERE n.place_id IS NOT NULL), 0)::bigint
           AS dead_spot_population
FROM coverage_places p CROSS JOIN subjects s
LEFT JOIN districts d ON d.code = p.district_code
LEFT JOIN communes c ON c.code = p.commune_code
LEFT JOIN never n ON n.place_id = p.place_id AND n.subject = s.subject
LEFT JOIN (SELECT place_id, subject, count(*) AS outages, sum(minutes) AS minutes
           FROM outages GROUP BY place_id, subject) v
       ON v.place_id = p.place_id AND v.subject = s.subject
WHERE p.place_kind = 'village' AND """
    + _IN_SCOPE
    + """
GROUP BY 1 ORDER BY people_minutes DESC, 1
"""
)

_VILLAGES = """
SELECT o.place_id AS village_id, p.name, c.name AS commune, d.name AS district,
       p.population, count(*)::int AS outages, sum(o.minutes)::float8 AS minutes,
       (sum(o.minutes) * p.population)::float8 AS people_minutes
FROM outages o
JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = o.place_id
LEFT JOIN districts d ON d.code = p.district_code
LEFT JOIN communes c ON c.code = p.commune_code
WHERE o.subject = 'any'
GROUP BY o.place_id, p.name, c.name, d.name, p.population
ORDER BY people_minutes DESC, minutes DESC, o.place_id LIMIT %(limit)s
"""

_SITES = """
, named AS (
    -- for one operator's outage, that operator's towers among those named (all of them when
    -- none is that operator's)
    SELECT c.place_id, c.subject, c.run_start, c.minutes * c.population AS people_minutes,
           t.device_id, dv.operator, dv.district_code,
           coalesce(c.subject = 'any' OR dv.operator = c.subject, false) AS own
    FROM caused c CROSS JOIN LATERAL unnest(c.towers) AS t(device_id)
    LEFT JOIN devices dv ON dv.device_id = t.device_id
),
kept AS (
    SELECT *, count(*) OVER (PARTITION BY place_id, subject, run_start) AS shares
    FROM (SELECT *, bool_or(own) OVER (PARTITION BY place_id, subject, run_start) AS some_own
          FROM named) n
    WHERE own OR NOT some_own
)
SELECT k.device_id, k.operator, dd.name AS district, count(*)::int AS outages,
       count(DISTINCT k.place_id)::int AS villages,
       sum(k.people_minutes / k.shares)::float8 AS people_minutes
FROM kept k LEFT JOIN districts dd ON dd.code = k.district_code
GROUP BY k.device_id, k.operator, dd.name
ORDER BY people_minutes DESC, k.device_id LIMIT %(limit)s
"""

_DEAD_SPOTS = """
SELECT n.place_id AS village_id, p.name, c.name AS commune, d.name AS district, p.population
FROM never n
JOIN coverage_places p ON p.place_kind = 'village' AND p.place_id = n.place_id
LEFT JOIN districts d ON d.code = p.district_code
LEFT JOIN communes c ON c.code = p.commune_code
WHERE n.subject = 'any'
ORDER BY p.population DESC, n.place_id
"""


@dataclass(frozen=True, slots=True)
class GroupLoss:
    """One district, commune or operator. ``villages`` and ``population`` leave out its
    structural dead spots (counted in ``dead_spots``); ``minutes`` sums its villages' minutes
    without signal."""

    key: str
    name: str | None
    villages: int
    population: int
    villages_hit: int
    outages: int
    minutes: float
    people_minutes: float
    dead_spots: int
    dead_spot_population: int


@dataclass(frozen=True, slots=True)
class VillageLoss:
    village_id: str
    name: str
    commune: str | None
    district: str | None
    population: int
    outages: int
    minutes: float
    people_minutes: float


@dataclass(frozen=True, slots=True)
class SiteLoss:
    """A tower named by the events that began outages, with its even share of them."""

    device_id: str
    operator: str | None
    district: str | None
    outages: int
    villages: int
    people_minutes: float


@dataclass(frozen=True, slots=True)
class DeadSpot:
    village_id: str
    name: str
    commune: str | None
    district: str | None
    population: int


@dataclass(frozen=True, slots=True)
class Availability:
    start: datetime
    end: datetime
    by: str
    groups: list[GroupLoss]
    villages: list[VillageLoss]
    sites: list[SiteLoss]
    dead_spots: list[DeadSpot]


def history_span(
    conn: psycopg.Connection[Any], *, scope: Scope
) -> tuple[datetime, datetime] | None:
    """The first and last history rows kept of the scope's villages, or None when there are
    none."""
    row = conn.execute(
        "SELECT min(ts), max(ts) FROM coverage_history WHERE place_kind = 'village'"
        f" AND {village_clause('place_id')}",
        params(scope),
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def _query(body: str) -> str:
    return "WITH " + _OUTAGES + body


def availability(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    *,
    scope: Scope,
    by: str,
    operators: list[str],
    limit: int = 20,
) -> Availability:
    """The report for [start, end) over the scope's villages: ``by`` operator, one row per
    operator in ``operators``; by district or commune, villages without any signal.
    ``limit``: worst villages and sites."""
    if by not in _GROUP_KEYS:
        raise ValueError(f"group by district, commune or operator, not {by!r}")
    subjects = operators if by == "operator" else [ANY]
    key, name = _GROUP_KEYS[by]
    values = {"subjects": subjects, "t0": start, "t1": end, "limit": limit, "scope": scope.param}
    any_values = values | {"subjects": [ANY]}
    groups_sql = _query(_GROUPS.format(key=key, name=name))
    with conn.cursor(row_factory=class_row(GroupLoss)) as cur:
        groups = cur.execute(groups_sql, values).fetchall()
    with conn.cursor(row_factory=class_row(VillageLoss)) as cur:
        villages = cur.execute(_query(_VILLAGES), any_values).fetchall()
    with conn.cursor(row_factory=class_row(SiteLoss)) as cur:
        sites = cur.execute(_query(_SITES), values).fetchall()
    with conn.cursor(row_factory=class_row(DeadSpot)) as cur:
        dead = cur.execute(_query(_DEAD_SPOTS), any_values).fetchall()
    return Availability(start, end, by, groups, villages, sites, dead)
