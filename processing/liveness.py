"""Device liveness: offline on the will or a reported ``offline`` (written by the ingester as it
arrives), or after ``missed_intervals`` reporting intervals of silence (decided here).

``/metrics`` (when ``metrics_port`` is set): sweeps, their duration, devices gone silent or
resumed, and devices by kind and state (read from the database at each scrape). ``/health``:
503 once no sweep has passed for ``stale_after_s`` (a stuck database) or the loop ended.
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
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devices.service_http import HealthAnswer, Heartbeat, Served
from store.db import StoreUnavailable, aconnect
from store.gauges import ScrapedFigures, devices_by_state
from store.liveness import apply_liveness

log = logging.getLogger("ioc.processing")
# After a lost database: a passing fault costs a second, a long outage is not hammered.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LivenessConfig:
    # Built by the ioc shell from its settings tree (ioc/settings.py holds the defaults).
    database_url: str
    missed_intervals: int
    # An accelerated fleet reports every second; a batch stalled for longer than three of
    # those is an ingest hiccup, not three missed reports.
    min_silence_s: float
    check_every_s: float
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # /metrics and /health; None: not served
    stale_after_s: float = 30.0  # no sweep for this long: /health answers 503


class LivenessMetrics:
    def __init__(self, config: LivenessConfig) -> None:
        r = self.registry = CollectorRegistry()
        self.sweeps = Counter("ioc_liveness_sweeps", "liveness sweeps done", registry=r)
        self.sweep_seconds = Histogram(
            "ioc_liveness_sweep_seconds",
            "time of one sweep (read, decide, write)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.silent = Counter(
            "ioc_liveness_went_silent", "devices marked offline for silence", registry=r
        )
        self.resumed = Counter(
            "ioc_liveness_resumed", "silent devices heard from again", registry=r
        )
        self.last_sweep = Gauge(
            "ioc_liveness_last_sweep_timestamp_seconds", "when a sweep last finished", registry=r
        )
        r.register(ScrapedFigures(config.database_url, "ioc_liveness", devices_by_state))
        self.heartbeat = Heartbeat(config.stale_after_s)

    def health(self) -> HealthAnswer:
        return self.heartbeat.answer(service="processing")


def utc_now() -> datetime:
    return datetime.now(UTC)


async def run_liveness(
    config: LivenessConfig,
    *,
    clock: Callable[[], datetime] = utc_now,
    stop: asyncio.Event | None = None,
    metrics: LivenessMetrics | None = None,
) -> None:
    """Sweep every ``check_every_s`` until ``stop``. A lost database is waited for (retried
    with a doubling pause), /health saying so meanwhile, rather than ending the service."""
    stop = stop or asyncio.Event()
    m = metrics or LivenessMetrics(config)
    served = Served()
    served.start(
        config.metrics_address, config.metrics_port, m.registry, m.health, name="processing-http"
    )
    backoff = RETRY_FIRST_S
    try:
        while not stop.is_set():
            try:
                await _sweep_until(config, clock, stop, m)
            except (psycopg.OperationalError, StoreUnavailable) as err:
                m.heartbeat.ended(f"database unavailable: {err}")
                log.warning("liveness: database lost (%s); retrying in %.1f s", err, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(RETRY_MAX_S, backoff * 2)
            else:
                backoff = RETRY_FIRST_S
    except BaseException as err:
        m.heartbeat.ended(f"liveness loop ended: {type(err).__name__}")
        raise
    finally:
        served.stop()


async def _sweep_until(
    config: LivenessConfig,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    m: LivenessMetrics,
) -> None:
    conn = await aconnect(config.database_url)
    try:
        while not stop.is_set():
            t0 = time.perf_counter()
            silent, resumed = await apply_liveness(
                conn, clock(), config.missed_intervals, config.min_silence_s
            )
            m.sweep_seconds.observe(time.perf_counter() - t0)
            m.sweeps.inc()
            m.silent.inc(len(silent))
            m.resumed.inc(len(resumed))
            m.last_sweep.set_to_current_time()
            m.heartbeat.beat()
            if silent or resumed:
                log.info("liveness: %d went silent, %d resumed", len(silent), len(resumed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.check_every_s)
    finally:
        await conn.close()
