"""The alert engine: gather → decide → write, one transaction a tick.

Each tick reads the queued status changes, the coverage events after its cursor and the latest
readings (``gather``), lets every (rule, subject) tracker decide at ``clock()`` (``decide``, no
I/O), and writes what they decided together with the consumed inputs (``write``): a crash
replays the tick, it never half-applies it. Status changes and coverage events wake the engine
at once (LISTEN/NOTIFY, fired by triggers of migration 0007); readings and the battery runway
(place_runway, whose forecasts ripen with time alone) are polled, and every
``tick_s`` the clock is looked at anyway. One engine per database evaluates (``session``).
``/metrics`` and ``/health`` (``metrics_port``): see ``processing.alerts.metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from devices.kinds import Kind
from devices.service_http import Served
from processing.alerts.config import AlertConfig
from processing.alerts.decide import (
    Decision,
    EngineState,
    adopt,
    decide,
    fold_dark,
    fold_missing,
)
from processing.alerts.delivery import Dispatcher, channels_for
from processing.alerts.gather import Gatherer
from processing.alerts.incident_rules import load_incident_rules
from processing.alerts.incidents import IncidentBook, IncidentTick
from processing.alerts.lifecycle import Tracker
from processing.alerts.metrics import AlertMetrics
from processing.alerts.rules import RuleSet, Source, load_rules
from processing.alerts.session import hold_engine_lock, open_listener, wake_on_notify
from processing.alerts.write import write
from store.db import StoreUnavailable, aconnect

log = logging.getLogger("ioc.alerts")
# After a failure the engine starts over after a pause doubling from RESTART_FIRST_S up to
# RESTART_MAX_S: a database that is down is not hammered, a passing fault costs half a second.
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
# A run this long was healthy: its failure is a new trouble, retried quickly again.
HEALTHY_RUN_S = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class EngineStats:
    ticks: int = 0
    status_changes: int = 0
    readings: int = 0
    coverage_events: int = 0
    transitions: int = 0
    queued: int = 0  # outbox rows


class AlertEngine:
    def __init__(
        self,
        config: AlertConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        rules: RuleSet | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rules = rules or load_rules(config.rules_path)
        self.state = EngineState()
        self.incidents = IncidentBook(load_incident_rules(config.rules_path))
        self.stats = EngineStats()
        self.ready = asyncio.Event()  # set once the engine holds the lock and has synced
        self.outbox_wake = asyncio.Event()
        self.dispatchers: list[Dispatcher] = []
        self._wake = asyncio.Event()
        kinds = sorted({Kind(r.subject) for r in self.rules.of(Source.TELEMETRY)})
        self.gather = Gatherer(config, kinds, runway=bool(self.rules.of(Source.RUNWAY)))
        self.metrics = AlertMetrics(config.database_url, config.stale_after_s)
        self.metrics.evaluate = config.evaluate

    @property
    def trackers(self) -> dict[tuple[str, str], Tracker]:
        return self.state.trackers

    # ---- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate and/or deliver (per config) until cancelled."""
        m, served = self.metrics, Served()
        served.start(self.config.metrics_address, self.config.metrics_port, m.registry, m.health,
                     name="alerts-http")  # fmt: skip
        try:
            async with asyncio.TaskGroup() as tasks:
                if self.config.deliver:
                    names = {r.name: (r.en, r.vi) for r in self.rules.rules}
                    names |= self.incidents.rules.names  # incident_<cause>: its cause's names
                    for channel in channels_for(self.config, names):
                        d = Dispatcher(channel, self.config, self.clock, self.outbox_wake)
                        d.metrics = m
                        m.channel(channel.name)
                        self.dispatchers.append(d)
                        tasks.create_task(d.run(), name=f"deliver-{channel.name}")
                if self.config.evaluate:
                    tasks.create_task(self._evaluate(), name="alerts-evaluate")
                else:
                    self.ready.set()
        finally:
            served.stop()

    async def _evaluate(self) -> None:
        backoff = RESTART_FIRST_S
        while True:
            started = time.monotonic()
            try:
                await self._evaluate_once()
            except* (psycopg.OperationalError, StoreUnavailable) as group:
                log.warning("database lost (%s); restarting in %.1fs", group.exceptions[0], backoff)
                self.metrics.heartbeat.ended(f"database unavailable: {group.exceptions[0]}")
            except* Exception as group:
                # A bad input or a bug must not stop alerting for everything else.
                log.exception("alert evaluation failed; restarting in %.1fs", backoff)
                self.metrics.heartbeat.ended(f"evaluation failed: {group.exceptions[0]!r}")
            # Whatever was decided and not committed is lost with the transaction: start over
            # from what the database holds, as after a restart.
            self.state.trackers.clear()
            self.ready.clear()
            if time.monotonic() - started > HEALTHY_RUN_S:
                backoff = RESTART_FIRST_S
            await asyncio.sleep(backoff)
            backoff = min(RESTART_MAX_S, backoff * 2)

    async def _evaluate_once(self) -> None:
        conn = await aconnect(self.config.database_url)
        listener: psycopg.AsyncConnection | None = None
        try:
            await hold_engine_lock(conn)
            listener = await open_listener(self.config.database_url)
            await self.start(conn)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(wake_on_notify(listener, self._wake))
                tasks.create_task(self._loop(conn))
        finally:
            if listener is not None:
                await listener.close()
            await conn.close()

    async def _loop(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            self._wake.clear()
            await self.tick(conn)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.tick_s)

    # ---- start and tick ------------------------------------------------------------------

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        """Load names, adopt the unresolved alerts and the devices offline now."""
        startup = await self.gather.start(conn)
        decision = adopt(startup, self.rules, self.gather.directory, self.state, self.clock())
        for alert in decision.orphans:
            log.warning("alert %d: rule %r is no longer defined", alert.alert_id, alert.rule)
        self._count(decision)
        await self.incidents.load(conn)
        self.state.missing.clear()
        self.state.dark.clear()
        async for event in self.gather.consumed_coverage(conn):
            fold_missing(self.state.missing, event)
            fold_dark(self.state.dark, event)
        self.ready.set()

    async def tick(self, conn: psycopg.AsyncConnection) -> int:
        """Gather, decide, write; returns the number of transitions written."""
        now = self.clock()
        unresolved = await self.gather.refresh(conn)
        async with conn.transaction():
            intake = await self.gather.intake(conn, self.stats.ticks, unresolved)
            decision = decide(intake, self.rules, self.gather.directory, self.state, now)
            decided = utc_now()
            incidents = IncidentTick(self.incidents, list(self.state.trackers.values()),
                                     self.gather.directory, intake.unresolved)  # fmt: skip
            written, queued = await write(
                conn, decision.writes, intake.coverage_cursor, self.config.router, now, incidents
            )
        facts = [c.ts for c in intake.status_changes] + [e.ts for e in intake.coverage_events]
        self.metrics.tick(facts, decided, written)
        self._count(decision)
        self.stats.ticks += 1
        self.stats.transitions += written
        self.stats.queued += queued
        if queued:
            self.outbox_wake.set()
        return written

    def _count(self, decision: Decision) -> None:
        self.stats.status_changes += decision.status_changes
        self.stats.readings += decision.readings
        self.stats.coverage_events += decision.coverage_events
        if decision.directory_stale:
            self.gather.directory_stale()


async def run_alerts(config: AlertConfig, *, clock: Callable[[], datetime] = utc_now) -> None:
    await AlertEngine(config, clock=clock).run()
