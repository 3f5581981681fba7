"""Fibre reach and OLTs: households passed per commune, the communes without fibre, and per OLT
the communes and households it serves and the base stations whose backhaul it carries.

A base station's backhaul is carried by the OLT serving its commune (``communes_served`` in the
OLT's birth record), the same link processing/coverage/serving.py follows when an OLT loses its
uplink.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from devices.kinds import Kind
from store.readings import LATEST_WINDOW, health_case, latest_table
from store.scope import Scope, clause


@dataclass(frozen=True, slots=True)
class CommuneFibre:
    district_code: int
    district_name: str
    commune_code: int
    commune_name: str
    households: int | None  # None: the scene loaded gives no households
    households_passed: int | None
    has_fibre: bool
    olt_id: str | None  # the OLT whose birth record lists the commune


# Each OLT's communes, from its birth record: expanded once per query and joined, rather than
# a JSON containment test of every OLT against every commune and tower (ten times slower).
SERVED = (
    "served AS (SELECT d.device_id AS olt, c.code::int AS commune_code FROM devices d,"
    " jsonb_array_elements_text(CASE WHEN jsonb_typeof(d.meta->'communes_served') = 'array'"
    "   THEN d.meta->'communes_served' ELSE '[]'::jsonb END) AS c(code)"
    " WHERE d.kind = 'broadband')"
)


def commune_fibre(conn: psycopg.Connection, *, scope: Scope) -> list[CommuneFibre]:
    """The scope's communes, with their fibre reach and the OLT serving each."""
    with conn.cursor(row_factory=class_row(CommuneFibre)) as cur:
        cur.execute(
            f"WITH {SERVED}, first AS (SELECT commune_code, min(olt) AS olt_id FROM served"
            "   GROUP BY commune_code)"
            " SELECT c.district_code, ds.name AS district_name, c.code AS commune_code,"
            " c.name AS commune_name, c.households, c.households_passed, c.has_fibre, f.olt_id"
            " FROM communes c JOIN districts ds ON ds.code = c.district_code"
            " LEFT JOIN first f ON f.commune_code = c.code"
            f" WHERE {clause('c.district_code', '%(scope)s')} ORDER BY ds.name, c.name",
            {"scope": scope.param},
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class Olt:
    device_id: str
    name: str | None
    district_code: int | None
    district_name: str | None
    state: str  # a devices.health.DisplayState, as the map shows it
    last_seen: datetime | None
    uplink_up: bool | None  # latest reading (last-state table, 0017); None: none within the window
    households_passed: int | None
    communes: list[str]  # names of the communes served
    bts: list[str]  # base stations in those communes: their backhaul rides on this OLT


def olts(conn: psycopg.Connection, now: datetime, *, scope: Scope) -> list[Olt]:
    """The OLTs in the scope, as the broadband page lists them."""
    query = sql.SQL(
        "WITH " + SERVED + ","
        " communes AS (SELECT s.olt, array_agg(c.name ORDER BY c.name) AS names FROM served s"
        "   JOIN communes c ON c.code = s.commune_code GROUP BY s.olt),"
        " towers AS (SELECT s.olt, array_agg(b.device_id ORDER BY b.device_id) AS ids"
        "   FROM served s JOIN devices b ON b.kind = 'bts' AND b.commune_code = s.commune_code"
        "   GROUP BY s.olt)"
        " SELECT d.device_id, d.name, d.district_code, ds.name AS district_name,"
        " CASE WHEN d.state <> 'online' THEN d.state WHEN r.device_id IS NULL THEN 'online'"
        " ELSE {health} END AS state, d.last_seen, r.uplink_up,"
        " (d.meta->>'households_passed')::int AS households_passed,"
        " coalesce(cs.names, '{{}}') AS communes, coalesce(ts.ids, '{{}}') AS bts"
        " FROM devices d LEFT JOIN districts ds ON ds.code = d.district_code"
        " LEFT JOIN communes cs ON cs.olt = d.device_id LEFT JOIN towers ts ON ts.olt = d.device_id"
        " LEFT JOIN (SELECT device_id, uplink_up FROM {latest} WHERE ts > %(since)s) r"
        "   ON r.device_id = d.device_id"
        " WHERE d.kind = 'broadband' AND {scoped} ORDER BY d.device_id"
    ).format(
        health=health_case(Kind.BROADBAND),
        latest=sql.Identifier(latest_table(Kind.BROADBAND)),
        scoped=sql.SQL(clause("d.district_code", "%(scope)s")),
    )
    with conn.cursor(row_factory=class_row(Olt)) as cur:
        cur.execute(query, {"since": now - LATEST_WINDOW, "scope": scope.param})
        return cur.fetchall()
