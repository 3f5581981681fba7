"""The coverage service: keeps the raster and the places' verdicts in step with the towers.

Pushed, not polled: the ingester's status events and serving-flag changes (and the liveness
job's silences) notify ``store.coverage.WAKE_CHANNEL`` in their own transaction; on each wake the
service reads every site's serving inputs once (so a burst of flaps is one recompute of the
last state), recomputes the footprints of the sites whose verdict moved, and writes the places
and their village events in one transaction, whose insert wakes the alert engine. A
reconciliation sweep every ``sweep_s`` re-reads everything as a safety net. Probe samples are
re-binned every ``measured_poll_s``; N-1 criticality, and which towers serve which place
(``place_towers``), after every rebuild and at most every ``critical_every_s`` after a change.
A changed birth record (radio parameters) rebuilds the engine (a full recompute).
The map's raster (``store.coverage_rasters``) is written after every rebuild, and after an
incremental change at most every ``raster_every_s``: a burst of flaps is one write of the last
state, never one per message (so it may trail ``idle`` by that much).
The battery runway (``site_runway``, ``place_runway``: ``processing.coverage.runway``) is
recomputed every ``runway.every_s`` from the towers still serving that report battery, on a
connection and at a pace of its own (a pass never delays a wake's events).
``/metrics`` and ``/health`` (``metrics_port``): see ``processing.coverage.metrics``.
With ``dask_scheduler`` set, the service connects to that Dask cluster once at start and runs
each rebuild's full recompute and covering towers (N-1) there (``processing.coverage.cluster``,
the same result bit for bit); a scheduler it cannot reach, or a cluster that fails a rebuild,
leaves that work in this process, and the log says so. ``ran_on`` and
``ioc_coverage_full_recomputes_total{ran_on}`` say where each full recompute ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from prometheus_client import Counter as Count

from devices.kinds import Operator
from devices.service_http import Served
from processing.coverage.build import build_coverage
from processing.coverage.cluster import worker_count
from processing.coverage.config import CoverageConfig
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.metrics import CoverageMetrics
from processing.coverage.places import PlaceCoverage
from processing.coverage.rasters import operator_rasters
from processing.coverage.runway import RunwayConfig, Stretch, forecast_places, forecast_site
from processing.coverage.serving import SiteState, Verdict, Why, verdicts_from_rows
from processing.coverage.state import Coverage, CoverageEvent, place_change
from store import coverage as q
from store.coverage_rasters import write_rasters
from store.db import StoreUnavailable, aconnect
from store.runway import battery_stretches, write_runway

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("ioc.coverage")


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageServiceConfig:
    database_url: str
    coverage: CoverageConfig
    sweep_s: float  # re-read everything though nothing woke us: the safety net
    measured_poll_s: float = 30.0
    critical_every_s: float = 60.0
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # /metrics and /health; None: not served
    stale_after_s: float = 120.0  # no loop pass for this long: /health answers 503
    raster_every_s: float = 5.0  # the map's raster, rewritten at most this often after a change
    runway: RunwayConfig = field(default_factory=RunwayConfig)
    dask_scheduler: str | None = None  # tcp://host:8786: full recomputes on that cluster
    dask_connect_s: float = 10.0  # a scheduler not answering within this is unreachable


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
        "unknown": [o.value for o in pc.unknown],
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
        self.fingerprints: dict[str, str] = {}
        self.feeders: dict[int, list[str]] = {}
        self.verdicts: dict[str, Verdict] = {}  # each site's, once its consequences are stored
        self.probe_rejected: Counter[str] = Counter()
        self.events_written = 0
        self.rasters_written = 0  # writes of the map's rasters
        self.runways_written = 0  # passes of the battery runway (tests wait on it)
        self._rasters_stale = False
        self._rasters_at = -math.inf  # monotonic time of the last raster write
        self.wakes = 0  # passes of the loop (tests wait on it)
        self.idle = asyncio.Event()  # waiting, with no wake-up unread: what is stored is current
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self._grace_ends = math.inf
        self.metrics = CoverageMetrics(config.stale_after_s, lambda: len(self._pending))
        self.client: Client | None = None  # the Dask cluster's, when one is configured and up
        self.ran_on = ""  # where the last full recompute ran: "local" or the scheduler address
        self._full_runs = Count(
            "ioc_coverage_full_recomputes", "full recomputes, by where they ran (local, dask)",
            ["ran_on"], registry=self.metrics.registry,
        )  # fmt: skip

    @property
    def in_grace(self) -> bool:
        return time.monotonic() < self._grace_ends

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        m, served = self.metrics, Served()
        served.start(self.config.metrics_address, self.config.metrics_port, m.registry, m.health,
                     name="coverage-http")  # fmt: skip
        try:
            await self._run(stop)
        except BaseException as err:
            m.heartbeat.ended(f"coverage loop ended: {type(err).__name__}: {err}")
            raise
        finally:
            served.stop()

    async def _run(self, stop: asyncio.Event) -> None:
        conn = await aconnect(self.config.database_url)
        listener = await aconnect(self.config.database_url)
        tasks: list[asyncio.Task[None]] = []
        try:
            await q.listen(listener)  # before the first read: no change falls in between
            await self._connect_cluster()
            self._grace_ends = time.monotonic() + self.config.coverage.unknown_grace_s
            await self._rebuild(conn)
            self.ready.set()
            tasks = [
                asyncio.create_task(self._listen(listener)),
                asyncio.create_task(self._relay(stop)),
                asyncio.create_task(self._runway(stop)),
            ]
            await self._loop(conn, stop, tasks[0])
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await listener.close()
            await conn.close()
            if self.client is not None:
                await asyncio.to_thread(self.client.close)

    async def _connect_cluster(self) -> None:
        """Connect to the configured Dask scheduler, once; unreachable: work here."""
        address = self.config.dask_scheduler
        if not address:
            return
        try:
            self.client = await asyncio.to_thread(_dask_client, address, self.config.dask_connect_s)
        except (OSError, TimeoutError) as err:
            log.warning(
                "coverage: Dask scheduler %s unreachable (%s); full recomputes run in this "
                "process", address, err,
            )  # fmt: skip
            return
        log.info("coverage: full recomputes run on the Dask cluster at %s", address)

    def _build(
        self, doc: dict[str, Any], bts: list[dict[str, Any]], verdicts: dict[str, Verdict]
    ) -> Coverage:
        """``build_coverage`` on the cluster when there is one with workers, else here."""
        cfg, client = self.config, self.client
        if client is not None:
            if worker_count(client):
                try:
                    cov = build_coverage(doc, bts, cfg.coverage, verdicts, client)
                except Exception as err:  # the local engine is always right: fall back to it
                    log.warning(
                        "coverage: the Dask cluster at %s failed a rebuild (%s: %s); computing "
                        "here", cfg.dask_scheduler, type(err).__name__, err,
                    )  # fmt: skip
                else:
                    self._ran("dask", str(cfg.dask_scheduler))
                    return cov
            else:
                log.warning(
                    "coverage: the Dask cluster at %s has no worker; computing here",
                    cfg.dask_scheduler,
                )
        cov = build_coverage(doc, bts, cfg.coverage, verdicts)
        self._ran("local", "local")
        return cov

    def _ran(self, kind: str, where: str) -> None:
        self.ran_on = where
        self._full_runs.labels(kind).inc()

    async def _listen(self, listener: psycopg.AsyncConnection) -> None:
        async for note in listener.notifies():
            self._pending.add(note.payload)
            self._wake.set()

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _loop(
        self, conn: psycopg.AsyncConnection, stop: asyncio.Event, listening: asyncio.Task[None]
    ) -> None:
        cfg = self.config
        next_sweep = time.monotonic() + cfg.sweep_s
        next_measured = time.monotonic() + cfg.measured_poll_s
        critical_due = math.inf
        grace_pending = self.in_grace
        while not stop.is_set():
            self.metrics.heartbeat.beat()  # the previous pass is done: the loop is alive
            now = time.monotonic()
            until = min(next_sweep, next_measured, critical_due, self._raster_due())
            if grace_pending:
                until = min(until, self._grace_ends)
            if not self._wake.is_set():
                self.idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, until - now))
            self.idle.clear()
            if listening.done():
                listening.result()  # the listener's connection failed: say so, and stop
                raise RuntimeError("the coverage service stopped listening")
            if stop.is_set():
                break
            self._wake.clear()
            due, self._pending = self._pending, set()
            self.wakes += 1
            self.metrics.wakes.inc()
            now = time.monotonic()
            sweep = now >= next_sweep
            if sweep:
                next_sweep = now + cfg.sweep_s
            grace_over = grace_pending and not self.in_grace
            grace_pending &= not grace_over
            changed = False
            if ("registry" in due or sweep) and await self._registry_changed(conn):
                await self._rebuild(conn)
                changed = True
            elif due or sweep or grace_over:
                changed = await self._refresh_states(conn)
            if now >= next_measured:
                await self._refresh_measured(conn)
                next_measured = time.monotonic() + cfg.measured_poll_s
            if changed and critical_due == math.inf:
                critical_due = time.monotonic() + cfg.critical_every_s
            if time.monotonic() >= critical_due:
                await self._write_critical(conn)
                critical_due = math.inf
            if time.monotonic() >= self._raster_due():
                await self._write_rasters(conn)

    # -- steps ---------------------------------------------------------------------------
    async def _read_verdicts(self, conn: psycopg.AsyncConnection) -> dict[str, Verdict]:
        rows = await q.serving_inputs(conn)
        return verdicts_from_rows(rows, self.feeders, in_grace=self.in_grace)

    async def _registry_changed(self, conn: psycopg.AsyncConnection) -> bool:
        """True when a tower's radio description changed (a rebuild is due); a changed
        broadband feed only re-reads the feeders."""
        if await q.radio_fingerprints(conn) != self.fingerprints:
            log.info("coverage: the tower registry changed; full recompute")
            return True
        feeders = await q.feeders(conn)
        if feeders != self.feeders:
            self.feeders = feeders
            self._pending.add("state")
            self._wake.set()
        return False

    async def _rebuild(self, conn: psycopg.AsyncConnection) -> None:
        t0 = time.perf_counter()
        self.fingerprints = await q.radio_fingerprints(conn)
        self.feeders = await q.feeders(conn)
        verdicts = await self._read_verdicts(conn)
        doc = await q.places(conn)
        bts = await q.bts_registry(conn)
        cov = await asyncio.to_thread(self._build, doc, bts, verdicts)
        await self._load_measured(conn, cov)
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
        self.verdicts = verdicts
        self.metrics.recomputed("full", time.perf_counter() - t0)
        await self._write_critical(conn)
        await self._write_rasters(conn)
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
            "coverage: %d sites, %d emitters, %d refused, %d dead-spot villages (%.1f s, on %s)",
            len(cov.engine.sites),
            len(cov.engine.emitters),
            len(cov.engine.rejections),
            sum(1 for (k, _), pc in cov.current.items() if k == "village" and pc.dead_spot),
            time.perf_counter() - t0,
            self.ran_on,
        )

    async def _refresh_states(self, conn: psycopg.AsyncConnection) -> bool:
        """Take every site's serving verdict now; recompute and write what moved."""
        cov = self.coverage
        assert cov is not None
        t0 = time.perf_counter()
        verdicts = await self._read_verdicts(conn)
        news: dict[str, SiteState] = {
            d: v.state
            for d, v in verdicts.items()
            if (old := self.verdicts.get(d)) is None or old.state != v.state
        }
        unknown = frozenset(d for d, v in verdicts.items() if v.why is Why.UNKNOWN)
        now = self.clock()
        changed = (
            await asyncio.to_thread(cov.engine.apply, news, at=now.timestamp()) if news else set()
        )
        if not changed and unknown == cov.unknown_sites:
            self.verdicts = verdicts
            return False
        cov.unknown_sites = unknown
        before = cov.current
        events = await asyncio.to_thread(cov.update, now, changed=changed)
        await self._write(conn, before, cov.current, events, now)
        self.verdicts = verdicts  # what they caused is stored: watchers may rely on it
        self._rasters_stale = True
        self.metrics.recomputed("incremental", time.perf_counter() - t0)
        log.info(
            "coverage: %d towers changed, %d village events (%.3f s)",
            len(changed),
            len(events),
            time.perf_counter() - t0,
        )
        return True

    async def _load_measured(self, conn: psycopg.AsyncConnection, cov: Coverage) -> None:
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
        self.metrics.written(after, events)

    def _raster_due(self) -> float:
        """Monotonic time the map's raster is to be rewritten; inf when it is current."""
        if not self._rasters_stale:
            return math.inf
        return self._rasters_at + self.config.raster_every_s

    async def _write_rasters(self, conn: psycopg.AsyncConnection) -> None:
        cov = self.coverage
        assert cov is not None
        t0 = time.perf_counter()
        rasters = await asyncio.to_thread(operator_rasters, cov.engine, self.clock())
        await write_rasters(conn, rasters)
        self._rasters_stale = False
        self._rasters_at = time.monotonic()
        self.rasters_written += 1
        log.debug(
            "coverage: rasters written, %d bytes (%.3f s)",
            sum(len(r.levels) for r in rasters),
            time.perf_counter() - t0,
        )

    async def _runway(self, stop: asyncio.Event) -> None:
        """The runway's own pace and connection: a pass never delays a wake's events."""
        conn: psycopg.AsyncConnection | None = None
        try:
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = await aconnect(self.config.database_url)
                    await self._write_runway(conn)
                except (psycopg.Error, StoreUnavailable) as err:  # the main loop reports a lost db
                    log.warning("coverage: runway pass failed: %s", err)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.runway.every_s)
        finally:
            if conn is not None:
                await conn.close()

    async def _write_runway(self, conn: psycopg.AsyncConnection) -> None:
        """The runway of the towers serving now that report battery, and of the places they
        hold; a tower dark or back on mains leaves both tables."""
        cov = self.coverage
        assert cov is not None
        t0 = time.perf_counter()
        rw = self.config.runway
        serving = sorted(d for d, v in dict(self.verdicts).items() if v.state.serving)
        rows = await battery_stretches(conn, serving, rw.window_s)
        sites = {
            r["device_id"]: forecast_site(
                Stretch(
                    r["device_id"],
                    r["since"] or r["read_at"],
                    r["read_at"],
                    r["battery_pct"],
                    np.asarray(r["ts_s"] or [], np.float64),
                    np.asarray(r["pct"] or [], np.float64),
                ),
                rw,
            )
            for r in rows
        }
        # A copy: a wake's update may be changing ``covering`` in its worker thread.
        places = forecast_places(cov.places, dict(cov.covering), sites)
        await write_runway(
            conn,
            [asdict(f) for f in sites.values()],
            [asdict(p) | {"sites": list(p.sites)} for p in places],
            self.clock(),
        )
        self.runways_written += 1
        log.debug(
            "coverage: runway of %d towers on battery, %d places at risk (%.3f s)",
            len(sites),
            len(places),
            time.perf_counter() - t0,
        )

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
        now = self.clock()
        async with conn.transaction():  # N-1 and who serves whom: one picture for the dashboard
            await q.write_critical(conn, rows, now)
            await q.write_place_towers(conn, serving_pairs(cov), now)


def serving_pairs(cov: Coverage) -> set[q.ServingPair]:
    """The engine's ``covering`` as (place_kind, place_id, operator, device_id) rows."""
    return {
        (kind, pid, op.value, tower)
        for (kind, pid), by_op in cov.covering.items()
        for op, towers in by_op.items()
        for tower in towers
    }


def _events_against(
    stored: dict[tuple[str, str], tuple[list[str], list[str]]],
    fresh: dict[tuple[str, str], PlaceCoverage],
    now: datetime,
) -> list[CoverageEvent]:
    """Events for what changed while the service was down (no tower attribution)."""
    out = []
    for (kind, pid), pc in fresh.items():
        if kind != "village" or (kind, pid) not in stored:
            continue
        operators, unknown = stored[(kind, pid)]
        old = PlaceCoverage(
            pc.place,
            tuple(Operator(o) for o in operators),
            (),
            {},
            tuple(Operator(o) for o in unknown),
        )
        change = place_change(old, pc)
        if change is None:
            continue
        ev_kind, lost = change
        out.append(
            CoverageEvent(
                now,
                pid,
                ev_kind,
                tuple(o.value for o in lost),
                tuple(o.value for o in pc.operators),
                (),
                pc.place.population,
            )
        )
    return out


def _dask_client(address: str, timeout_s: float) -> Client:
    from distributed import Client

    return Client(address, timeout=timeout_s, set_as_default=False)  # type: ignore[no-untyped-call]


async def run_coverage(config: CoverageServiceConfig, *, stop: asyncio.Event | None = None) -> None:
    await CoverageService(config).run(stop)
