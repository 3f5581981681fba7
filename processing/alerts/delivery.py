"""Outbox dispatchers: one per channel (MQTT, each webhook, each routed recipient's e-mail,
Telegram or SMS channel in processing.alerts.channels), each on its own connection, so a
failing webhook or recipient delays nobody else. A channel delivers an alert's transitions in
order (one in flight per alert), different alerts concurrently, most severe first
(store.alert_outbox), and retries a failure with exponential backoff and full jitter, at most
``max_attempts`` times; a row is marked delivered only after the broker's PUBACK or a 2xx
answer, and dead (never tried again) after its last attempt or at once on an answer that cannot
get better (a 4xx other than 408 and 429). A receiver's ``Retry-After`` (429, 503) sets the
next attempt's time.

Webhooks are signed (HMAC-SHA256 over ``{timestamp}.{body}``, see ``signature``) and each POST
has one deadline from connect to the last byte of the answer.

At-least-once: a crash between sending and marking sends that transition again after restart.
Payloads carry ``transition_id`` (and webhooks an ``Idempotency-Key`` header) for receivers
that must not act twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
import psycopg

from devices.endpoint import MqttEndpoint
from devices.mqtt_client import MqttLink, MqttLinkError
from devices.topics import Topics
from processing.alerts.channels import recipient_channel
from processing.alerts.channels.base import Channel as Channel
from processing.alerts.channels.base import DeliveryError as DeliveryError
from processing.alerts.channels.base import exchange, failure
from processing.alerts.config import AlertConfig
from processing.alerts.metrics import AlertMetrics
from processing.alerts.routing import Medium
from store.alert_outbox import Delivery, mark_delivered, mark_failed, pending
from store.db import StoreUnavailable, aconnect

log = logging.getLogger("ioc.alerts.delivery")
POLL_S = 0.2
PUBACK_TIMEOUT_S = 10.0


SIGNATURE_HEADER = "X-IOC-Signature-256"
TIMESTAMP_HEADER = "X-IOC-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``.

    The timestamp is signed with the body (as Stripe does, unlike GitHub's body-only scheme)
    so that a receiver can refuse a captured request replayed later: its age is authentic."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


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
            # A link the broker dropped is replaced here, not discovered by a failed send that
            # would spend one of the row's bounded attempts.
            if self._link is None or not self._link.connected:
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
    """POSTs each transition as JSON, signed when the webhook has a secret; any 2xx is success,
    anything else (or no whole answer within the deadline) fails."""

    concurrency = 8

    def __init__(self, name: str, url: str, timeout_s: float, secret: str | None = None) -> None:
        self.name = f"webhook:{name}"
        self.url = url
        self.timeout_s = timeout_s
        self.secret = secret
        self._http = httpx.AsyncClient(timeout=timeout_s)

    def headers(self, payload: dict[str, Any], body: bytes) -> dict[str, str]:
        out = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"ioc-alert-transition-{payload['transition_id']}",
        }
        if self.secret is not None:
            # Wall-clock time, not the engine's clock: the receiver compares it with its own.
            stamp = str(int(time.time()))
            out[TIMESTAMP_HEADER] = stamp
            out[SIGNATURE_HEADER] = signature(self.secret, stamp, body)
        return out

    async def send(self, payload: dict[str, Any]) -> None:
        body = msgspec.json.encode(payload)
        answer = await exchange(self._http, self.timeout_s, "POST", self.url, content=body,
                                headers=self.headers(payload, body))  # fmt: skip
        if not answer.is_success:
            raise failure(answer)

    async def close(self) -> None:
        await self._http.aclose()


def channels_for(config: AlertConfig, rule_names: dict[str, tuple[str, str]]) -> list[Channel]:
    """Every channel in use; ``rule_names`` (rule → English, Vietnamese name, the incidents'
    included) head the messages of the channels people carry."""
    out: list[Channel] = [MqttChannel(config)] if config.mqtt_url else []
    out += [
        WebhookChannel(n, u, config.webhook_timeout_s, config.webhook_secrets.get(n))
        for n, u in config.webhooks.items()
    ]
    people = [r for r in config.routing.used() if r.medium is not Medium.WEBHOOK]
    out += [recipient_channel(r, config, rule_names) for r in people]
    return out


@dataclass(slots=True)
class ChannelStats:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
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
        self._rng = random.Random()
        self.metrics: AlertMetrics | None = None  # set by the engine: /metrics counts attempts

    def retry_delay(self, attempts: int) -> timedelta:
        """Backoff after the ``attempts``-th failure, with full jitter: uniform below a cap of
        first, 2×first, 4×first … up to max. The jitter spreads the retries of rows that failed
        together (an endpoint back from an outage) instead of sending them again in step."""
        first, most = self.config.retry_first_s, self.config.retry_max_s
        cap = min(most, first * 2 ** max(0, attempts - 1))
        return timedelta(seconds=self._rng.uniform(0, cap))

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
                if self.metrics is not None:
                    self.metrics.dispatcher_pass()
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
        """Start due heads of the queue, most severe first; True when something was started.

        A channel runs ``concurrency`` deliveries at once, and critical ones may take as many
        again: a channel kept busy by lesser alerts (a slow endpoint, a backlog) starts a
        critical alert in the next round instead of after a slot frees."""
        self._inflight = {a: t for a, t in self._inflight.items() if not t.done()}
        usual = self.channel.concurrency
        room = 2 * usual - len(self._inflight)
        self.stats.rounds += 1
        if room <= 0:  # every slot busy: the query could return nothing
            return False
        rows = await pending(conn, self.channel.name, self.clock(), busy=list(self._inflight),
                             limit=room)  # fmt: skip
        started = False
        for row in rows:  # critical (rank 0) first
            if row.severity_rank > 0 and len(self._inflight) >= usual:
                break
            self._inflight[row.alert_id] = asyncio.create_task(self._deliver(conn, row))
            started = True
        return started

    async def _deliver(self, conn: psycopg.AsyncConnection, row: Delivery) -> None:
        try:
            await self.channel.send(row.payload)
        except Exception as err:  # DeliveryError, or anything unforeseen: retry later
            now = self.clock()
            attempts = row.attempts + 1
            permanent = isinstance(err, DeliveryError) and err.permanent
            dead = permanent or attempts >= self.config.max_attempts
            asked = err.retry_after_s if isinstance(err, DeliveryError) else None
            # The receiver's own Retry-After, when it gave one, instead of our backoff.
            delay = self.retry_delay(attempts) if asked is None else timedelta(seconds=asked)
            retry_at = None if dead else now + delay
            await mark_failed(conn, row.outbox_id, now, str(err), retry_at)
            self.stats.failed += 1
            self.stats.dead += dead
            if self.metrics is not None:
                outcome = "dead" if dead else "failed"
                self.metrics.attempted(self.channel.name, outcome, row.payload, now)
            if dead:
                log.warning("%s: alert %d seq %d is dead after %d attempt(s): %s",
                            self.channel.name, row.alert_id, row.seq, attempts, err)  # fmt: skip
            else:
                log.info("%s: alert %d seq %d failed (%s); retry at %s", self.channel.name,
                         row.alert_id, row.seq, err, retry_at)  # fmt: skip
        else:
            await mark_delivered(conn, row.outbox_id, self.clock())
            self.stats.delivered += 1
            if self.metrics is not None:
                self.metrics.attempted(self.channel.name, "delivered", row.payload, self.clock())
        self.wake.set()  # the alert's next transition may now go
