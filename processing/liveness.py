"""Device liveness: offline on the will or a reported ``offline`` (written by the ingester as it
arrives), or after ``missed_intervals`` reporting intervals of silence (decided here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from store.db import aconnect
from store.liveness import apply_liveness

log = logging.getLogger("ioc.processing")


@dataclass(frozen=True, slots=True, kw_only=True)
class LivenessConfig:
    # Built by the ioc shell from its settings tree (ioc/settings.py holds the defaults).
    database_url: str
    missed_intervals: int
    # An accelerated fleet reports every second; a batch stalled for longer than three of
    # those is an ingest hiccup, not three missed reports.
    min_silence_s: float
    check_every_s: float


def utc_now() -> datetime:
    return datetime.now(UTC)


async def run_liveness(
    config: LivenessConfig,
    *,
    clock: Callable[[], datetime] = utc_now,
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    conn = await aconnect(config.database_url)
    try:
        while not stop.is_set():
            silent, resumed = await apply_liveness(
                conn, clock(), config.missed_intervals, config.min_silence_s
            )
            if silent or resumed:
                log.info("liveness: %d went silent, %d resumed", len(silent), len(resumed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.check_every_s)
    finally:
        await conn.close()
