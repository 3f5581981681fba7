"""The engine's reads: everything a tick decides on, fetched through ``store.alert_engine``.

The gatherer keeps only where it has read up to (the telemetry window, when the directory and
the open alerts were last re-read); what the inputs mean is ``decide``'s business.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import psycopg

from devices.kinds import Kind
from processing.alerts.config import AlertConfig
from processing.alerts.facts import Directory
from processing.alerts.inputs import Intake, Startup
from store import alert_engine as q
from store.alert_engine import CoverageEvent, LatestReading

# Names of devices and places change rarely (a new device is noticed at once: decide asks).
DIRECTORY_REFRESH_S = 60.0
# How soon an operator's resolve is noticed by the tracker that raised it (it re-arms on clear).
RECONCILE_S = 2.0
# Inputs taken per tick: a backlog (engine down for a while) drains over several bounded ticks.
INBOX_BATCH = 5000
COVERAGE_BATCH = 5000
# Villages' runway rows read at once: every village and operator of a province is far fewer.
RUNWAY_BATCH = 20000
# coverage_events appears when the coverage migration is applied after the engine started;
# while it is absent, look again every this many ticks rather than a catalogue query per tick.
COVERAGE_TABLE_RECHECK_TICKS = 40


class Gatherer:
    def __init__(self, config: AlertConfig, kinds: list[Kind], *, runway: bool = False) -> None:
        self.config = config
        self.kinds = kinds  # those with telemetry rules, in the order decide observes them
        self.runway = runway  # a rule reads the battery runway
        self._runway_at = 0.0
        self._directory: Directory | None = None
        self._directory_at = 0.0
        self._reconciled_at = 0.0
        self._telemetry_at = 0.0
        self._arrived_after: datetime | None = None
        self._coverage: bool | None = None

    @property
    def directory(self) -> Directory:
        assert self._directory is not None, "start() first"
        return self._directory

    def directory_stale(self) -> None:
        self._directory_at = 0.0

    async def start(self, conn: psycopg.AsyncConnection) -> Startup:
        await self._refresh_directory(conn)
        self._reconciled_at = time.monotonic()
        return Startup(await q.unresolved_alerts(conn), await q.offline_devices(conn))

    async def consumed_coverage(
        self, conn: psycopg.AsyncConnection
    ) -> AsyncIterator[CoverageEvent]:
        """The coverage events already consumed (they are not re-alerted), oldest first."""
        if not await q.has_coverage_events(conn):
            return
        upto = await q.get_cursor(conn, q.COVERAGE_CURSOR) or 0
        position = 0
        while position < upto:
            events = await q.coverage_events_after(conn, position, COVERAGE_BATCH)
            for event in events:
                if event.id > upto:
                    return
                yield event
            if not events:
                return
            position = events[-1].id

    async def refresh(self, conn: psycopg.AsyncConnection) -> frozenset[int] | None:
        """Before a tick's transaction: the directory when due, the open alerts when due."""
        mono = time.monotonic()
        if mono - self._directory_at > DIRECTORY_REFRESH_S:
            await self._refresh_directory(conn)
        if mono - self._reconciled_at > RECONCILE_S:
            self._reconciled_at = time.monotonic()
            return frozenset(a.alert_id for a in await q.unresolved_alerts(conn))
        return None

    async def intake(self, conn: psycopg.AsyncConnection, ticks: int,
                     unresolved: frozenset[int] | None) -> Intake:  # fmt: skip
        """Inside the tick's transaction: the status changes it takes, the coverage events
        after the cursor, (every ``telemetry_every_s``) the latest readings, and (every
        ``runway_every_s``) the villages' battery runway."""
        changes = await q.take_status_changes(conn, INBOX_BATCH)
        events = await self._coverage_events(conn, ticks)
        readings: dict[Kind, list[LatestReading]] = {}
        mono = time.monotonic()
        if mono - self._telemetry_at >= self.config.telemetry_every_s:
            self._telemetry_at = mono
            readings = await self._readings(conn)
        runway = None
        if self.runway and mono - self._runway_at >= self.config.runway_every_s:
            self._runway_at = mono
            runway = await q.village_runways(conn, RUNWAY_BATCH)
        return Intake(changes, events, readings, unresolved, runway)

    async def _coverage_events(self, conn: psycopg.AsyncConnection,
                               ticks: int) -> list[CoverageEvent]:  # fmt: skip
        recheck = not self._coverage and ticks % COVERAGE_TABLE_RECHECK_TICKS == 0
        if self._coverage is None or recheck:
            self._coverage = await q.has_coverage_events(conn)
        if not self._coverage:
            return []
        position = await q.get_cursor(conn, q.COVERAGE_CURSOR) or 0
        return await q.coverage_events_after(conn, position, COVERAGE_BATCH)

    async def _readings(self, conn: psycopg.AsyncConnection) -> dict[Kind, list[LatestReading]]:
        db_now = await q.db_now(conn)
        fresh = db_now - timedelta(seconds=self.config.telemetry_fresh_s)
        since = self._arrived_after or fresh
        self._arrived_after = db_now - timedelta(seconds=self.config.telemetry_overlap_s)
        return {kind: await q.latest_readings(conn, kind, since, fresh) for kind in self.kinds}

    async def _refresh_directory(self, conn: psycopg.AsyncConnection) -> None:
        self._directory = Directory(await q.subject_directory(conn))
        self._directory_at = time.monotonic()
