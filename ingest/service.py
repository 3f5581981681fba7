"""MQTT → database: decode, validate, batch, commit, and only then acknowledge.

A message is acknowledged to the broker after the transaction holding it has committed, so a
crash at any point leaves unacknowledged messages with the broker's persistent session, and the
idempotent writer makes their redelivery harmless: at least once on the wire, exactly once on
disk. While the database is slow or down nothing is acknowledged, the broker stops sending
once the receive window is full, and the batch is retried with backoff until it commits.

The pieces, in a message's order: ``receiver`` (the MQTT session and the bounded buffer),
``batch`` (each message decoded once, carried with its outcome), ``commit`` (concurrent
commits, registry checks, the split of a refused batch), ``link`` (one database connection
with backoff), ``observe`` (counters, /metrics and /health). This module runs them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import psycopg

from devices.codec import Codec
from devices.topics import Topics
from ingest.batch import BatchDecoder, Message
from ingest.commit import Committer
from ingest.config import IngestConfig
from ingest.link import DatabaseGaveUp
from ingest.observe import IngestMetrics, IngestStats, serve_http
from ingest.receiver import Receiver
from store.db import StoreUnavailable, aconnect
from store.registry import known_device_ids
from store.writer import prune_rejects

__all__ = ["IngestStats", "Ingester"]

log = logging.getLogger("ioc.ingest")
PROGRESS_EVERY_S = 30.0
PRUNE_EVERY_S = 3600.0
STOP_GRACE_S = 15.0  # on SIGTERM, how long to keep trying to commit what is held


class Ingester:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.stats = IngestStats()
        self.metrics = IngestMetrics()
        known: set[str] = set()
        topics = Topics(config.topic_root)
        self.codec = Codec(
            topics,
            max_payload_bytes=config.max_payload_bytes,
            max_future=timedelta(seconds=config.max_future_s),
            max_age=timedelta(seconds=config.max_age_s),
            max_topic_chars=config.max_topic_chars,
            is_known=known.__contains__,
            self_register=config.self_register,
        )
        self.decoder = BatchDecoder(self.codec, known)
        subscription = (
            topics.shared_everything(config.share_group)
            if config.shared_subscription
            else topics.everything()
        )
        self.receiver = Receiver(config, subscription)
        self.subscribed = self.receiver.subscribed
        self.committer = Committer(config, self.decoder, self.receiver, self.stats, self.metrics)
        self._stop = asyncio.Event()
        m = self.metrics
        m.inflight.set_function(lambda: self.receiver.held + self.in_hand)
        m.lag.set_function(self.lag_s)
        m.broker_up.set_function(lambda: float(self.receiver.connected))
        m.database_up.set_function(lambda: float(self.database_up))

    # -- control -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM: finish the batch in hand, commit and ack what is held, then return."""
        if not self._stop.is_set():
            log.info("stopping: draining what is held")
            self.committer.give_up_at(time.monotonic() + STOP_GRACE_S)
            self._stop.set()

    @property
    def database_up(self) -> bool:
        return self.committer.database_up

    @property
    def in_hand(self) -> int:
        """Messages taken from the broker whose batch has not committed yet."""
        return self.committer.in_hand

    def lag_s(self) -> float:
        """Age of the oldest message taken from the broker and not yet committed."""
        oldest = self.committer.oldest()
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
                "decode": round(self.decoder.seconds, 3),
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
        committer = self.committer
        try:
            self.decoder.known.update(await committer.links[0].run(known_device_ids))
            while not self._stop.is_set():
                messages = await self._next_batch()
                if messages:
                    await committer.dispatch(messages)
            await committer.settle()
            # Every batch in hand is committed; take what is held, commit it, ack it.
            self.receiver.close_intake()
            while held := self.receiver.take_now(self.config.batch_size):
                await committer.dispatch(held)
            await committer.settle()
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
            await committer.close()
            await self.receiver.stop()
            if server is not None:
                server.shutdown()

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
                h["received"],
                h["stored"],
                sum(h["rejected"].values()),
                h["lag_s"],
                extra={k: v for k, v in h.items() if k != "rejected"},
            )
