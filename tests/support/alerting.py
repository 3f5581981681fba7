"""Helpers for the alert tests: an injectable clock, a real webhook server, an MQTT subscriber
of the alert topics, and an engine running against the test's database and broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiomqtt
import psycopg

from devices.codec import encode
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.configs import alert_config
from ioc.scenario import load_into
from processing.alerts.config import AlertConfig
from processing.alerts.engine import AlertEngine
from seeds import load_scenario
from tests.support.clients import mqtt_client, subscribed
from tests.support.polling import wait_until
from tests.support.tasks import background


class FakeClock:
    """The engine's time: moves only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class WebhookServer:
    """A real HTTP server in a thread; answers ``status`` after ``delay_s``; records each POST."""

    status: int = 200
    delay_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)  # successful deliveries
    attempts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    # Each request's headers (names in lower case) and raw body: what a signature covers.
    signed: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[tuple[int, str]]:
        return [(p["alert_id"], p["event"]) for p in self.received]

    @contextlib.contextmanager
    def running(self) -> Iterator[WebhookServer]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                hook.signed.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                hook.attempts.append((time.monotonic(), body))
                status, delay = hook.status, hook.delay_s
                if delay:
                    time.sleep(delay)
                if status < 300:
                    hook.received.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class AlertSubscriber:
    """Every message on the alert topics (an empty payload is a cleared retained alert)."""

    messages: list[tuple[str, dict[str, Any] | None, bool]] = field(default_factory=list)

    def events(self) -> list[tuple[str, str]]:
        return [(p["rule"], p["event"]) for _, p, _ in self.messages if p is not None]

    @contextlib.asynccontextmanager
    async def running(self, mqtt_url: str, protocol: int, topics: Topics) -> AsyncIterator[None]:
        def take(m: aiomqtt.Message) -> None:
            if "/test_marker/" in m.topic.value:
                return
            raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
            self.messages.append((m.topic.value, json.loads(raw) if raw else None, bool(m.retain)))

        async with (
            mqtt_client(mqtt_url, protocol) as client,
            subscribed(client, topics.all_alerts(), take),
        ):
            yield


async def retained_alerts(mqtt_url: str, protocol: int, topics: Topics) -> dict[str, Any]:
    """What a subscriber joining now is given: the retained alerts, by topic.

    A marker published after subscribing arrives after every retained message, so its arrival
    says the retained set is complete (no waiting on a timer)."""
    marker = topics.alert("info", "test_marker", "end")
    found: dict[str, Any] = {}
    async with mqtt_client(mqtt_url, protocol) as client:
        await client.subscribe(topics.all_alerts(), qos=1)
        await client.publish(marker, b"{}", qos=1)
        async with asyncio.timeout(10):
            async for m in client.messages:
                if m.topic.value == marker:
                    return found
                raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
                if m.retain and raw:
                    found[m.topic.value] = json.loads(raw)
    return found


def load_places(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        load_into(conn)


def scenario_devices(kind: Kind, district: int | None = None) -> list[Any]:
    return [
        d
        for d in load_scenario().devices()
        if d.kind == kind and (district is None or d.meta["district_code"] == district)
    ]


@dataclass
class Field:
    """Publishes what devices would (birth, status, readings) straight onto the broker."""

    client: aiomqtt.Client
    topics: Topics
    seq: dict[str, int] = field(default_factory=dict)

    async def birth(self, device: Any) -> None:
        topic = self.topics.device(device.kind, device.device_id, Channel.META)
        await self.client.publish(topic, encode({**device.meta, "device_id": device.device_id}),
                                  qos=1)  # fmt: skip

    async def status(self, device: Any, state: str, reason: str = "reported") -> None:
        payload = {"device_id": device.device_id, "state": state, "reason": reason,
                   "ts": datetime.now(UTC).isoformat()}  # fmt: skip
        topic = self.topics.device(device.kind, device.device_id, Channel.STATUS)
        await self.client.publish(topic, encode(payload), qos=1)

    async def reading(self, device: Any, **metrics: Any) -> None:
        seq = self.seq.get(device.device_id, 0)
        self.seq[device.device_id] = seq + 1
        payload = {"device_id": device.device_id, "ts": datetime.now(UTC).isoformat(),
                   "seq": seq, **metrics}  # fmt: skip
        topic = self.topics.device(device.kind, device.device_id, Channel.TELEMETRY)
        await self.client.publish(topic, encode(payload), qos=1)

    async def tampered(self, *cameras: Any) -> None:
        """Each camera born, then reporting in, online and recording, with its tamper set."""
        for camera in cameras:
            await self.birth(camera)
            await self.reading(camera, online=True, recording=True, tamper=True)


@contextlib.asynccontextmanager
async def field_client(mqtt_url: str, protocol: int, topics: Topics) -> AsyncIterator[Field]:
    async with mqtt_client(mqtt_url, protocol) as client:
        yield Field(client, topics)


def engine_config(database_url: str, mqtt_url: str, protocol: int, topics: Topics,
                  **overrides: Any) -> AlertConfig:  # fmt: skip
    settings: dict[str, Any] = {
        "database_url": database_url, "mqtt_url": mqtt_url, "mqtt_protocol": protocol,
        "topic_root": topics.root, "tick_s": 0.05, "telemetry_every_s": 0.1,
        "retry_first_s": 2.0, "client_id": f"alerts-{topics.root.split('/')[0]}",
    }  # fmt: skip
    return alert_config(**(settings | overrides))


@contextlib.asynccontextmanager
async def running_engine(config: AlertConfig, clock: FakeClock) -> AsyncIterator[AlertEngine]:
    engine = AlertEngine(config, clock=clock)
    async with background(engine.run()):
        await asyncio.wait_for(engine.ready.wait(), 20)
        yield engine


async def ticks(engine: AlertEngine, n: int = 3) -> None:
    """Let the engine run ``n`` more evaluations (what it would do, it has then done)."""
    target = engine.stats.ticks + n

    async def done() -> bool:
        return engine.stats.ticks >= target

    await wait_until(done, timeout_s=20)


@dataclass
class AlertWorld:
    """What an alert test talks to: its database (the places loaded), the broker, the topic
    tree, the engine's clock, a running webhook server and a subscriber of the alert topics;
    and the engine, a field of devices and the subscriber started on them."""

    database_url: str
    mqtt_url: str
    protocol: int
    topics: Topics
    hook: WebhookServer
    clock: FakeClock = field(default_factory=FakeClock)
    subscriber: AlertSubscriber = field(default_factory=AlertSubscriber)

    def config(self, *, ops_hook: bool = False, **overrides: Any) -> AlertConfig:
        """``engine_config`` on this world; ``ops_hook`` adds ``hook`` as the webhook "ops"."""
        webhooks = {"webhooks": {"ops": self.hook.url}} if ops_hook else {}
        return engine_config(self.database_url, self.mqtt_url, self.protocol, self.topics,
                             **(webhooks | overrides))  # fmt: skip

    def engine(
        self, *, ops_hook: bool = False, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[AlertEngine]:
        """An engine running on ``config(ops_hook, **overrides)`` and this world's clock."""
        return running_engine(self.config(ops_hook=ops_hook, **overrides), self.clock)

    def field(self) -> contextlib.AbstractAsyncContextManager[Field]:
        return field_client(self.mqtt_url, self.protocol, self.topics)

    def listening(self) -> contextlib.AbstractAsyncContextManager[None]:
        """``subscriber`` taking every message on the alert topics."""
        return self.subscriber.running(self.mqtt_url, self.protocol, self.topics)

    async def retained(self) -> dict[str, Any]:
        return await retained_alerts(self.mqtt_url, self.protocol, self.topics)
