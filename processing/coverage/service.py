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
One engine per province loaded (each on its own grid, with that province's places, outline and
towers: a tower belongs to the province of its district): a serving change goes to its
province's engine alone, a registry change rebuilds only the provinces whose towers or places
changed, and every table is written for all provinces together (place and device ids are
national). N-1 and the rasters are recomputed only for the provinces that changed.
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
import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import psycopg
from prometheus_client import Counter as Count

from devices.kinds import Operator
from devices.service_http import Served
from processing.coverage.build import ProvinceInput, build_provinces, split_provinces
from processing.coverage.cluster import worker_count
from processing.coverage.config import CoverageConfig
from processing.coverage.dem import DemError
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.metrics import CoverageMetrics
from processing.coverage.places import PlaceCoverage
from processing.coverage.rasters import operator_rasters
from processing.coverage.runway import RunwayConfig, Stretch, forecast_places, forecast_site
from processing.coverage.serving import SiteState, Verdict, Why, verdicts_from_rows
from processing.coverage.sites import Rejection
from processing.coverage.state import Coverage, CoverageEvent, place_change
from store import coverage as q
from store.coverage_rasters import keep_provinces, write_rasters
from store.db import StoreUnavailable, aconnect
from store.runway import battery_stretches, write_runway

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("ioc.coverage")
Verdicts = dict[tuple[str, str], PlaceCoverage]
Diff = tuple[Verdicts, Verdicts]  # a province's verdicts before and after a change


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
        self.engines: dict[int, Coverage] = {}  # by GSO province code
        self.province_of: dict[str, int] = {}  # tower → the province whose engine holds it
        self._built: dict[int, str] = {}  # province → fingerprint of what its engine holds
        self._refused: list[Rejection] = []  # towers in no province loaded
        self._critical: dict[int, list[dict[str, Any]]] = {}  # N-1 rows, by province
        self._critical_stale: set[int] = set()
        self.ready = asyncio.Event()
        self.fingerprints: dict[str, str] = {}
        self.feeders: dict[int, list[str]] = {}
        self.verdicts: dict[str, Verdict] = {}  # each site's, once its consequences are stored
        self.probe_rejected: Counter[str] = Counter()
        self.events_written = 0
        self.rasters_written = 0  # writes of the map's rasters
        self.runways_written = 0  # passes of the battery runway (tests wait on it)
        self._rasters_stale: set[int] = set()  # provinces whose raster trails their engine
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
    def coverage(self) -> Coverage | None:
        """The engine of a one-province deployment; None before the first build."""
        if len(self.engines) > 1:
            raise ValueError(f"{len(self.engines)} provinces: see ``engines``")
        return next(iter(self.engines.values()), None)

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
        self, parts: dict[int, ProvinceInput], verdicts: dict[str, Verdict]
    ) -> dict[int, Coverage]:
        """``build_provinces`` on the cluster when there is one with workers, else here."""
        cfg, client = self.config, self.client
        if not parts:
            return {}
        if client is not None:
            if worker_count(client):
                try:
                    built = build_provinces(parts, cfg.coverage, verdicts, client)
                except DemError:  # read here, not on the cluster: no fallback mends the file
                    raise
                except Exception as err:  # the local engine is always right: fall back to it
                    log.warning(
                        "coverage: the Dask cluster at %s failed a rebuild (%s: %s); computing "
                        "here", cfg.dask_scheduler, type(err).__name__, err,
                    )  # fmt: skip
                else:
                    self._ran("dask", str(cfg.dask_scheduler))
                    return built
            else:
                log.warning(
                    "coverage: the Dask cluster at %s has no worker; computing here",
                    cfg.dask_scheduler,
                )
        built = build_provinces(parts, cfg.coverage, verdicts)
        self._ran("local", "local")
        return built

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
        """Build the engines of the provinces whose towers or places changed (every one the
        first time); the others only take the serving changes since the last pass."""
        t0 = time.perf_counter()
        self.fingerprints = await q.radio_fingerprints(conn)
        self.feeders = await q.feeders(conn)
        verdicts = await self._read_verdicts(conn)
        parts, self._refused = split_provinces(await q.places(conn), await q.bts_registry(conn))
        marks = {p: self._mark(part) for p, part in parts.items()}
        due = {p: part for p, part in parts.items() if self._built.get(p) != marks[p]}
        built = await asyncio.to_thread(self._build, due, verdicts)
        for gone in set(self.engines) - set(parts):
            del self.engines[gone], self._built[gone]
            self._critical.pop(gone, None)
        self.province_of = {r["device_id"]: p for p, part in parts.items() for r in part.bts}
        await self._load_measured(conn, built)
        now = self.clock()
        stored = await q.place_states(conn) if set(built) - set(self.engines) else {}
        diffs, events = await self._take(verdicts, set(self.engines) - set(built), now)
        for p, cov in built.items():
            previous = self.engines.get(p)
            if previous is None:  # first build: diff against what was stored before a restart
                cov.current = cov.evaluate()
                events += _events_against(stored, cov.current, now)
                diffs.append(({}, cov.current))
            else:
                events += cov.update(now, previous=previous)
                diffs.append((previous.current, cov.current))
            self.engines[p], self._built[p] = cov, marks[p]
            self.metrics.province_recomputed(p, "full")
        await self._write(conn, diffs, events, now)
        self.verdicts = verdicts
        self.metrics.recomputed("full", time.perf_counter() - t0)
        self._critical_stale |= set(built)
        await self._write_critical(conn)
        self._rasters_stale |= set(built)
        await self._write_rasters(conn)
        await keep_provinces(conn, sorted(self.engines))
        refused = [r for cov in self.engines.values() for r in cov.engine.rejections]
        await q.write_rejections(
            conn,
            "sector",
            [
                {"device_id": r.device_id, "sector": r.sector, "reason": r.reason, "count": 1}
                for r in refused + self._refused
            ],
            now,
        )
        for p, cov in built.items():
            log.info(
                "coverage: province %d: %d sites, %d emitters, %d refused, %d dead-spot villages"
                " (%.1f s, on %s)",
                p,
                len(cov.engine.sites),
                len(cov.engine.emitters),
                len(cov.engine.rejections),
                sum(1 for (k, _), pc in cov.current.items() if k == "village" and pc.dead_spot),
                time.perf_counter() - t0,
                self.ran_on,
            )
        if self._refused:
            log.warning("coverage: %d towers in no province loaded", len(self._refused))

    def _mark(self, part: ProvinceInput) -> str:
        """What a province's engine is built from: its places and its towers' radio."""
        radio = sorted((r["device_id"], self.fingerprints.get(r["device_id"])) for r in part.bts)
        return hashlib.md5(
            msgspec.json.encode([part.doc, radio]), usedforsecurity=False
        ).hexdigest()

    async def _refresh_states(self, conn: psycopg.AsyncConnection) -> bool:
        """Take every site's serving verdict now; recompute and write what moved."""
        t0 = time.perf_counter()
        verdicts = await self._read_verdicts(conn)
        now = self.clock()
        diffs, events = await self._take(verdicts, set(self.engines), now)
        if not diffs:
            self.verdicts = verdicts
            return False
        await self._write(conn, diffs, events, now)
        self.verdicts = verdicts  # what they caused is stored: watchers may rely on it
        self.metrics.recomputed("incremental", time.perf_counter() - t0)
        log.info(
            "coverage: %d provinces changed, %d village events (%.3f s)",
            len(diffs),
            len(events),
            time.perf_counter() - t0,
        )
        return True

    async def _take(
        self, verdicts: dict[str, Verdict], provinces: set[int], now: datetime
    ) -> tuple[list[Diff], list[CoverageEvent]]:
        """The serving changes since the last pass, each given to its province's engine among
        ``provinces``: what moved, and the village events, to write."""
        news: dict[int, dict[str, SiteState]] = {}
        for d, v in verdicts.items():
            moved = (old := self.verdicts.get(d)) is None or old.state != v.state
            if moved and (p := self.province_of.get(d)) is not None:
                news.setdefault(p, {})[d] = v.state
        unknown = frozenset(d for d, v in verdicts.items() if v.why is Why.UNKNOWN)
        diffs, events = [], []
        for p in sorted(provinces):
            cov = self.engines[p]
            mine = news.get(p, {})
            changed = (
                await asyncio.to_thread(cov.engine.apply, mine, at=now.timestamp())
                if mine
                else set()
            )
            theirs = frozenset(d for d in unknown if d in cov.engine.site_index)
            if not changed and theirs == cov.unknown_sites:
                continue
            cov.unknown_sites = theirs
            before = cov.current
            events += await asyncio.to_thread(cov.update, now, changed=changed)
            diffs.append((before, cov.current))
            self._rasters_stale.add(p)
            self._critical_stale.add(p)
            self.metrics.province_recomputed(p, "incremental")
        return diffs, events

    async def _load_measured(
        self, conn: psycopg.AsyncConnection, engines: dict[int, Coverage]
    ) -> None:
        """The recent probe samples binned on these engines' grids, each sample on every
        province's grid that holds it; one that no grid holds (or that has no position) goes to
        the first province, so that each refusal is counted once."""
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
        every = {**self.engines, **engines}
        shares = _samples_by_province(samples, every)
        for p, cov in engines.items():
            engine = cov.engine
            mine = [samples[i] for i in shares[p]]
            cov.measured = bin_samples(mine, engine.grid, engine.layers, engine.config, now)
        rejected = sum((c.measured.rejected for c in every.values() if c.measured), Counter())
        if rejected != self.probe_rejected:
            self.probe_rejected = rejected
            await q.write_rejections(
                conn,
                "probe",
                [
                    {"device_id": "", "sector": None, "reason": k, "count": v}
                    for k, v in sorted(rejected.items())
                ],
                now,
            )

    async def _refresh_measured(self, conn: Any) -> None:
        await self._load_measured(conn, self.engines)
        now = self.clock()
        diffs, events = [], []
        for cov in self.engines.values():
            before = cov.current
            events += cov.update(now)
            diffs.append((before, cov.current))
        await self._write(conn, diffs, events, now)

    async def _write(
        self, conn: Any, diffs: list[Diff], events: list[CoverageEvent], now: datetime
    ) -> None:
        """Places whose verdict or levels moved; a history row where the verdict did; every
        province in one transaction."""
        moved = [pc for before, after in diffs for k, pc in after.items() if before.get(k) != pc]
        history = [
            place_row(pc, now)
            for before, after in diffs
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
        every = {k: pc for cov in self.engines.values() for k, pc in cov.current.items()}
        self.metrics.written(every, events)

    def _raster_due(self) -> float:
        """Monotonic time the map's rasters are to be rewritten; inf when they are current."""
        if not self._rasters_stale:
            return math.inf
        return self._rasters_at + self.config.raster_every_s

    async def _write_rasters(self, conn: psycopg.AsyncConnection) -> None:
        """The rasters of the provinces whose engine moved since they were written."""
        t0 = time.perf_counter()
        size = 0
        for p in sorted(self._rasters_stale & set(self.engines)):
            rasters = await asyncio.to_thread(
                operator_rasters, self.engines[p].engine, self.clock()
            )
            await write_rasters(conn, rasters, province=p)
            size += sum(len(r.levels) for r in rasters)
        self._rasters_stale.clear()
        self._rasters_at = time.monotonic()
        self.rasters_written += 1
        log.debug("coverage: rasters written, %d bytes (%.3f s)", size, time.perf_counter() - t0)

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
        # Copies: a wake's update may be changing ``covering`` in its worker thread, and a
        # rebuild the engines.
        places = [
            forecast
            for cov in list(self.engines.values())
            for forecast in forecast_places(cov.places, dict(cov.covering), sites)
        ]
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
        """N-1 of the provinces that changed (the others' kept), and who serves whom."""
        for p in sorted(self._critical_stale & set(self.engines)):
            self._critical[p] = [
                {
                    "device_id": c.device_id,
                    "operator": c.operator.value,
                    "population_all": c.population_all,
                    "villages_all": c.villages_all,
                    "population_operator": c.population_operator,
                    "villages_operator": c.villages_operator,
                }
                for c in await asyncio.to_thread(self.engines[p].criticality)
            ]
        self._critical_stale.clear()
        rows = [r for p in sorted(self.engines) for r in self._critical.get(p, [])]
        pairs = {pair for cov in self.engines.values() for pair in serving_pairs(cov)}
        now = self.clock()
        async with conn.transaction():  # N-1 and who serves whom: one picture for the dashboard
            await q.write_critical(conn, rows, now)
            await q.write_place_towers(conn, pairs, now)


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


def _samples_by_province(
    samples: list[ProbeSample], engines: dict[int, Coverage]
) -> dict[int, list[int]]:
    """Province → the indices of the samples its engine bins (see ``_load_measured``)."""
    lat = np.array([s.lat for s in samples], np.float64)
    lon = np.array([s.lon for s in samples], np.float64)
    placed = np.isfinite(lat) & np.isfinite(lon)
    held = np.zeros(len(samples), bool)
    inside = {}
    for p, cov in engines.items():
        _, _, on_grid = cov.engine.grid.cell_of(
            np.where(placed, lat, 0.0), np.where(placed, lon, 0.0)
        )
        inside[p] = placed & on_grid
        held |= inside[p]
    first = min(engines, default=None)
    return {
        p: np.flatnonzero(inside[p] | (~held if p == first else False)).tolist() for p in engines
    }


def _dask_client(address: str, timeout_s: float) -> Client:
    from distributed import Client

    return Client(address, timeout=timeout_s, set_as_default=False)  # type: ignore[no-untyped-call]


async def run_coverage(config: CoverageServiceConfig, *, stop: asyncio.Event | None = None) -> None:
    await CoverageService(config).run(stop)
