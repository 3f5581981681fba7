"""One MQTT connection and the simulated devices it carries: connect, send, reconnect.

On every connection a device publishes its birth record (``meta``, retained) and ``online``
status (retained); then whatever its model has queued, QoS 1, each message removed from the
outbox only once the broker has acknowledged it (store-and-forward: nothing made while the
link was down is lost, up to the outbox's bound). A lost link reconnects with exponential
backoff and jitter. A link that carries one device leaves that device's will with the broker
and drops abruptly when the device goes dark; a gateway's link carries many (see
:mod:`simulators.device`). The MQTT client itself is :mod:`devices.mqtt_client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from devices.endpoint import MqttEndpoint
from devices.kinds import DeviceState
from devices.mqtt_client import MqttLink, MqttLinkError, Will
from simulators.model import DeviceModel
from simulators.outbox import Outgoing

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
DARK_POLL_S = 1.0  # how often a dark device looks for power again
DROP_WAIT_S = 5.0
OFFLINE_PUBLISH_TIMEOUT_S = 2.0

# Why a connection ended: asked to stop (clean), killed (abrupt, for good), gone dark
# (abrupt, comes back when condition.online is set again) or lost (reconnect with backoff).
SessionEnd = Literal["stop", "kill", "dark", "lost"]
Observer = Callable[[Outgoing], None]


@dataclass(slots=True)
class Counters:
    """Shared by a fleet's links; read by its progress line."""

    connected: int = 0  # devices on a connected link now
    connects: int = 0  # successful connections, reconnections included
    connect_failures: int = 0
    connection_losses: int = 0
    published: int = 0  # readings the broker acknowledged
    refused: int = 0  # messages the broker acknowledged with a failure (MQTT 5: an ACL)
    messages: int = 0  # messages the broker acknowledged (births, status, readings, arrays)


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


class Link:
    """One MQTT connection and the devices it carries; see the module docstring."""

    def __init__(
        self,
        models: Sequence[DeviceModel],
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        gateway: bool,
        counters: Counters | None = None,
        connect_gate: asyncio.Semaphore | None = None,
        keepalive_s: int = 60,
        observer: Observer | None = None,
    ) -> None:
        if not models:
            raise ValueError("a link carries at least one device")
        self.models = list(models)
        self.endpoint = endpoint
        self.client_id = client_id
        self.gateway = gateway
        self.counters = counters or Counters()
        self.keepalive_s = keepalive_s
        self.observer = observer
        self.on_link_event: Callable[[str], None] | None = None  # connected, failed, lost
        self._gate: contextlib.AbstractAsyncContextManager[Any] = (
            connect_gate or contextlib.nullcontext()
        )
        self._rng = random.Random()
        self._backoff = Backoff(self._rng)
        # Flags read whenever _wake is set: stop/kill asked, this session's link lost, or a
        # device's condition changed (dark, for a device with its own link).
        self._wake = asyncio.Event()
        self._stopping = False
        self._killing = False
        self._lost = False
        self._draining = False  # stopping: feeders end once their outbox is empty
        self._client: MqttLink | None = None
        self._running = False
        self._finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        for model in self.models:
            model.on_change = self._on_model_change

    @property
    def connected(self) -> bool:
        return self._client is not None

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"link-{self.client_id}")
        return self._task

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, publish retained ``offline``, disconnect and end :meth:`run`."""
        self._stopping = True
        for model in self.models:  # nothing new after the last flush
            model.stop_sampling()
        await self._end(timeout_s)

    async def kill(self, timeout_s: float = 10.0) -> None:
        """Drop the link without DISCONNECT, so the broker publishes the will; end :meth:`run`."""
        self._killing = True
        await self._end(timeout_s)

    def poke(self) -> None:
        """Look at the devices' conditions again now (a scenario or an engineer changed one)."""
        for model in self.models:
            model.changed()

    async def _end(self, timeout_s: float) -> None:
        self._wake.set()
        if self._task is None and not self._running:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
        except TimeoutError:
            log.warning("%s did not end within %.0f s; cancelling it", self.client_id, timeout_s)
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    def _say(self, line: str) -> None:
        if self.on_link_event is not None:
            self.on_link_event(line)

    def _on_model_change(self, model: DeviceModel) -> None:
        # A device with its own link drops it when it goes dark or is cut off, and comes back.
        if not self.gateway and (not _up(model) or self._client is None):
            self._wake.set()

    def _dark(self) -> bool:
        """A device of its own that cannot hold a link now (no power, or no network path)."""
        return not self.gateway and not _up(self.models[0])

    async def run(self) -> None:
        """Sample, connect, send and reconnect until :meth:`stop` or :meth:`kill`."""
        self._running = True
        try:
            while not (self._stopping or self._killing):
                self._wake.clear()  # the flags were just read; stop() and kill() set them first
                if self._dark():
                    await self._sleep(DARK_POLL_S, until=lambda: not self._dark())
                    continue
                end: SessionEnd = "lost"
                try:
                    end = await self._session()
                    if end == "lost":
                        self._say("connection lost; reconnecting")
                except (MqttLinkError, OSError) as err:
                    log.debug("%s: connection failed or lost: %s", self.client_id, err)
                    self._say(f"connection failed or lost: {err}")
                if end == "lost":
                    await self._sleep(self._backoff.next_s())
        finally:
            for model in self.models:
                model.stop_sampling()
            self._running = False
            self._finished.set()

    async def _sleep(self, delay_s: float, until: Callable[[], bool] | None = None) -> bool:
        """Sleep up to ``delay_s``; True when stop, kill or ``until()`` cut it short."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, delay_s)
        while not (self._stopping or self._killing or (until is not None and until())):
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
            except TimeoutError:
                return False
        return True

    def _make_client(self) -> MqttLink:
        will = None
        if not self.gateway:
            last = self.models[0].will()
            will = Will(last.topic, last.payload, qos=1, retain=True)
        return MqttLink(
            self.endpoint, client_id=self.client_id, will=will, keepalive_s=self.keepalive_s
        )

    async def _session(self) -> SessionEnd:
        client = self._make_client()
        async with self._gate:
            try:
                await client.connect()
            except MqttLinkError:
                self.counters.connect_failures += 1
                raise
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(client.disconnect)  # DISCONNECT if still up; then closed
            self._begin_session(client)
            self._say(f"connected to {self.endpoint.host}:{self.endpoint.port}")
            end: SessionEnd = "lost"
            feeders: list[asyncio.Task[None]] = []
            try:
                if not self.gateway:
                    model = self.models[0]
                    await self._publish(client, model.birth())
                    await self._publish(client, model.status(DeviceState.ONLINE))
                self._backoff.reset()
                feeders = [
                    asyncio.create_task(self._feed(client, m), name=f"feed-{m.device_id}")
                    for m in self.models
                ]
                end = await self._supervise(feeders)
                if end == "stop":
                    await self._drain(feeders)
                    await self._sign_off(client)
                    return end
                await _cancel(feeders)
                if end in ("kill", "dark"):
                    await self._drop_link(client)
                return end
            except asyncio.CancelledError:
                await _cancel(feeders)
                end = "stop"
                await self._offline_on_cancel(client)
                raise
            finally:
                await _cancel(feeders)  # a feeder's failure ended the session: stop the rest
                self._client = None
                self.counters.connected -= len(self.models)
                if end == "lost":
                    self.counters.connection_losses += 1

    def _begin_session(self, client: MqttLink) -> None:
        client.on_end = lambda: self._on_link_end(client)
        # A device starts measuring when it first comes up (no-op after that): from then on
        # it measures through every outage, and a fleet's start costs no CPU on the waiting.
        for model in self.models:
            model.start_sampling()
        self._client = client
        self._lost = False
        self.counters.connects += 1
        self.counters.connected += len(self.models)

    def _on_link_end(self, client: MqttLink) -> None:
        # The link has already failed the acknowledgements still awaited on it.
        if self._client is client:
            self._lost = True
            self._wake.set()

    async def _supervise(self, feeders: list[asyncio.Task[None]]) -> SessionEnd:
        """Wait until the session has to end, and say why."""
        for feeder in feeders:
            feeder.add_done_callback(self._feeder_done)
        while True:
            if self._killing:
                return "kill"
            if self._stopping:
                return "stop"
            if self._lost:
                return "lost"
            if self._dark():
                return "dark"
            for feeder in feeders:
                if feeder.done() and not feeder.cancelled() and feeder.exception() is not None:
                    raise feeder.exception()  # type: ignore[misc]
            self._wake.clear()
            await self._wake.wait()

    def _feeder_done(self, _: asyncio.Task[None]) -> None:
        self._wake.set()

    async def _feed(self, client: MqttLink, model: DeviceModel) -> None:
        """Send one device's outbox in order; on a gateway, announce its state changes too."""
        announced = None if self.gateway else DeviceState.ONLINE
        while True:
            if self.gateway:
                state = DeviceState.ONLINE if _up(model) else DeviceState.OFFLINE
                if state is not announced:
                    if state is DeviceState.ONLINE:
                        await self._publish(client, model.birth())
                    reason = None if state is DeviceState.ONLINE else "unreachable"
                    await self._publish(client, model.status(state, reason))
                    announced = state
            # Cut off from its gateway: what it measures waits in its outbox.
            taken = model.outbox.peek() if _up(model) else None
            if taken is None:
                if self._draining:
                    return
                model.ready.clear()
                await model.ready.wait()
                continue
            item, count = taken
            try:
                await self._publish(client, item)
            except BaseException:
                model.outbox.release()
                raise
            model.outbox.commit(count)
            self.counters.published += item.readings

    async def _publish(self, client: MqttLink, item: Outgoing) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement (a lost link raises)."""
        refused = await client.publish(item.topic, item.payload, 1, item.retain)
        if refused:  # e.g. an ACL: sending it again would not help
            self.counters.refused += 1
            self._say(f"broker refused {item.topic}: {refused}")
            return
        self.counters.messages += 1
        if self.observer is not None:
            self.observer(item)

    async def _drain(self, feeders: list[asyncio.Task[None]]) -> None:
        """A clean stop: the feeders send what is queued (nothing cut off mid-flight), then end."""
        self._draining = True
        for model in self.models:
            model.ready.set()
        await asyncio.gather(*feeders)

    async def _sign_off(self, client: MqttLink) -> None:
        for model in self.models:
            await self._publish(client, model.status(DeviceState.OFFLINE, "stopped"))

    async def _offline_on_cancel(self, client: MqttLink) -> None:
        # Cancelled without stop(): still leave a truthful retained status behind.
        if self._lost:
            return
        with contextlib.suppress(MqttLinkError, TimeoutError):
            async with asyncio.timeout(OFFLINE_PUBLISH_TIMEOUT_S):
                await self._sign_off(client)

    async def _drop_link(self, client: MqttLink) -> None:
        """End the TCP connection without DISCONNECT, as a power cut would; wait for it to end."""
        await client.drop(DROP_WAIT_S)


def _up(model: DeviceModel) -> bool:
    return model.condition.online and model.condition.reachable


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
