"""The alert engine's queries: what it reads (names of subjects, status changes, the latest
readings, coverage events) and how it writes alert transitions. All async, and meant to run
inside one transaction per engine tick, so inputs consumed and alerts written commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg.rows import class_row, dict_row

from devices.kinds import Kind
from store.alerts import OPEN, TRANSITIONS
from store.tables import READING_TABLES

ENGINE_LOCK_KEY = 0x10C_A1E7  # advisory lock: one alert engine per database
COVERAGE_CURSOR = "coverage_events"
# Notified by migration 0007's triggers on a status change or new coverage events; a shipped
# migration is never edited, so tests/test_alerts_decide.py checks the two spellings agree.
INBOX_CHANNEL = "ioc_alert_inbox"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    kind: str
    name: str | None
    operator: str | None
    district_code: int | None
    commune_code: int | None
    households_passed: int | None
    communes_served: list[int]


@dataclass(frozen=True, slots=True)
class CommuneInfo:
    code: int
    name: str
    district_code: int


@dataclass(frozen=True, slots=True)
class VillageInfo:
    village_id: str
    name: str
    commune_code: int
    district_code: int
    population: int


@dataclass(frozen=True, slots=True)
class SubjectDirectory:
    devices: dict[str, DeviceInfo]
    districts: dict[int, str]
    communes: dict[int, CommuneInfo]
    villages: dict[str, VillageInfo]


@dataclass(frozen=True, slots=True)
class StatusChange:
    inbox_id: int
    ts: datetime
    device_id: str
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class CoverageEvent:
    id: int
    ts: datetime
    village_id: str
    kind: str  # lost, restored, degraded, improved
    operators_lost: list[str]
    operators_now: list[str]
    towers: list[str]
    population: int | None


@dataclass(frozen=True, slots=True)
class LatestReading:
    device_id: str
    ts: datetime
    values: dict[str, Any]  # metric name → value, as the kind's reading table holds it


@dataclass(frozen=True, slots=True)
class VillageRunway:
    """One row of place_runway (0020) for a village: when it loses ``operator`` ('any': all
    mobile signal) if mains does not return; ``loses_at`` None is an unknown forecast."""

    village_id: str
    operator: str
    loses_at: datetime | None
    loses_early: datetime | None
    loses_late: datetime | None
    sites: list[str]


@dataclass(frozen=True, slots=True)
class UnresolvedAlert:
    alert_id: int
    rule: str
    subject: str
    flapping: bool
    summary: str
    updated_at: datetime


async def try_lock_engine(conn: psycopg.AsyncConnection) -> bool:
    """Hold the engine lock for this session; False when another engine holds it."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (ENGINE_LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def listen_inbox(conn: psycopg.AsyncConnection) -> None:
    """Be woken (``conn.notifies()``) when the engine has new inputs to read."""
    await conn.execute(f"LISTEN {INBOX_CHANNEL}")


async def subject_directory(conn: psycopg.AsyncConnection) -> SubjectDirectory:
    async with conn.cursor(row_factory=class_row(DeviceInfo)) as cur:
        await cur.execute(
            "SELECT device_id, kind, name, operator, district_code, commune_code,"
            " (meta->>'households_passed')::int AS households_passed,"
            " coalesce(ARRAY(SELECT jsonb_array_elements_text(meta->'communes_served'))::int[],"
            "   '{}') AS communes_served"
            " FROM devices WHERE kind <> 'probe'"
        )
        devices = {d.device_id: d for d in await cur.fetchall()}
    async with conn.cursor(row_factory=class_row(CommuneInfo)) as cur:
        await cur.execute("SELECT code, name, district_code FROM communes")
        communes = {c.code: c for c in await cur.fetchall()}
    async with conn.cursor(row_factory=class_row(VillageInfo)) as cur:
        await cur.execute(
            "SELECT village_id, name, commune_code, district_code, population FROM villages"
        )
        villages = {v.village_id: v for v in await cur.fetchall()}
    cur2 = await conn.execute("SELECT code, name FROM districts")
    districts = {int(code): name for code, name in await cur2.fetchall()}
    return SubjectDirectory(devices, districts, communes, villages)


async def take_status_changes(conn: psycopg.AsyncConnection, limit: int) -> list[StatusChange]:
    """Remove and return the oldest queued status changes (commit with what they caused)."""
    async with conn.cursor(row_factory=class_row(StatusChange)) as cur:
        await cur.execute(
            "DELETE FROM alert_inbox WHERE inbox_id IN (SELECT inbox_id FROM alert_inbox"
            " ORDER BY inbox_id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING inbox_id, ts, device_id, state, reason",
            (limit,),
        )
        return sorted(await cur.fetchall(), key=lambda c: c.inbox_id)


async def offline_devices(conn: psycopg.AsyncConnection) -> list[StatusChange]:
    """Devices offline now, as status changes dated when they went offline (engine start)."""
    async with conn.cursor(row_factory=class_row(StatusChange)) as cur:
        await cur.execute(
            "SELECT 0 AS inbox_id, coalesce(state_since, now()) AS ts, device_id, state,"
            " coalesce(state_reason, 'reported') AS reason FROM devices"
            " WHERE state = 'offline' AND kind <> 'probe'"
        )
        return await cur.fetchall()


async def db_now(conn: psycopg.AsyncConnection) -> datetime:
    cur = await conn.execute("SELECT now()")
    row = await cur.fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def latest_readings(
    conn: psycopg.AsyncConnection, kind: Kind, arrived_after: datetime, taken_after: datetime
) -> list[LatestReading]:
    """Each device's newest reading among those that arrived after ``arrived_after`` (readings
    taken before ``taken_after`` are history, not the present, and are left out)."""
    table = READING_TABLES[kind]
    columns = ", ".join(table.columns)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT DISTINCT ON (device_id) {columns} FROM {table.name}"
            " WHERE received_at > %s AND ts > %s ORDER BY device_id, ts DESC, seq DESC",
            (arrived_after, taken_after),
        )
        found = await cur.fetchall()
    out = []
    for row in found:
        device_id, ts = row.pop("device_id"), row.pop("ts")
        row.pop("seq", None)
        out.append(LatestReading(device_id, ts, row))
    return out


async def has_coverage_events(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute("SELECT to_regclass('coverage_events') IS NOT NULL")
    row = await cur.fetchone()
    return bool(row and row[0])


async def coverage_events_after(
    conn: psycopg.AsyncConnection, position: int, limit: int
) -> list[CoverageEvent]:
    async with conn.cursor(row_factory=class_row(CoverageEvent)) as cur:
        await cur.execute(
            "SELECT id, ts, village_id, kind, coalesce(operators_lost, '{}') AS operators_lost,"
            " coalesce(operators_now, '{}') AS operators_now, coalesce(towers, '{}') AS towers,"
            " population FROM coverage_events WHERE id > %s ORDER BY id LIMIT %s",
            (position, limit),
        )
        return await cur.fetchall()


async def village_runways(conn: psycopg.AsyncConnection, limit: int) -> list[VillageRunway]:
    """The villages' runway rows, 'any' first (a bound cuts the per-operator extras before a
    village at risk), soonest first."""
    async with conn.cursor(row_factory=class_row(VillageRunway)) as cur:
        await cur.execute(
            "SELECT place_id AS village_id, operator, loses_at, loses_early, loses_late, sites"
            " FROM place_runway WHERE place_kind = 'village'"
            " ORDER BY operator <> 'any', loses_at ASC NULLS LAST, place_id, operator LIMIT %s",
            (limit,),
        )
        return await cur.fetchall()


async def get_cursor(conn: psycopg.AsyncConnection, name: str) -> int | None:
    cur = await conn.execute("SELECT position FROM alert_cursors WHERE name = %s", (name,))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def set_cursor(conn: psycopg.AsyncConnection, name: str, position: int) -> None:
    await conn.execute(
        "INSERT INTO alert_cursors (name, position) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
        (name, position),
    )


async def unresolved_alerts(conn: psycopg.AsyncConnection) -> list[UnresolvedAlert]:
    async with conn.cursor(row_factory=class_row(UnresolvedAlert)) as cur:
        await cur.execute(
            "SELECT alert_id, rule, subject, flapping, summary, updated_at FROM alerts"
            " WHERE state <> 'resolved'"
        )
        return await cur.fetchall()


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule: str
    subject: str
    subject_kind: str
    severity: str
    summary: str
    summary_vi: str
    details: dict[str, Any]
    district_code: int | None
    flapping: bool = False
    comment: str | None = None


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def open_alert(conn: psycopg.AsyncConnection, alert: NewAlert, ts: datetime) -> int | None:
    """Open an alert; None when (rule, subject) already has an unresolved one."""
    params = {
        "rule": alert.rule, "subject": alert.subject, "subject_kind": alert.subject_kind,
        "severity": alert.severity, "summary": alert.summary, "summary_vi": alert.summary_vi,
        "details": _json(alert.details), "district_code": alert.district_code, "ts": ts,
        "flapping": alert.flapping, "comment": alert.comment,
    }  # fmt: skip
    cur = await conn.execute(OPEN, params)
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def engine_transition(
    conn: psycopg.AsyncConnection,
    event: str,
    alert_id: int,
    ts: datetime,
    *,
    comment: str | None = None,
    summary: str | None = None,
    summary_vi: str | None = None,
    details: dict[str, Any] | None = None,
    flapping: bool = False,
) -> bool:
    """An engine transition (updated, flapping, resolved, unsilenced); False when the alert
    is no longer in a state that allows it (an operator resolved it meanwhile)."""
    params = {
        "alert_id": alert_id, "ts": ts, "event": event, "actor": "engine", "comment": comment,
        "summary": summary, "summary_vi": summary_vi, "details": _json(details or {}),
        "flapping": flapping,
    }  # fmt: skip
    cur = await conn.execute(TRANSITIONS[event], params)
    return await cur.fetchone() is not None


async def unsilence_due(conn: psycopg.AsyncConnection, now: datetime) -> int:
    """Open alerts whose news was hidden by a silence that has ended: tell their current state."""
    cur = await conn.execute(
        "SELECT alert_id FROM alerts a WHERE state <> 'resolved' AND suppressed AND NOT EXISTS ("
        " SELECT 1 FROM alert_silences s WHERE s.starts_at <= %(now)s AND s.ends_at > %(now)s"
        " AND (s.rule IS NULL OR s.rule = a.rule)"
        " AND (s.subject IS NULL OR s.subject = a.subject))",
        {"now": now},
    )
    due = [r[0] for r in await cur.fetchall()]
    for alert_id in due:
        await engine_transition(conn, "unsilenced", alert_id, now, comment="silence ended")
    return len(due)
