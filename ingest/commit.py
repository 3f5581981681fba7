"""Batches to the database: commit, and only then acknowledge.

Up to ``writers`` batches commit at once, each on its own connection, so the database works on
one batch while the next is decoded and copied: readings are idempotent and carry their own
timestamps, so the order in which two batches commit does not matter to them. Registry and
status changes do depend on order, so a batch holding any runs alone, after every batch taken
before it has committed and before any later one starts.

A batch the database refuses for its data (not for being down) is halved until the one
message it refuses is found and stored as a reject, so that message cannot stall the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

import psycopg

from devices.codec import Decoded, MetaRecord, Record, Rejection, RejectReason
from devices.kinds import Kind
from devices.plausible import implausible_change
from ingest.batch import BatchDecoder, InHand, Message
from ingest.config import IngestConfig
from ingest.link import DatabaseLink
from ingest.observe import IngestMetrics, IngestStats
from ingest.receiver import Receiver
from store.registry import merged_birth, registered_births
from store.writer import WriteResult, registered_among, write_batch

log = logging.getLogger("ioc.ingest")
# Errors that say "this data", not "this database".
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)


class Committer:
    def __init__(
        self,
        config: IngestConfig,
        decoder: BatchDecoder,
        receiver: Receiver,
        stats: IngestStats,
        metrics: IngestMetrics,
    ) -> None:
        self.decoder = decoder
        self.receiver = receiver
        self.stats = stats
        self.metrics = metrics
        self.links = [DatabaseLink(config.database_url, metrics) for _ in range(config.writers)]
        self._idle_links: asyncio.Queue[DatabaseLink] = asyncio.Queue()
        for link in self.links:
            self._idle_links.put_nowait(link)
        self._committing: set[asyncio.Task[None]] = set()
        # First message and size of each batch taken and not yet committed: lag and in-flight.
        self._in_commit: dict[int, tuple[float, int]] = {}

    @property
    def database_up(self) -> bool:
        """The last attempt on each connection tried so far succeeded."""
        return self.links[0].up is True and all(link.up is not False for link in self.links)

    @property
    def in_hand(self) -> int:
        """Messages taken from the broker whose batch has not committed yet."""
        return sum(n for _, n in self._in_commit.values())

    def oldest(self) -> float | None:
        """When the oldest message taken and not yet committed was read (monotonic)."""
        return min((t for t, _ in self._in_commit.values()), default=None)

    def give_up_at(self, deadline: float) -> None:
        for link in self.links:
            link.give_up_at = deadline

    async def dispatch(self, messages: list[Message]) -> None:
        """Start committing a batch; return once it may be followed by the next one."""
        key = id(messages)
        self._in_commit[key] = (messages[0].received, len(messages))
        in_hand = self.decoder.take(messages, datetime.now(UTC))
        ordered = bool(in_hand.rows.metas or in_hand.rows.statuses)
        if ordered:
            await self.settle()
        link = await self._idle_links.get()
        task = asyncio.create_task(self._store_on(link, in_hand, key))
        self._committing.add(task)  # until _raise_failures has looked at how it ended
        if ordered:
            await self.settle()
        else:
            self._raise_failures()

    async def settle(self) -> None:
        """Wait until every batch being committed has committed (or failed: raise that)."""
        if self._committing:
            await asyncio.wait(set(self._committing))
        self._raise_failures()

    async def close(self) -> None:
        for task in self._committing:
            task.cancel()
        await asyncio.gather(*self._committing, return_exceptions=True)
        for link in self.links:
            await link.close()

    def _raise_failures(self) -> None:
        for task in [t for t in self._committing if t.done()]:
            self._committing.discard(task)
            task.result()

    async def _store_on(self, link: DatabaseLink, in_hand: InHand, key: int) -> None:
        try:
            await self._store(link, in_hand)
        finally:
            self._in_commit.pop(key, None)
            self._idle_links.put_nowait(link)

    async def _store(self, link: DatabaseLink, in_hand: InHand) -> None:
        started = time.perf_counter()
        try:
            stored, result = await link.run(lambda conn: self._commit(conn, in_hand))
        except _REFUSED as err:
            await self._split(link, in_hand, err)
            return
        self._account(stored, result, time.perf_counter() - started)

    async def _commit(
        self, conn: psycopg.AsyncConnection, in_hand: InHand
    ) -> tuple[InHand, WriteResult]:
        # Another ingester of the group may have registered them since we last looked.
        unknown = in_hand.unknown_devices()
        if unknown and (found := await registered_among(conn, unknown)):
            in_hand = self.decoder.admit(in_hand, found)
        in_hand = await refuse_implausible(conn, in_hand)
        started = time.perf_counter()
        result = await write_batch(conn, in_hand.rows)
        self.stats.write_s += time.perf_counter() - started
        return in_hand, result

    async def _split(self, link: DatabaseLink, in_hand: InHand, err: psycopg.Error) -> None:
        if len(in_hand) > 1:
            for part in in_hand.halves():
                await self._store(link, part)
            return
        (message,) = in_hand.messages
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("database refused the message on %s: %s", message.topic, first)
        rejection = Rejection(RejectReason.SCHEMA, f"database refused it: {first}",
                              message.topic, message.payload)  # fmt: skip
        refused = InHand([replace(message, outcome=Decoded(rejections=[rejection]))],
                         datetime.now(UTC))  # fmt: skip
        started = time.perf_counter()
        result = await link.run(lambda conn: write_batch(conn, refused.rows))
        self._account(refused, result, time.perf_counter() - started)

    def _account(self, in_hand: InHand, result: WriteResult, seconds: float) -> None:
        started = time.perf_counter()
        acked = self.receiver.ack(in_hand.messages)
        self.stats.ack_s += time.perf_counter() - started
        self.stats.count(in_hand.rows, result)
        self.metrics.count(in_hand.rows, result, acked, seconds)


async def refuse_implausible(conn: psycopg.AsyncConnection, in_hand: InHand) -> InHand:
    """A base station's birth record that moves, re-powers or re-owns the site beyond a field
    change (``devices.plausible``) is rejected, not registered: it would redraw coverage on one
    device's word."""
    births: dict[int, MetaRecord] = {}
    for i, message in enumerate(in_hand.messages):
        record = message.record
        if isinstance(record, MetaRecord) and record.source.kind is Kind.BTS:
            births[i] = record
    if not births:
        return in_hand
    registered = await registered_births(
        conn, Kind.BTS, [m.source.device_id for m in births.values()]
    )
    outcomes: dict[int, Record | Decoded] = {}
    for i, meta in births.items():
        device_id = meta.source.device_id
        old = registered.get(device_id)
        why = implausible_change(old, merged_birth(old, meta.document)) if old is not None else None
        if why is None:
            continue
        log.warning("birth record of %s refused: %s", device_id, why)
        message = in_hand.messages[i]
        detail = f"implausible change of its registered birth record: {why}"
        rejection = Rejection(RejectReason.OUT_OF_RANGE, detail, message.topic, message.payload,
                              device_id)  # fmt: skip
        outcomes[i] = Decoded(rejections=[rejection])
    return in_hand.with_outcomes(outcomes) if outcomes else in_hand
