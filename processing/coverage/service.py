"""The coverage service: keeps the raster and the places' verdicts in step with the towers.

Every ``poll_s`` it reads the towers' liveness (and their latest per-sector flags); a change is
recomputed incrementally and the villages whose coverage moved are written, with their events,
in one transaction. Probe samples are re-binned every ``measured_poll_s``; N-1 criticality is
recomputed at most every ``critical_every_s`` after a change. A new or changed birth record
rebuilds the engine (a full recompute).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from processing.coverage.build import build_coverage, state_of
from processing.coverage.config import CoverageConfig
from processing.coverage.engine import SiteState
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.places import PlaceCoverage
from processing.coverage.state import Coverage, CoverageEvent
from store import coverage as q
from store.db import aconnect

log = logging.getLogger("ioc.coverage")
SECTORS_LOOKBACK_S = 600.0  # per-sector flags older than this are not news


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageServiceConfig:
    database_url: str
    coverage: CoverageConfig = field(default_factory=CoverageConfig)
    poll_s: float = 1.0
    measured_poll_s: float = 30.0
    critical_every_s: float = 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def place_row(pc: PlaceCoverage, ts: datetime) -> dict[str, Any]:
    levels: dict[str, dict[str, float]] = {}
    for (op, tech), value in pc.levels.items():
        levels.setdefault(op.value, {})[tech.value] = value
    p = pc.place
    return {
        "place_kind": p.kind,
        "place_id": p.place_id,
        "name": p.name,
        "district_code": p.district_code,
        "commune_code": p.commune_code,
        "population": p.population,
        "operators": [o.value for o in pc.operators],
        "measured": [o.value for o in pc.measured],
        "dead_spot": pc.dead_spot,
        "levels": levels,
        "ts": ts,
    }


def event_row(e: CoverageEvent) -> dict[str, Any]:
    return {
        "ts": e.ts,
        "village_id": e.village_id,
        "kind": e.kind,
        "operators_lost": list(e.operators_lost),
        "operators_now": list(e.operators_now),
        "towers": list(e.towers),
        "population": e.population,
    }


class CoverageService:
    def __init__(self, config: CoverageServiceConfig, *, clock: Callable[[], datetime] = utc_now):
        self.config = config
        self.clock = clock
        self.coverage: Coverage | None = None
        self.ready = asyncio.Event()
        self.registry: dict[str, str] = {}
        self.states: dict[str, SiteState] = {}
        self.probe_rejected: Counter[str] = Counter()
        self.events_written = 0
        self.polls = 0  # tower polls done (tests wait on it)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        conn = await aconnect(self.config.database_url)
        try:
            await self._rebuild(conn)
            self.ready.set()
            next_measured = time.monotonic() + self.config.measured_poll_s
            critical_due: float | None = None
            while not stop.is_set():
                changed = await self._poll_towers(conn)
                self.polls += 1
                if time.monotonic() >= next_measured:
                    await self._refresh_measured(conn)
                    next_measured = time.monotonic() + self.config.measured_poll_s
                if changed and critical_due is None:
                    critical_due = time.monotonic() + self.config.critical_every_s
                if critical_due is not None and time.monotonic() >= critical_due:
                    await self._write_critical(conn)
                    critical_due = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_s)
        finally:
            await conn.close()

    # -- steps ---------------------------------------------------------------------------
    async def _read_states(
        self, conn: Any
    ) -> tuple[dict[str, tuple[str, str]], dict[str, SiteState]]:
        rows = await q.bts_states(conn)
        since = self.clock() - timedelta(seconds=SECTORS_LOOKBACK_S)
        flags = await q.latest_sectors_up(conn, since)
        return rows, {d: state_of(s, flags.get(d)) for d, (s, _) in rows.items()}

    async def _rebuild(self, conn: Any) -> None:
        t0 = time.perf_counter()
        rows, states = await self._read_states(conn)
        doc = await q.places(conn)
        bts = await q.bts_registry(conn)
        cov = await asyncio.to_thread(build_coverage, doc, bts, self.config.coverage, states)
        await self._load_measured(conn, cov)
        self.registry = {d: m for d, (_, m) in rows.items()}
        self.states = states
        now = self.clock()
        previous, self.coverage = self.coverage, cov
        if previous is None:  # first build: diff against what was stored before a restart
            stored = await q.place_states(conn)
            cov.current = cov.evaluate()
            events = _events_against(stored, cov.current, now)
            await self._write(conn, {}, cov.current, events, now)
        else:
            events = cov.update(now, previous=previous)
            await self._write(conn, previous.current, cov.current, events, now)
        await self._write_critical(conn)
        await q.write_rejections(
            conn,
            "sector",
            [
                {"device_id": r.device_id, "sector": r.sector, "reason": r.reason, "count": 1}
                for r in cov.engine.rejections
            ],
            now,
        )
        log.info(
            "coverage: %d sites, %d emitters, %d refused, %d dead-spot villages (%.1f s)",
            len(cov.engine.sites),
            len(cov.engine.emitters),
            len(cov.engine.rejections),
            sum(1 for (k, _), pc in cov.current.items() if k == "village" and pc.dead_spot),
            time.perf_counter() - t0,
        )

    async def _poll_towers(self, conn: Any) -> bool:
        assert self.coverage is not None
        rows, states = await self._read_states(conn)
        if {d: m for d, (_, m) in rows.items()} != self.registry:
            log.info("coverage: the tower registry changed; full recompute")
            await self._rebuild(conn)
            return True
        news = {d: s for d, s in states.items() if self.states.get(d) != s}
        if not news:
            return False
        self.states.update(news)
        cov = self.coverage
        t0 = time.perf_counter()
        changed = await asyncio.to_thread(cov.engine.apply, news)
        if not changed:
            return False
        now = self.clock()
        before = cov.current
        events = await asyncio.to_thread(cov.update, now, changed=changed)
        await self._write(conn, before, cov.current, events, now)
        log.info(
            "coverage: %d towers changed, %d village events (%.2f s)",
            len(changed),
            len(events),
            time.perf_counter() - t0,
        )
        return True

    async def _load_measured(self, conn: Any, cov: Coverage) -> None:
        now = self.clock()
        since = now - timedelta(seconds=self.config.coverage.measured_window_s)
        rows = await q.probe_samples(conn, since)
        samples = [
            ProbeSample(
                ts=r["ts"],
                lat=r["lat"] if r["lat"] is not None else float("nan"),
                lon=r["lon"] if r["lon"] is not None else float("nan"),
                operator=r["operator"] or "",
                technology=r["technology"] or "",
                rsrp_dbm=r["rsrp_dbm"],
                no_service=bool(r["no_service"]),
                device_id=r["device_id"],
            )
            for r in rows
        ]
        engine = cov.engine
        cov.measured = bin_samples(samples, engine.grid, engine.layers, engine.config, now)
        if cov.measured.rejected != self.probe_rejected:
            self.probe_rejected = cov.measured.rejected
            await q.write_rejections(
                conn,
                "probe",
                [
                    {"device_id": "", "sector": None, "reason": k, "count": v}
                    for k, v in sorted(cov.measured.rejected.items())
                ],
                now,
            )

    async def _refresh_measured(self, conn: Any) -> None:
        cov = self.coverage
        assert cov is not None
        await self._load_measured(conn, cov)
        now = self.clock()
        before = cov.current
        events = cov.update(now)
        await self._write(conn, before, cov.current, events, now)

    async def _write(
        self,
        conn: Any,
        before: dict[tuple[str, str], PlaceCoverage],
        after: dict[tuple[str, str], PlaceCoverage],
        events: list[CoverageEvent],
        now: datetime,
    ) -> None:
        """Places whose verdict or levels moved; a history row where the verdict did."""
        moved = [pc for k, pc in after.items() if before.get(k) != pc]
        history = [
            place_row(pc, now)
            for k, pc in after.items()
            if (old := before.get(k)) is None
            or (old.operators, old.measured) != (pc.operators, pc.measured)
        ]
        await q.write_coverage(
            conn,
            places=[place_row(pc, now) for pc in moved],
            history=history,
            events=[event_row(e) for e in events],
        )
        self.events_written += len(events)

    async def _write_critical(self, conn: Any) -> None:
        cov = self.coverage
        assert cov is not None
        rows = [
            {
                "device_id": c.device_id,
                "operator": c.operator.value,
                "population_all": c.population_all,
                "villages_all": c.villages_all,
                "population_operator": c.population_operator,
                "villages_operator": c.villages_operator,
            }
            for c in await asyncio.to_thread(cov.criticality)
        ]
        await q.write_critical(conn, rows, self.clock())


def _events_against(
    stored: dict[tuple[str, str], list[str]],
    fresh: dict[tuple[str, str], PlaceCoverage],
    now: datetime,
) -> list[CoverageEvent]:
    """Events for what changed while the service was down (no tower attribution)."""
    out = []
    for (kind, pid), pc in fresh.items():
        if kind != "village" or (kind, pid) not in stored:
            continue
        old = set(stored[(kind, pid)])
        new = {o.value for o in pc.operators}
        if old == new:
            continue
        lost = tuple(sorted(old - new))
        ev_kind = (
            "lost" if not new else "restored" if not old else "degraded" if lost else "improved"
        )
        out.append(
            CoverageEvent(
                now,
                pid,
                ev_kind,
                lost,
                tuple(o.value for o in pc.operators),
                (),
                pc.place.population,
            )
        )
    return out


async def run_coverage(config: CoverageServiceConfig, *, stop: asyncio.Event | None = None) -> None:
    await CoverageService(config).run(stop)
