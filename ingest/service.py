"""MQTT → database: decode, validate, batch, commit, and only then acknowledge.

A message is acknowledged to the broker after the transaction holding it has committed
(paho's manual acknowledgement under aiomqtt), so a crash at any point leaves unacknowledged
messages with the broker's persistent session, and the idempotent writer makes their
redelivery harmless: at least once on the wire, exactly once on disk.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.codec import Codec, MetaRecord, Readings, StatusRecord
from devices.endpoint import MqttEndpoint
from devices.topics import Topics
from ingest.config import IngestConfig
from store.db import StoreUnavailable, aconnect
from store.queries import known_device_ids
from store.writer import Batch, write_batch

log = logging.getLogger("ioc.ingest")
RETRY_MAX_S = 30.0


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    state_changes: int = 0


class Ingester:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.stats = IngestStats()
        self._known: set[str] = set()
        self.codec = Codec(
            Topics(config.topic_root),
            max_payload_bytes=config.max_payload_bytes,
            max_future=timedelta(seconds=config.max_future_s),
            is_known=self._known.__contains__,
        )
        self._queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(maxsize=config.batch_size * 2)
        self.subscribed = asyncio.Event()

    def add_to_batch(self, batch: Batch, topic: str, payload: bytes, now: datetime) -> None:
        decoded = self.codec.decode(topic, payload, now)
        record = decoded.record
        if isinstance(record, Readings):
            batch.readings[record.source.kind].extend(record.items)
        elif isinstance(record, MetaRecord):
            self._known.add(record.source.device_id)
            batch.metas.append(record)
        elif isinstance(record, StatusRecord):
            batch.statuses.append(record)
        batch.rejections.extend((now, r) for r in decoded.rejections)
        batch.messages += 1

    async def _next_batch(self) -> list[aiomqtt.Message]:
        loop = asyncio.get_running_loop()
        messages = [await self._queue.get()]
        deadline = loop.time() + self.config.batch_age_s
        while len(messages) < self.config.batch_size:
            while not self._queue.empty() and len(messages) < self.config.batch_size:
                messages.append(self._queue.get_nowait())
            remaining = deadline - loop.time()
            if remaining <= 0 or len(messages) >= self.config.batch_size:
                break
            try:
                messages.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return messages

    async def _commit(self, conn: psycopg.AsyncConnection, *, batch: Batch) -> None:
        result = await write_batch(conn, batch)
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.state_changes += result.state_changes
        self.stats.batches += 1
        for _, rejection in batch.rejections:
            self.stats.rejected[rejection.reason.value] += 1

    async def _writer(self, client: aiomqtt.Client, database: DatabaseLink) -> None:
        paho = client._client
        while True:
            messages = await self._next_batch()
            now = datetime.now(UTC)
            batch = Batch()
            for message in messages:
                payload = (
                    bytes(message.payload)
                    if isinstance(message.payload, (bytes, bytearray))
                    else b""
                )
                self.add_to_batch(batch, message.topic.value, payload, now)
            self.stats.received += len(messages)
            await database.run(functools.partial(self._commit, batch=batch))
            for message in messages:
                if message.qos > 0:
                    paho.ack(message.mid, message.qos)

    async def _reader(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._queue.put(message)

    async def run(self) -> None:
        database = DatabaseLink(self.config.database_url)
        conn = await database.connection()
        self._known.update(await known_device_ids(conn))
        endpoint = MqttEndpoint.parse(self.config.mqtt_url)
        topics = Topics(self.config.topic_root)
        subscription = (
            topics.shared_all_devices() if self.config.shared_subscription else topics.all_devices()
        )
        backoff = 0.5
        while True:
            client = self._client(endpoint)
            client._client.manual_ack_set(True)
            try:
                async with client:
                    # Resubscribe on every connection: a lost subscription is a silent stall.
                    await client.subscribe(subscription, qos=1)
                    self.subscribed.set()
                    backoff = 0.5
                    log.info("subscribed to %s as %s", subscription, self.config.client_id)
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(self._reader(client))
                        tasks.create_task(self._writer(client, database))
            except* aiomqtt.MqttError as group:
                self.subscribed.clear()
                self._drop_unacked()
                log.warning(
                    "broker connection lost (%s); reconnecting in %.1fs",
                    group.exceptions[0],
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(RETRY_MAX_S, backoff * 2)

    def _client(self, endpoint: MqttEndpoint) -> aiomqtt.Client:
        common = {
            "username": endpoint.username,
            "password": endpoint.password,
            "identifier": self.config.client_id,
        }
        if self.config.protocol == 5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.config.session_expiry_s
            # The broker keeps at most this many unacknowledged messages in flight to us.
            props.ReceiveMaximum = min(65535, self.config.batch_size * 2)
            return aiomqtt.Client(
                endpoint.host,
                endpoint.port,
                **common,  # type: ignore[arg-type]
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
            )
        return aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            **common,  # type: ignore[arg-type]
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
        )

    def _drop_unacked(self) -> None:
        # Messages taken but not acknowledged on a dead connection are redelivered by the
        # broker when the session resumes; keeping them here would store them twice.
        while not self._queue.empty():
            self._queue.get_nowait()


class DatabaseLink:
    """One async connection, reopened with backoff; the batch is retried, never dropped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection | None = None

    async def connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await aconnect(self.url)
        return self._conn

    async def run(self, work: Callable[[psycopg.AsyncConnection], Awaitable[None]]) -> None:
        backoff = 0.2
        while True:
            try:
                await work(await self.connection())
                return
            except (psycopg.OperationalError, StoreUnavailable) as err:
                log.warning("database unavailable (%s); retrying in %.1fs", err, backoff)
                if self._conn is not None:
                    await self._conn.close()
                    self._conn = None
                await asyncio.sleep(backoff)
                backoff = min(RETRY_MAX_S, backoff * 2)
