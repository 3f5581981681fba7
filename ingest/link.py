"""One database connection of the ingester, reopened with backoff: a batch is retried, never
dropped, until it commits or a stopping ingester's grace runs out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg

from ingest.observe import IngestMetrics
from store.db import StoreUnavailable, aconnect
from store.writer import TRANSIENT_ERRORS

log = logging.getLogger("ioc.ingest")
T = TypeVar("T")
RETRY_MAX_S = 30.0


class DatabaseGaveUp(RuntimeError):
    """Stopping, and the database did not come back within the grace period."""


class DatabaseLink:
    """One async connection, reopened with backoff; the batch is retried, never dropped."""

    def __init__(self, url: str, metrics: IngestMetrics | None = None) -> None:
        self.url = url
        self.metrics = metrics
        self.up: bool | None = None  # None until the first attempt
        self.give_up_at: float | None = None
        self._conn: psycopg.AsyncConnection | None = None

    async def connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await aconnect(self.url)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def run(self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        backoff = 0.2
        while True:
            try:
                result = await work(await self.connection())
                self.up = True
                return result
            except TRANSIENT_ERRORS as err:
                log.info("batch met another writer (%s); retrying", type(err).__name__)
                wait = 0.0
            except (psycopg.OperationalError, psycopg.InterfaceError, StoreUnavailable) as err:
                self.up = False
                first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                log.warning("database unavailable (%s); retrying in %.1fs", first, backoff)
                await self.close()
                wait, backoff = backoff, min(RETRY_MAX_S, backoff * 2)
            if self.metrics is not None:
                self.metrics.retries.inc()
            if self.give_up_at is not None:
                left = self.give_up_at - time.monotonic()
                if left <= 0:
                    raise DatabaseGaveUp
                wait = min(wait, left)
            await asyncio.sleep(wait)
