"""Coverage at a past moment (issue 18, part 3): every village's verdict at a time T, the
operators it had lost then with the towers the loss events named, and devices' states at T.

All from what the services already write: ``coverage_history`` (a row per change of a place's
verdict, and one for every place when the coverage service first builds), ``coverage_events``
(the village changes with the towers that caused them) and ``status_events`` (each device's
state changes); see migrations 0001 and 0004. Nothing is recomputed from the radio model.

"State at T" is the latest row with ``ts <= T``, found per place (per device) by a LATERAL
probe down its ``(…, ts DESC)`` index: one index descent each, however long the history is,
where a DISTINCT ON over the table would read all of it. bench/coverage_at.py measures it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from store.scope import Scope, clause, params, village_clause

# The loss of operator X is the latest event at or before T whose operators_lost names X,
# counted only while the village still lacks X at T (an operator back since is no loss).
_VILLAGES_AT = (
    """
SELECT v.village_id, v.name, c.name AS commune, d.name AS district, v.population,
    h.ts AS since, h.operators, h.dead_spot,
    coalesce(lost.operators, '{}'), coalesce(lost.towers, '{}'), lost.first_at
FROM villages v
JOIN communes c ON c.code = v.commune_code
JOIN districts d ON d.code = v.district_code
CROSS JOIN LATERAL (
    SELECT ts, operators, dead_spot FROM coverage_history h
    WHERE h.place_kind = 'village' AND h.place_id = v.village_id AND h.ts <= %(at)s
    ORDER BY h.ts DESC LIMIT 1) h
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT l.op ORDER BY l.op) AS operators, min(l.ts) AS first_at,
        array_remove(array_agg(DISTINCT tower ORDER BY tower), NULL) AS towers
    FROM (
        SELECT DISTINCT ON (op) op, e.ts, e.towers
        FROM coverage_events e CROSS JOIN LATERAL unnest(e.operators_lost) AS op
        WHERE e.village_id = v.village_id AND e.ts <= %(at)s AND NOT (op = ANY (h.operators))
        ORDER BY op, e.ts DESC, e.id DESC) l
    LEFT JOIN LATERAL unnest(l.towers) AS tower ON true
    ) lost ON true
WHERE (h.dead_spot OR lost.operators IS NOT NULL) AND """
    + clause("v.district_code", "%(scope)s")
    + """
ORDER BY h.dead_spot DESC, v.population DESC, v.village_id
"""
)

_STATES_AT = """
SELECT d.device_id, d.kind, d.operator, s.ts, coalesce(s.state, 'unknown'), s.reason
FROM devices d
LEFT JOIN LATERAL (
    SELECT ts, state, reason FROM status_events e
    WHERE e.device_id = d.device_id AND e.ts <= %(at)s
    ORDER BY e.ts DESC LIMIT 1) s ON true
WHERE (%(ids)s::text[] IS NULL OR d.device_id = ANY (%(ids)s::text[]))
  AND (%(kind)s::text IS NULL OR d.kind = %(kind)s::text)
  AND """ + clause("d.district_code", "%(scope)s")


@dataclass(frozen=True, slots=True)
class HistorySpan:
    """The coverage history kept: its first and last rows."""

    earliest: datetime
    latest: datetime


@dataclass(frozen=True, slots=True)
class VillageAt:
    """A village without signal, or short of operators it had, at the moment asked."""

    village_id: str
    name: str
    commune: str
    district: str
    population: int
    since: datetime  # when its verdict at T was written
    operators: list[str]  # operators covering it at T
    dead_spot: bool  # no operator at T
    lost: list[str]  # operators a loss event took that had not come back by T
    towers: list[str]  # the towers those loss events named
    lost_at: datetime | None  # the earliest of those losses


@dataclass(frozen=True, slots=True)
class DeviceAt:
    device_id: str
    kind: str
    operator: str | None
    since: datetime | None  # its last status change at or before T (None: none kept)
    state: str  # 'unknown' where no status was kept before T
    reason: str | None


@dataclass(frozen=True, slots=True)
class CoverageAt:
    at: datetime
    villages: list[VillageAt]
    devices: dict[str, DeviceAt] = field(default_factory=dict)
    serving: dict[str, list[str]] = field(default_factory=dict)  # village → place_towers now

    @property
    def dark(self) -> list[VillageAt]:
        return [v for v in self.villages if v.dead_spot]

    @property
    def outages(self) -> list[VillageAt]:
        """Villages whose missing signal a loss event explains (the rest: dead spots that
        had no signal in the kept history)."""
        return [v for v in self.villages if v.lost]


def history_span(conn: psycopg.Connection, *, scope: Scope) -> HistorySpan | None:
    """The history kept; for a provincial reader, of its villages (every place has a row
    from the service's first build, so the span is the same)."""
    row = conn.execute(
        "SELECT min(ts), max(ts) FROM coverage_history"
        " WHERE %s::integer[] IS NULL"
        f" OR place_kind = 'village' AND {village_clause('place_id')}",
        (scope.param, *params(scope)),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return HistorySpan(row[0], row[1])


def villages_at(conn: psycopg.Connection, at: datetime, *, scope: Scope) -> list[VillageAt]:
    """Villages of the scope dark at ``at``, and those that had lost operators by then: dark
    first, then by population."""
    rows = conn.execute(_VILLAGES_AT, {"at": at, "scope": scope.param}).fetchall()
    return [VillageAt(r[0], r[1], r[2], r[3], int(r[4]), r[5], list(r[6]), bool(r[7]),
                      list(r[8]), list(r[9]), r[10]) for r in rows]  # fmt: skip


def device_states_at(
    conn: psycopg.Connection,
    at: datetime,
    device_ids: Iterable[str] | None = None,
    kind: str | None = None,
    *,
    scope: Scope,
) -> dict[str, DeviceAt]:
    """Each device's state at ``at`` from ``status_events`` (``ids``/``kind`` narrow it);
    devices in the scope only."""
    ids = None if device_ids is None else sorted(set(device_ids))
    values = {"at": at, "ids": ids, "kind": kind, "scope": scope.param}
    rows = conn.execute(_STATES_AT, values).fetchall()
    return {r[0]: DeviceAt(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}


def coverage_at(conn: psycopg.Connection, at: datetime, *, scope: Scope) -> CoverageAt:
    """The scope's villages at ``at``; the towers serving them now (``place_towers``); and
    the state at ``at`` of those towers and of every tower their loss events name (those in
    the scope)."""
    villages = villages_at(conn, at, scope=scope)
    serving = serving_now(conn, [v.village_id for v in villages]) if villages else {}
    towers = {t for v in villages for t in v.towers} | {t for ts in serving.values() for t in ts}
    devices = device_states_at(conn, at, towers, scope=scope) if towers else {}
    return CoverageAt(at, villages, devices, serving)


def sites_down_at(conn: psycopg.Connection, at: datetime, *, scope: Scope) -> list[str]:
    """Base stations of the scope whose last status at or before ``at`` was not online."""
    states = device_states_at(conn, at, kind="bts", scope=scope)
    return sorted(d for d, s in states.items() if s.since is not None and s.state != "online")


def serving_now(conn: psycopg.Connection, village_ids: Iterable[str]) -> dict[str, list[str]]:
    """Village → the towers serving it in ``place_towers``: the current picture only (the
    table keeps no history, and leaves out towers off air when it was written)."""
    rows = conn.execute(
        "SELECT place_id, array_agg(DISTINCT device_id ORDER BY device_id) FROM place_towers"
        " WHERE place_kind = 'village' AND place_id = ANY (%s) GROUP BY place_id",
        (sorted(set(village_ids)),),
    ).fetchall()
    return {r[0]: list(r[1]) for r in rows}
