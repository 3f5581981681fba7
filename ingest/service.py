"""MQTT → database: decode, validate, batch, commit, and only then acknowledge.

A message is acknowledged to the broker after the transaction holding it has committed, so a
crash at any point leaves unacknowledged messages with the broker's persistent session, and the
idempotent writer makes their redelivery harmless: at least once on the wire, exactly once on
disk. While the database is slow or down nothing is acknowledged, the broker stops sending
once the receive window is full, and the batch is retried with backoff until it commits.

Up to ``writers`` batches commit at once, each on its own connection, so the database works on
one batch while the next is decoded and copied: readings are idempotent and carry their own
timestamps, so the order in which two batches commit does not matter to them. Registry and
status changes do depend on order, so a batch holding any runs alone, after every batch taken
before it has committed and before any later one starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg

from devices.codec import Codec, MetaRecord, Readings, Rejection, RejectReason, StatusRecord
from devices.kinds import Channel, Kind
from devices.plausible import implausible_change
from devices.topics import Topics
from ingest.config import IngestConfig
from ingest.observe import IngestMetrics, serve_http
from ingest.receiver import Message, Receiver
from store.db import StoreUnavailable, aconnect
from store.registry import known_device_ids
from store.registry import merged_birth, registered_births
from store.writer import (
    TRANSIENT_ERRORS,
    Batch,
    WriteResult,
    prune_rejects,
    registered_among,
    write_batch,
)

log = logging.getLogger("ioc.ingest")
T = TypeVar("T")
RETRY_MAX_S = 30.0
PROGRESS_EVERY_S = 30.0
PRUNE_EVERY_S = 3600.0
# Errors that say "this data", not "this database": the batch is split until the one message
# the database refuses is found and stored as a reject, so it cannot stall the consumer.
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    outbound: int = 0  # the service's own alert and command topics, seen and passed by
    stored: int = 0
    acked: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    state_changes: int = 0
    fallbacks: int = 0
    # Where the time goes (seconds on the event loop): decode and validate, write (COPY and
    # commit, waiting on the database included), acknowledge; receiving is the receiver's.
    decode_s: float = 0.0
    write_s: float = 0.0
    ack_s: float = 0.0


class DatabaseGaveUp(RuntimeError):
    """Stopping, and the database did not come back within the grace period."""


class Ingester:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.stats = IngestStats()
        self.metrics = IngestMetrics()
        self._known: set[str] = set()
        self.codec = Codec(
            Topics(config.topic_root),
            max_payload_bytes=config.max_payload_bytes,
            max_future=timedelta(seconds=config.max_future_s),
            max_age=timedelta(seconds=config.max_age_s),
            max_topic_chars=config.max_topic_chars,
            is_known=self._known.__contains__,
            self_register=config.self_register,
        )
        topics = Topics(config.topic_root)
        subscription = (
            topics.shared_everything(config.share_group)
            if config.shared_subscription
            else topics.everything()
        )
        self.receiver = Receiver(config, subscription)
        self.subscribed = self.receiver.subscribed
        self.links = [
            DatabaseLink(config.database_url, self.metrics) for _ in range(config.writers)
        ]
        self._idle_links: asyncio.Queue[DatabaseLink] = asyncio.Queue()
        for link in self.links:
            self._idle_links.put_nowait(link)
        self._committing: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._give_up_at: float | None = None
        m = self.metrics
        m.inflight.set_function(lambda: self.receiver.held + self.in_hand)
        m.lag.set_function(self.lag_s)
        m.broker_up.set_function(lambda: float(self.receiver.connected))
        m.database_up.set_function(lambda: float(self.database_up))
        # First message and size of each batch taken and not yet committed: lag and in-flight.
        self._in_commit: dict[int, tuple[float, int]] = {}

    # -- control -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM: finish the batch in hand, commit and ack what is held, then return."""
        if not self._stop.is_set():
            log.info("stopping: draining what is held")
            self._give_up_at = time.monotonic() + self.config.stop_grace_s
            for link in self.links:
                link.give_up_at = self._give_up_at
            self._stop.set()

    @property
    def database_up(self) -> bool:
        """The last attempt on each connection tried so far succeeded."""
        return self.links[0].up is True and all(link.up is not False for link in self.links)

    @property
    def in_hand(self) -> int:
        """Messages taken from the broker whose batch has not committed yet."""
        return sum(n for _, n in self._in_commit.values())

    def lag_s(self) -> float:
        """Age of the oldest message taken from the broker and not yet committed."""
        oldest = min((t for t, _ in self._in_commit.values()), default=None)
        pending = time.monotonic() - oldest if oldest is not None else 0.0
        return max(pending, self.receiver.oldest_age_s())

    def health(self) -> dict[str, Any]:
        lag = self.lag_s()
        limit = max(5.0, 10 * self.config.batch_age_s)
        return {
            "client_id": self.config.client_id,
            "keeping_up": self.receiver.connected and self.database_up and lag < limit,
            "broker_connected": self.receiver.connected,
            "database_up": self.database_up,
            "lag_s": round(lag, 3),
            "lag_limit_s": limit,
            "held": self.receiver.held,
            "inflight": self.receiver.held + self.in_hand,
            "held_max": self.receiver.held_max,
            "window": self.config.window,
            "bytes_in_hand": self.receiver.bytes_in_hand,
            "bytes_max": self.receiver.bytes_max,
            "window_bytes": self.config.window_bytes,
            "received": self.stats.received,
            "outbound": self.stats.outbound,
            "stored": self.stats.stored,
            "acked": self.stats.acked,
            "duplicates": self.stats.duplicates,
            "rejected": dict(self.stats.rejected),
            "batches": self.stats.batches,
            "profile_s": {
                "receive": round(self.receiver.receive_s, 3),
                "decode": round(self.stats.decode_s, 3),
                "write": round(self.stats.write_s, 3),
                "ack": round(self.stats.ack_s, 3),
            },
        }

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        server = None
        if self.config.metrics_port is not None:
            try:
                server = serve_http(
                    self.config.metrics_address, self.config.metrics_port, self.metrics, self.health
                )
                log.info("metrics on http://%s:%d/metrics", *server.server_address[:2])
            except OSError as err:
                log.warning("metrics port %d not served: %s", self.config.metrics_port, err)
        self.receiver.start()
        progress = asyncio.create_task(self._progress())
        prune = asyncio.create_task(self._prune())
        try:
            self._known.update(await self.links[0].run(known_device_ids))
            while not self._stop.is_set():
                messages = await self._next_batch()
                if messages:
                    await self._dispatch(messages)
            await self._settle()
            # Every batch in hand is committed; take what is held, commit it, ack it.
            self.receiver.close_intake()
            while held := self.receiver.take_now(self.config.batch_size):
                await self._dispatch(held)
            await self._settle()
            log.info("stopped: every message taken is committed and acknowledged")
        except DatabaseGaveUp:
            log.warning(
                "stopped with the database unavailable: %d messages left unacknowledged "
                "with the broker, which redelivers them",
                self.receiver.held + self.in_hand,
            )
        finally:
            progress.cancel()
            prune.cancel()
            for task in self._committing:
                task.cancel()
            await asyncio.gather(*self._committing, return_exceptions=True)
            await self.receiver.stop()
            for link in self.links:
                await link.close()
            if server is not None:
                server.shutdown()

    async def _dispatch(self, messages: list[Message]) -> None:
        """Start committing a batch; return once it may be followed by the next one."""
        self._in_commit[id(messages)] = (messages[0].received, len(messages))
        now = datetime.now(UTC)
        started = time.perf_counter()
        batch = self._decode(messages, now)
        self.stats.decode_s += time.perf_counter() - started
        ordered = bool(batch.metas or batch.statuses)
        if ordered:
            await self._settle()
        link = await self._idle_links.get()
        task = asyncio.create_task(self._store_on(link, messages, batch, now))
        self._committing.add(task)  # until _raise_failures has looked at how it ended
        if ordered:
            await self._settle()
        else:
            self._raise_failures()

    async def _store_on(
        self, link: DatabaseLink, messages: list[Message], batch: Batch, now: datetime
    ) -> None:
        try:
            await self._store(link, messages, batch, now)
        finally:
            self._in_commit.pop(id(messages), None)
            self._idle_links.put_nowait(link)

    async def _settle(self) -> None:
        """Wait until every batch being committed has committed (or failed: raise that)."""
        if self._committing:
            await asyncio.wait(set(self._committing))
        self._raise_failures()

    def _raise_failures(self) -> None:
        for task in [t for t in self._committing if t.done()]:
            self._committing.discard(task)
            task.result()

    async def _next_batch(self) -> list[Message]:
        take = asyncio.ensure_future(
            self.receiver.take(self.config.batch_size, self.config.batch_age_s)
        )
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({take, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not take.done():
                take.cancel()
        return take.result() if take in done else []

    def _decode(self, messages: list[Message], now: datetime) -> Batch:
        batch = Batch(messages=len(messages))
        decode, readings = self.codec.decode, batch.readings
        for message in messages:
            decoded = decode(message.topic, message.payload, now, retained=message.retain)
            record = decoded.record
            if isinstance(record, Readings):
                readings[record.source.kind].extend(record.items)
            elif isinstance(record, MetaRecord):
                self._known.add(record.source.device_id)
                batch.metas.append(record)
            elif isinstance(record, StatusRecord):
                batch.statuses.append(record)
            if decoded.rejections:
                batch.rejections.extend((now, r) for r in decoded.rejections)
            batch.outbound += decoded.outbound
        return batch

    async def _commit(
        self, conn: psycopg.AsyncConnection, messages: list[Message], batch: Batch, now: datetime
    ) -> tuple[Batch, WriteResult]:
        unknown = sorted(
            {r.device_id for _, r in batch.rejections
             if r.reason is RejectReason.UNKNOWN_DEVICE and r.device_id is not None}
        )
        # Another ingester of the group may have registered them since we last looked.
        if unknown and (found := await registered_among(conn, unknown)):
            self._known.update(found)
            started = time.perf_counter()
            batch = self._decode(messages, now)
            self.stats.decode_s += time.perf_counter() - started
        batch = await self._refuse_implausible(conn, messages, batch, now)
        started = time.perf_counter()
        result = await write_batch(conn, batch, mode=self.config.write_mode)
        self.stats.write_s += time.perf_counter() - started
        return batch, result

    async def _refuse_implausible(
        self, conn: psycopg.AsyncConnection, messages: list[Message], batch: Batch, now: datetime
    ) -> Batch:
        """A base station's birth record that moves, re-powers or re-owns the site beyond a
        field change (``devices.plausible``) is rejected, not registered: it would redraw
        coverage on one device's word."""
        births = [m for m in batch.metas if m.source.kind is Kind.BTS]
        if not births:
            return batch
        registered = await registered_births(conn, Kind.BTS, [m.source.device_id for m in births])
        refused = {
            id(m): why
            for m in births
            if (old := registered.get(m.source.device_id)) is not None
            and (why := implausible_change(old, merged_birth(old, m.document))) is not None
        }
        if not refused:
            return batch
        payloads = {message.topic: message.payload for message in messages}
        kept = replace(batch, metas=[m for m in batch.metas if id(m) not in refused])
        kept.rejections = list(batch.rejections)
        for m in batch.metas:
            if (why := refused.get(id(m))) is None:
                continue
            topic = self.codec.topics.device(Kind.BTS, m.source.device_id, Channel.META)
            log.warning("birth record of %s refused: %s", m.source.device_id, why)
            detail = f"implausible change of its registered birth record: {why}"
            rejection = Rejection(RejectReason.OUT_OF_RANGE, detail, topic,
                                  payloads.get(topic, b""), m.source.device_id)  # fmt: skip
            kept.rejections.append((now, rejection))
        return kept

    async def _store(
        self, link: DatabaseLink, messages: list[Message], batch: Batch, now: datetime
    ) -> None:
        started = time.perf_counter()
        try:
            batch, result = await link.run(lambda conn: self._commit(conn, messages, batch, now))
        except _REFUSED as err:
            await self._split(link, messages, err, now)
            return
        self._account(messages, batch, result, time.perf_counter() - started)

    async def _split(
        self, link: DatabaseLink, messages: list[Message], err: psycopg.Error, now: datetime
    ) -> None:
        if len(messages) > 1:
            half = len(messages) // 2
            for part in (messages[:half], messages[half:]):
                await self._store(link, part, self._decode(part, now), now)
            return
        (message,) = messages
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("database refused the message on %s: %s", message.topic, first)
        refused = Batch(messages=1)
        refused.rejections.append(
            (
                datetime.now(UTC),
                Rejection(RejectReason.SCHEMA, f"database refused it: {first}", message.topic,
                          message.payload),
            )
        )
        started = time.perf_counter()
        result = await link.run(lambda conn: write_batch(conn, refused))
        self._account(messages, refused, result, time.perf_counter() - started)

    def _account(
        self, messages: list[Message], batch: Batch, result: WriteResult, seconds: float
    ) -> None:
        started = time.perf_counter()
        acked = self.receiver.ack(messages)
        self.stats.ack_s += time.perf_counter() - started
        s, m = self.stats, self.metrics
        s.received += len(messages)
        s.outbound += batch.outbound
        s.acked += len(messages)  # counted as settled even when a reconnect voided the PUBACK
        s.stored += result.stored
        s.duplicates += result.duplicates
        s.state_changes += result.state_changes
        s.fallbacks += result.fallbacks
        s.batches += 1
        m.received.inc(len(messages))
        m.acked.inc(acked)
        m.stored.inc(result.stored)
        m.duplicates.inc(result.duplicates)
        m.fallbacks.inc(result.fallbacks)
        m.batch_messages.observe(len(messages))
        m.commit_seconds.observe(seconds)
        m.last_commit.set_to_current_time()
        for _, rejection in batch.rejections:
            s.rejected[rejection.reason.value] += 1
            m.rejected.labels(rejection.reason.value).inc()

    async def _prune(self) -> None:
        """Rejects past their retention go (plain PostgreSQL; TimescaleDB has a policy)."""
        while True:
            try:
                async with await aconnect(self.config.database_url) as conn:
                    while (gone := await prune_rejects(conn)) > 0:
                        log.info("pruned %d rejects past their retention", gone)
            except (psycopg.Error, StoreUnavailable) as err:
                log.warning("rejects not pruned this time: %s", err)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            h = self.health()
            log.info(
                "progress: %d received, %d stored, %d rejected, lag %.1fs",
                h["received"], h["stored"], sum(h["rejected"].values()), h["lag_s"],
                extra={k: v for k, v in h.items() if k != "rejected"},
            )


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
