"""One simulated device: a real MQTT client that behaves like the equipment in the field.

On every connection it publishes its birth record (``meta``, retained) and ``online`` status
(retained), with an MQTT will that makes the broker publish ``offline`` (retained) if the link
dies without a DISCONNECT. Then one reading every ``interval_s / speed`` real seconds, QoS 1.
``seq`` counts readings from 0 over the device's whole life, across reconnects; a reading
whose publish fails with the link is not resent (store-and-forward comes later), so ``seq``
then has a gap, as it would from a real device.

Under acceleration the birth record announces the *real* interval (``interval_s / speed``,
rounded up, at least 1 s), so the server's liveness check (offline after N missed intervals,
counted in real time) holds for simulated devices too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiomqtt

from devices.codec import encode
from devices.endpoint import MqttEndpoint
from devices.kinds import READING_CHANNEL, Channel, DeviceState, Kind
from devices.topics import DEFAULT_ROOT, Topics
from simulators.clock import SimClock, wall_clock_ts
from simulators.values import DeviceCondition, reading_source

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
DARK_POLL_S = 1.0  # how often a dark device (condition.online False) looks for power again
DROP_WAIT_S = 5.0
OFFLINE_PUBLISH_TIMEOUT_S = 2.0

# Why a connection ended: asked to stop (clean), killed (abrupt, for good), gone dark
# (abrupt, comes back when condition.online is set again) or lost (reconnect with backoff).
SessionEnd = Literal["stop", "kill", "dark", "lost"]


class DeviceSpec(Protocol):
    """What the simulator needs of a scenario device (``seeds.ScenarioDevice`` has it)."""

    @property
    def kind(self) -> Kind: ...

    @property
    def device_id(self) -> str: ...

    @property
    def meta(self) -> Mapping[str, Any]: ...


@dataclass(slots=True)
class Counters:
    """Shared by a fleet's devices; read by its progress line."""

    connected: int = 0  # devices connected now
    connects: int = 0  # successful connections, reconnections included
    connect_failures: int = 0
    connection_losses: int = 0
    published: int = 0  # readings the broker acknowledged


class Backoff:
    """Exponential reconnect delay with jitter, so a fleet does not reconnect in lockstep."""

    def __init__(
        self, rng: random.Random, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S
    ) -> None:
        self.rng, self.first_s, self.max_s = rng, first_s, max_s
        self.attempt = 0

    def next_s(self) -> float:
        ceiling = min(self.max_s, self.first_s * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class SimulatedDevice:
    def __init__(
        self,
        spec: DeviceSpec,
        endpoint: MqttEndpoint,
        *,
        topics: Topics | None = None,
        clock: SimClock | None = None,
        condition: DeviceCondition | None = None,
        counters: Counters | None = None,
        connect_gate: asyncio.Semaphore | None = None,
        client_id: str | None = None,
        keepalive_s: int = 60,
    ) -> None:
        self.kind = spec.kind
        self.device_id = spec.device_id
        self.meta: dict[str, Any] = dict(spec.meta)
        self.endpoint = endpoint
        self.clock = clock or SimClock()
        self.values = reading_source(self.kind, self.device_id, self.meta, condition)
        self.counters = counters or Counters()
        self.client_id = client_id or f"sim-{self.device_id}-{secrets.token_hex(4)}"
        self.keepalive_s = keepalive_s
        self.interval_s = float(self.meta.get("interval_s", DEFAULT_INTERVAL_S))  # simulated
        self.seq = 0  # the next reading's
        topics = topics or Topics(DEFAULT_ROOT)
        self._meta_topic = topics.device(self.kind, self.device_id, Channel.META)
        self._status_topic = topics.device(self.kind, self.device_id, Channel.STATUS)
        self._reading_topic = topics.device(self.kind, self.device_id, READING_CHANNEL[self.kind])
        self._gate: contextlib.AbstractAsyncContextManager[Any] = (
            connect_gate or contextlib.nullcontext()
        )
        self._rng = random.Random()
        self._backoff = Backoff(self._rng)
        # Flags read whenever _wake is set: stop/kill asked, or this session's link lost.
        self._wake = asyncio.Event()
        self._stopping = False
        self._killing = False
        self._lost = False
        self._client: aiomqtt.Client | None = None
        self._running = False
        self._finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def condition(self) -> DeviceCondition:
        return self.values.condition

    @property
    def real_interval_s(self) -> float:
        return self.clock.real_interval_s(self.interval_s)

    @property
    def connected(self) -> bool:
        return self._client is not None

    def birth_record(self) -> dict[str, Any]:
        """The retained ``meta`` payload, announcing the real reporting interval."""
        announced = self.clock.announced_interval_s(self.interval_s)
        return {**self.meta, "device_id": self.device_id, "interval_s": announced}

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"sim-{self.device_id}")
        return self._task

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Publish retained ``offline``, disconnect cleanly and end :meth:`run`."""
        self._stopping = True
        await self._end(timeout_s)

    async def kill(self, timeout_s: float = 10.0) -> None:
        """Drop the link without DISCONNECT, so the broker publishes the will; end :meth:`run`."""
        self._killing = True
        await self._end(timeout_s)

    async def _end(self, timeout_s: float) -> None:
        self._wake.set()
        if self._task is None and not self._running:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
        except TimeoutError:
            log.warning("%s did not end within %.0f s; cancelling it", self.device_id, timeout_s)
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def run(self) -> None:
        """Connect, report and reconnect until :meth:`stop` or :meth:`kill`."""
        self._running = True
        try:
            while not (self._stopping or self._killing):
                self._wake.clear()  # the flags were just read; stop() and kill() set them first
                if not self.condition.online:
                    await self._sleep(DARK_POLL_S)
                    continue
                end: SessionEnd = "lost"
                try:
                    end = await self._session()
                except (aiomqtt.MqttError, OSError) as err:
                    log.debug("%s: connection failed or lost: %s", self.device_id, err)
                if end == "lost":
                    await self._sleep(self._backoff.next_s())
        finally:
            self._running = False
            self._finished.set()

    async def _sleep(self, delay_s: float) -> bool:
        """Sleep up to ``delay_s``; True when woken early (stop, kill or a lost link)."""
        if self._wake.is_set():
            return True
        try:
            async with asyncio.timeout(max(0.0, delay_s)):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    def _make_client(self) -> aiomqtt.Client:
        e = self.endpoint
        will = aiomqtt.Will(
            self._status_topic,
            encode({"device_id": self.device_id, "state": "offline", "reason": "will"}),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            e.host,
            e.port,
            username=e.username,
            password=e.password,
            identifier=self.client_id,
            protocol=e.protocol_version,
            will=will,
            clean_session=None if e.protocol == 5 else True,
            keepalive=self.keepalive_s,
        )

    async def _session(self) -> SessionEnd:
        client = self._make_client()
        async with contextlib.AsyncExitStack() as stack:
            async with self._gate:
                try:
                    await stack.enter_async_context(client)
                except aiomqtt.MqttError:
                    self.counters.connect_failures += 1
                    raise
            self._begin_session(client)
            end: SessionEnd = "lost"
            try:
                await client.publish(self._meta_topic, encode(self.birth_record()), 1, True)
                await self._publish_status(client, DeviceState.ONLINE)
                self._backoff.reset()
                end = await self._report(client)
                if end == "stop":
                    await self._publish_status(client, DeviceState.OFFLINE, reason="stopped")
                return end
            except asyncio.CancelledError:
                end = "stop"
                await self._offline_on_cancel(client)
                raise
            finally:
                self._client = None
                self.counters.connected -= 1
                if end == "lost":
                    self.counters.connection_losses += 1

    def _begin_session(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._lost = False
        if not (self._stopping or self._killing):
            self._wake.clear()
        self.counters.connects += 1
        self.counters.connected += 1
        # aiomqtt completes this future when the link ends; it is the only way it tells.
        client._disconnected.add_done_callback(lambda f: self._on_link_end(client, f))

    def _on_link_end(self, client: aiomqtt.Client, done: asyncio.Future[None]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved, so asyncio does not log it as forgotten
        if self._client is client:
            self._lost = True
            self._wake.set()

    async def _report(self, client: aiomqtt.Client) -> SessionEnd:
        loop = asyncio.get_running_loop()
        period = self.real_interval_s
        next_at = loop.time() + self._rng.uniform(0, period)  # spread a fleet's readings
        while True:
            if await self._sleep(next_at - loop.time()):
                end = self._why_woken()
                if end is None:
                    continue
                if end in ("kill", "dark"):
                    await self._drop_link(client)
                return end
            if not self.condition.online:
                await self._drop_link(client)
                return "dark"
            await self._publish_reading(client)
            next_at += period
            behind = loop.time() - next_at
            if behind > 0:  # a slow broker or loop: skip the missed ticks, never burst
                next_at += period * (behind // period + 1)

    def _why_woken(self) -> SessionEnd | None:
        if self._killing:
            return "kill"
        if self._stopping:
            return "stop"
        if self._lost:
            return "lost"
        self._wake.clear()
        return None

    async def _publish_reading(self, client: aiomqtt.Client) -> None:
        reading = {"device_id": self.device_id, "ts": wall_clock_ts(), "seq": self.seq}
        reading.update(self.values.reading(self.clock.now()))
        self.seq += 1
        await client.publish(self._reading_topic, encode(reading), qos=1)
        self.counters.published += 1

    async def _publish_status(
        self, client: aiomqtt.Client, state: DeviceState, *, reason: str | None = None
    ) -> None:
        status: dict[str, Any] = {"device_id": self.device_id, "state": state.value}
        status["ts"] = wall_clock_ts()
        if reason is not None:
            status["reason"] = reason
        await client.publish(self._status_topic, encode(status), qos=1, retain=True)

    async def _offline_on_cancel(self, client: aiomqtt.Client) -> None:
        # Cancelled without stop(): still leave a truthful retained status behind.
        if self._lost:
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(OFFLINE_PUBLISH_TIMEOUT_S):
                await self._publish_status(client, DeviceState.OFFLINE, reason="stopped")

    async def _drop_link(self, client: aiomqtt.Client) -> None:
        """End the TCP connection without DISCONNECT, as a power cut would; wait for it to end.

        ``shutdown`` (not ``close``) sends the FIN and leaves paho to notice end-of-stream,
        close the socket and unregister it from the event loop itself.
        """
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        await asyncio.wait([client._disconnected], timeout=DROP_WAIT_S)
