"""The alert engine: inputs → rules → trackers → transitions → outbox, one transaction a tick.

Each tick consumes the queued status changes, the coverage events after its cursor and the
latest readings, lets every (rule, subject) tracker decide at ``clock()``, and writes what they
decided together with the consumed inputs: a crash replays the tick, it never half-applies it.
Status changes and coverage events wake the engine at once (LISTEN/NOTIFY, fired by triggers
of migration 0007); readings are polled, and every ``tick_s`` the clock is looked at anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from devices.kinds import Kind
from processing.alerts.config import AlertConfig
from processing.alerts.delivery import Dispatcher, channels_for
from processing.alerts.facts import Directory, bts_extras, render
from processing.alerts.grouping import group_facts, zero_facts
from processing.alerts.lifecycle import Act, Action, Tracker
from processing.alerts.rules import Rule, RuleSet, Source, load_rules
from store import alert_engine as q
from store.alert_outbox import fan_out
from store.db import StoreUnavailable, aconnect

log = logging.getLogger("ioc.alerts")
DIRECTORY_REFRESH_S = 60.0
RECONCILE_S = 2.0
INBOX_BATCH = 5000
COVERAGE_BATCH = 5000


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


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


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
        self.trackers: dict[tuple[str, str], Tracker] = {}
        self.stats = EngineStats()
        self.ready = asyncio.Event()  # set once the engine holds the lock and has synced
        self.outbox_wake = asyncio.Event()
        self.dispatchers: list[Dispatcher] = []
        self._wake = asyncio.Event()
        self._directory: Directory | None = None
        self._directory_at = 0.0
        self._reconciled_at = 0.0
        self._telemetry_at = 0.0
        self._arrived_after: datetime | None = None
        self._last_reading: dict[str, datetime] = {}
        self._coverage: bool | None = None
        self._missing: dict[str, set[str]] = {}  # village → operators lost and not back
        self._kinds = sorted({Kind(r.subject) for r in self.rules.of(Source.TELEMETRY)})

    # ---- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate and/or deliver (per config) until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            if self.config.deliver:
                for channel in channels_for(self.config):
                    d = Dispatcher(channel, self.config, self.clock, self.outbox_wake)
                    self.dispatchers.append(d)
                    tasks.create_task(d.run(), name=f"deliver-{channel.name}")
            if self.config.evaluate:
                tasks.create_task(self._evaluate(), name="alerts-evaluate")
            else:
                self.ready.set()

    async def _evaluate(self) -> None:
        backoff = 0.5
        while True:
            started = time.monotonic()
            try:
                await self._evaluate_once()
            except* (psycopg.OperationalError, StoreUnavailable) as group:
                log.warning("database lost (%s); restarting in %.1fs", group.exceptions[0], backoff)
            except* Exception:
                # A bad input or a bug must not stop alerting for everything else.
                log.exception("alert evaluation failed; restarting in %.1fs", backoff)
            # Whatever was decided and not committed is lost with the transaction: start over
            # from what the database holds, as after a restart.
            self.trackers.clear()
            self.ready.clear()
            if time.monotonic() - started > 60:
                backoff = 0.5  # it had been running well: this is a new trouble
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)

    async def _evaluate_once(self) -> None:
        conn = await aconnect(self.config.database_url)
        listener: psycopg.AsyncConnection | None = None
        try:
            waited = False
            while not await q.try_lock_engine(conn):
                if not waited:
                    log.warning("another alert engine holds the lock on this database; waiting")
                    waited = True
                await asyncio.sleep(2.0)
            listener = await aconnect(self.config.database_url)
            await listener.execute("LISTEN ioc_alert_inbox")
            await self.start(conn)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._listen(listener))
                tasks.create_task(self._loop(conn))
        finally:
            if listener is not None:
                await listener.close()
            await conn.close()

    async def _listen(self, listener: psycopg.AsyncConnection) -> None:
        async for _ in listener.notifies():
            self._wake.set()

    async def _loop(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            self._wake.clear()
            await self.tick(conn)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.tick_s)

    # ---- state ---------------------------------------------------------------------------

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        """Load names, adopt the unresolved alerts and the devices offline now."""
        await self._refresh_directory(conn)
        now = self.clock()
        offline = {c.device_id: c for c in await q.offline_devices(conn)}
        for alert in await q.unresolved_alerts(conn):
            try:
                rule = self.rules.by_name(alert.rule)
            except KeyError:
                log.warning("alert %d: rule %r is no longer defined", alert.alert_id, alert.rule)
                continue
            t = self._tracker(rule, alert.subject)
            t.raised, t.changed_at, t.alert_id = True, now, alert.alert_id
            t.flapping = alert.flapping
            t.sent(alert.summary, alert.updated_at)
            if rule.source is Source.STATUS and alert.subject not in offline:
                t.observe(False, {"state": "online"}, now)
        for change in offline.values():
            self._on_status(change, min(change.ts, now))
        await self._replay_missing(conn)
        self._reconciled_at = time.monotonic()
        self.ready.set()

    def _tracker(self, rule: Rule, subject: str) -> Tracker:
        key = (rule.name, subject)
        t = self.trackers.get(key)
        if t is None:
            t = Tracker(rule, subject, facts=self._subject_facts(rule, subject))
            self.trackers[key] = t
        return t

    @property
    def directory(self) -> Directory:
        assert self._directory is not None, "start() first"
        return self._directory

    def _subject_facts(self, rule: Rule, subject: str) -> dict[str, Any]:
        if rule.subject == "village":
            return self.directory.village(subject)
        if rule.subject == "district":
            return self.directory.district(int(subject))
        return self.directory.device(subject)

    def _observe(self, rule: Rule, subject: str, raised: bool | None, facts: dict[str, Any],
                 now: datetime) -> None:  # fmt: skip
        if (rule.name, subject) not in self.trackers and raised is not True:
            return  # nothing to remember about a subject that is fine
        self._tracker(rule, subject).observe(raised, facts, now)

    # ---- one tick ------------------------------------------------------------------------

    async def tick(self, conn: psycopg.AsyncConnection) -> int:
        """Read inputs, decide, write; returns the number of transitions written."""
        now = self.clock()
        mono = time.monotonic()
        if mono - self._directory_at > DIRECTORY_REFRESH_S:
            await self._refresh_directory(conn)
        if mono - self._reconciled_at > RECONCILE_S:
            await self._reconcile(conn, now)
        async with conn.transaction():
            for change in await q.take_status_changes(conn, INBOX_BATCH):
                self._on_status(change, now)
            await self._read_coverage(conn, now)
            if mono - self._telemetry_at >= self.config.telemetry_every_s:
                self._telemetry_at = mono
                await self._read_telemetry(conn, now)
            self._group(now)
            written = 0
            for action in self._decide(now):
                written += await self._apply(conn, action, now)
            written += await q.unsilence_due(conn, now)
            queued = await fan_out(conn, self.config.channels, now)
        self.stats.ticks += 1
        self.stats.transitions += written
        self.stats.queued += queued
        if queued:
            self.outbox_wake.set()
        return written

    def _on_status(self, change: q.StatusChange, now: datetime) -> None:
        self.stats.status_changes += 1
        device = self.directory.data.devices.get(change.device_id)
        if device is None:
            self._directory_at = 0.0  # a device registered since the last load
            return
        facts = {"state": change.state, "reason": change.reason, "status_ts": change.ts}
        for rule in self.rules.of(Source.STATUS, device.kind):
            self._observe(rule, change.device_id, rule.raised(facts), facts, now)

    async def _read_coverage(self, conn: psycopg.AsyncConnection, now: datetime) -> None:
        if self._coverage is None or (not self._coverage and self.stats.ticks % 40 == 0):
            self._coverage = await q.has_coverage_events(conn)
        if not self._coverage:
            return
        position = await q.get_cursor(conn, q.COVERAGE_CURSOR) or 0
        events = await q.coverage_events_after(conn, position, COVERAGE_BATCH)
        for event in events:
            self.stats.coverage_events += 1
            facts: dict[str, Any] = {
                "kind": event.kind,
                "operators_lost": list(event.operators_lost),
                "operators_now": list(event.operators_now),
                "operators_missing": sorted(self._fold_missing(event)),
                "towers": list(event.towers),
                "event_ts": event.ts,
            }
            if event.population is not None:
                facts["population"] = event.population
            for rule in self.rules.of(Source.COVERAGE):
                base = self.directory.village(event.village_id)
                merged = {**base, **facts}
                self._observe(rule, event.village_id, rule.raised(merged), merged, now)
        if events:
            await q.set_cursor(conn, q.COVERAGE_CURSOR, events[-1].id)

    def _fold_missing(self, event: q.CoverageEvent) -> set[str]:
        missing = self._missing.get(event.village_id, set())
        missing = (missing | set(event.operators_lost)) - set(event.operators_now)
        if missing:
            self._missing[event.village_id] = missing
        else:
            self._missing.pop(event.village_id, None)
        return missing

    async def _replay_missing(self, conn: psycopg.AsyncConnection) -> None:
        """Who is missing where, from the events already consumed (they are not re-alerted)."""
        self._missing.clear()
        if not await q.has_coverage_events(conn):
            return
        upto = await q.get_cursor(conn, q.COVERAGE_CURSOR) or 0
        position = 0
        while position < upto:
            events = await q.coverage_events_after(conn, position, COVERAGE_BATCH)
            for event in events:
                if event.id > upto:
                    return
                self._fold_missing(event)
            if not events:
                return
            position = events[-1].id

    async def _read_telemetry(self, conn: psycopg.AsyncConnection, now: datetime) -> None:
        db_now = await q.db_now(conn)
        fresh = db_now - timedelta(seconds=self.config.telemetry_fresh_s)
        since = self._arrived_after or fresh
        self._arrived_after = db_now - timedelta(seconds=self.config.telemetry_overlap_s)
        for kind in self._kinds:
            rules = self.rules.of(Source.TELEMETRY, kind.value)
            for row in await q.latest_readings(conn, kind, since, fresh):
                device_id = row.pop("device_id")
                ts = row.pop("ts")
                row.pop("seq", None)
                if self._last_reading.get(device_id, ts) > ts:
                    continue  # an older reading arriving late says nothing about now
                self._last_reading[device_id] = ts
                self.stats.readings += 1
                facts = {**row, "reading_ts": ts}
                if kind is Kind.BTS:
                    facts |= bts_extras(row)
                for rule in rules:
                    self._observe(rule, device_id, rule.raised(facts), facts, now)

    def _group(self, now: datetime) -> None:
        for rule in self.rules.of(Source.GROUP):
            assert rule.members is not None
            kind = self.rules.by_name(rule.members).subject
            members = [t for t in self.trackers.values() if t.rule.name == rule.members]

            def district_of(t: Tracker, kind: str = kind) -> int | None:
                return self.directory.district_of(kind, t.subject)

            per_district = group_facts(
                rule, members, district_of, self.directory.bts_per_district.__getitem__, now
            )
            existing = {int(t.subject) for t in self.trackers.values() if t.rule is rule}
            for district in existing - per_district.keys():
                per_district[district] = zero_facts(rule, self.directory.bts_per_district[district])
            active: set[int] = set()
            for district, facts in per_district.items():
                self._observe(rule, str(district), rule.raised(facts), facts, now)
                t = self.trackers.get((rule.name, str(district)))
                if t is not None:
                    t.facts.update(facts)
                    if t.raised or t.alert_id is not None:
                        active.add(district)
            for t in members:
                t.held = district_of(t) in active

    def _decide(self, now: datetime) -> list[Action]:
        actions: list[Action] = []
        # Groups first: a group opening in this tick holds its members in the same tick.
        ordered = sorted(self.trackers.values(), key=lambda t: t.rule.source is not Source.GROUP)
        for t in ordered:
            actions += t.step(now, render(t.rule.summary_en, t.facts))
        for key in [k for k, t in self.trackers.items() if t.idle]:
            del self.trackers[key]
        return actions

    async def _apply(self, conn: psycopg.AsyncConnection, action: Action, now: datetime) -> int:
        t, rule = action.tracker, action.tracker.rule
        summary = render(rule.summary_en, t.facts)
        summary_vi = render(rule.summary_vi, t.facts)
        details = {k: _jsonable(v) for k, v in t.facts.items()}
        details |= {"rule_en": rule.en, "rule_vi": rule.vi}
        if action.act is Act.OPEN:
            severity = action.severity or rule.severity
            alert = q.NewAlert(
                rule.name, t.subject, rule.subject, severity.value, summary, summary_vi, details,
                self.directory.district_of(rule.subject, t.subject), t.flapping, action.comment,
            )  # fmt: skip
            alert_id = await q.open_alert(conn, alert, now)
            if alert_id is None:  # one is already unresolved (opened before a restart)
                found = [a for a in await q.unresolved_alerts(conn)
                         if (a.rule, a.subject) == t.key]  # fmt: skip
                t.alert_id = found[0].alert_id if found else None
                return 0
            t.alert_id = alert_id
            t.sent(summary, now)
            return 1
        if t.alert_id is None:
            return 0
        if action.act is Act.RESOLVE:
            done = await q.engine_transition(conn, "resolved", t.alert_id, now,
                                             comment=action.comment)  # fmt: skip
            t.alert_id = None
            return int(done)
        event = "flapping" if action.act is Act.FLAPPING else "updated"
        done = await q.engine_transition(
            conn, event, t.alert_id, now, comment=action.comment, summary=summary,
            summary_vi=summary_vi, details=details, flapping=t.flapping,
        )  # fmt: skip
        if not done:
            self._forget(t)
        elif event == "updated":
            t.sent(summary, now)
        return int(done)

    def _forget(self, t: Tracker) -> None:
        """The alert was resolved by an operator: wait for a clear before another opens."""
        t.alert_id = None
        t.flapping = False
        t.closed_by_operator = t.raised

    async def _reconcile(self, conn: psycopg.AsyncConnection, now: datetime) -> None:
        self._reconciled_at = time.monotonic()
        unresolved = {a.alert_id for a in await q.unresolved_alerts(conn)}
        for t in self.trackers.values():
            if t.alert_id is not None and t.alert_id not in unresolved:
                self._forget(t)

    async def _refresh_directory(self, conn: psycopg.AsyncConnection) -> None:
        self._directory = Directory(await q.subject_directory(conn))
        self._directory_at = time.monotonic()


async def run_alerts(config: AlertConfig, *, clock: Callable[[], datetime] = utc_now) -> None:
    await AlertEngine(config, clock=clock).run()
