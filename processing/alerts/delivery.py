"""Outbox dispatchers: one per channel (MQTT, each webhook), each on its own connection, so a
failing webhook delays nobody else. A channel delivers an alert's transitions in order (one in
flight per alert), different alerts concurrently, and retries a failure with exponential
backoff; a row is marked delivered only after the broker's PUBACK or a 2xx answer.

At-least-once: a crash between sending and marking sends that transition again after restart.
Payloads carry ``transition_id`` (and webhooks an ``Idempotency-Key`` header) for receivers
that must not act twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import msgspec
import psycopg

from devices.endpoint import MqttEndpoint
from devices.mqtt_client import MqttLink, MqttLinkError
from devices.topics import Topics
from processing.alerts.config import AlertConfig
from store.alert_outbox import Delivery, mark_delivered, mark_failed, pending
from store.db import StoreUnavailable, aconnect

log = logging.getLogger("ioc.alerts.delivery")
POLL_S = 0.2
PUBACK_TIMEOUT_S = 10.0


class DeliveryError(Exception):
    """This attempt failed; the row is retried later."""


class Channel(Protocol):
    name: str
    concurrency: int

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class MqttChannel:
    """Publishes each transition on ``{root}/alerts/{severity}/{rule}/{subject}`` at QoS 1.

    Unresolved alerts are retained, so a new subscriber gets the open set; a resolution is
    published, then the retained copy is cleared with an empty retained message (subscribers
    skip empty payloads)."""

    name = "mqtt"
    concurrency = 32

    def __init__(self, config: AlertConfig) -> None:
        self.endpoint = MqttEndpoint.parse(config.mqtt_url or "", protocol=config.mqtt_protocol)
        self.topics = Topics(config.topic_root)
        self.client_id = config.client_id
        self._link: MqttLink | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> MqttLink:
        async with self._lock:
            if self._link is None:
                link = MqttLink(self.endpoint, client_id=self.client_id)
                await link.connect()
                self._link = link
            return self._link

    async def send(self, payload: dict[str, Any]) -> None:
        topic = self.topics.alert(payload["severity"], payload["rule"], payload["subject"])
        resolved = payload["state"] == "resolved"
        try:
            link = await self._connected()
            async with asyncio.timeout(PUBACK_TIMEOUT_S):
                await self._publish(link, topic, msgspec.json.encode(payload), not resolved)
                if resolved:
                    await self._publish(link, topic, b"", True)
        except (MqttLinkError, TimeoutError) as err:
            await self.close()
            raise DeliveryError(f"MQTT: {err or 'no acknowledgement in time'}") from err

    async def _publish(self, link: MqttLink, topic: str, payload: bytes, retain: bool) -> None:
        refused = await link.publish(topic, payload, 1, retain)
        if refused:  # e.g. an ACL: counted as delivered, as before, since a retry cannot help
            log.warning("mqtt: the broker refused %s: %s", topic, refused)

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                await link.disconnect()


class WebhookChannel:
    """POSTs each transition as JSON; any 2xx is success, anything else (or a timeout) fails."""

    concurrency = 8

    def __init__(self, name: str, url: str, timeout_s: float) -> None:
        self.name = f"webhook:{name}"
        self.url = url
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, payload: dict[str, Any]) -> None:
        try:
            answer = await self._http.post(
                self.url,
                content=msgspec.json.encode(payload),
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"ioc-alert-transition-{payload['transition_id']}",
                },
            )
        except httpx.HTTPError as err:
            raise DeliveryError(f"{type(err).__name__}: {err}") from err
        if not answer.is_success:
            raise DeliveryError(f"HTTP {answer.status_code}")

    async def close(self) -> None:
        await self._http.aclose()


def channels_for(config: AlertConfig) -> list[Channel]:
    out: list[Channel] = [MqttChannel(config)] if config.mqtt_url else []
    out += [WebhookChannel(n, u, config.webhook_timeout_s) for n, u in config.webhooks.items()]
    return out


@dataclass(slots=True)
class ChannelStats:
    delivered: int = 0
    failed: int = 0
    rounds: int = 0  # looks at the outbox


class Dispatcher:
    """Drains one channel's outbox rows until cancelled."""

    def __init__(
        self,
        channel: Channel,
        config: AlertConfig,
        clock: Callable[[], datetime],
        wake: asyncio.Event,
    ) -> None:
        self.channel = channel
        self.config = config
        self.clock = clock
        self.wake = wake
        self.stats = ChannelStats()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(channel.concurrency)

    def retry_delay(self, attempts: int) -> timedelta:
        """Backoff after the ``attempts``-th failure: first, 2×first, 4×first … up to max."""
        first, most = self.config.retry_first_s, self.config.retry_max_s
        return timedelta(seconds=min(most, first * 2 ** max(0, attempts - 1)))

    async def run(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = await aconnect(self.config.database_url)
                    progressed = await self._round(conn)
                except (StoreUnavailable, OSError, psycopg.OperationalError) as err:
                    log.warning("%s: database unavailable (%s); retrying", self.channel.name, err)
                    conn = None
                    progressed = False
                if not progressed:
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_S)
        finally:
            for task in self._inflight.values():
                task.cancel()
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
            await self.channel.close()
            if conn is not None:
                await conn.close()

    async def _round(self, conn: psycopg.AsyncConnection) -> bool:
        """Start due heads of the queue; True when something was started."""
        self._inflight = {a: t for a, t in self._inflight.items() if not t.done()}
        rows = await pending(conn, self.channel.name)
        self.stats.rounds += 1
        now = self.clock()
        heads: dict[int, Delivery] = {}
        for row in rows:
            heads.setdefault(row.alert_id, row)
        started = False
        for alert_id, row in heads.items():
            if alert_id in self._inflight or row.next_attempt_at > now:
                continue
            self._inflight[alert_id] = asyncio.create_task(self._deliver(conn, row))
            started = True
        return started

    async def _deliver(self, conn: psycopg.AsyncConnection, row: Delivery) -> None:
        async with self._gate:
            try:
                await self.channel.send(row.payload)
            except Exception as err:  # DeliveryError, or anything unforeseen: retry later
                now = self.clock()
                retry_at = now + self.retry_delay(row.attempts + 1)
                await mark_failed(conn, row.outbox_id, now, str(err), retry_at)
                self.stats.failed += 1
                log.info("%s: alert %d seq %d failed (%s); retry at %s", self.channel.name,
                         row.alert_id, row.seq, err, retry_at.isoformat())  # fmt: skip
            else:
                await mark_delivered(conn, row.outbox_id, self.clock())
                self.stats.delivered += 1
        self.wake.set()  # the alert's next transition may now go
