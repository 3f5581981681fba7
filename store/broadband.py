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
from store.readings import LATEST_WINDOW, health_case
from store.tables import READING_TABLES


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


def commune_fibre(conn: psycopg.Connection) -> list[CommuneFibre]:
    with conn.cursor(row_factory=class_row(CommuneFibre)) as cur:
        cur.execute(
            "SELECT c.district_code, ds.name AS district_name, c.code AS commune_code,"
            " c.name AS commune_name, c.households, c.households_passed, c.has_fibre,"
            " (SELECT min(d.device_id) FROM devices d WHERE d.kind = 'broadband'"
            "   AND d.meta->'communes_served' @> to_jsonb(c.code)) AS olt_id"
            " FROM communes c JOIN districts ds ON ds.code = c.district_code"
            " ORDER BY ds.name, c.name"
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
    uplink_up: bool | None  # latest reading; None: none within the latest window
    households_passed: int | None
    communes: list[str]  # names of the communes served
    bts: list[str]  # base stations in those communes: their backhaul rides on this OLT


def olts(conn: psycopg.Connection, now: datetime) -> list[Olt]:
    query = sql.SQL(
        "SELECT d.device_id, d.name, d.district_code, ds.name AS district_name,"
        " CASE WHEN d.state <> 'online' THEN d.state WHEN r.device_id IS NULL THEN 'online'"
        " ELSE {health} END AS state, d.last_seen, r.uplink_up,"
        " (d.meta->>'households_passed')::int AS households_passed,"
        " coalesce(ARRAY(SELECT c.name FROM communes c WHERE d.meta->'communes_served'"
        "   @> to_jsonb(c.code) ORDER BY c.name), '{{}}') AS communes,"
        " coalesce(ARRAY(SELECT b.device_id FROM devices b WHERE b.kind = 'bts'"
        "   AND d.meta->'communes_served' @> to_jsonb(b.commune_code) ORDER BY b.device_id),"
        "   '{{}}') AS bts"
        " FROM devices d LEFT JOIN districts ds ON ds.code = d.district_code"
        " LEFT JOIN LATERAL (SELECT device_id, uplink_up FROM {table} t"
        "   WHERE t.device_id = d.device_id AND t.ts > %(since)s ORDER BY t.ts DESC LIMIT 1) r"
        "   ON true"
        " WHERE d.kind = 'broadband' ORDER BY d.device_id"
    ).format(
        health=health_case(Kind.BROADBAND),
        table=sql.Identifier(READING_TABLES[Kind.BROADBAND].name),
    )
    with conn.cursor(row_factory=class_row(Olt)) as cur:
        cur.execute(query, {"since": now - LATEST_WINDOW})
        return cur.fetchall()
