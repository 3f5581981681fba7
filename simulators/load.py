"""Load mode: real readings of real scenario devices, as fast as asked or as the broker takes.

Each connection keeps a window of QoS 1 publishes in flight (acknowledgements counted as they
come back), instead of waiting for each one: that, not the encoder, is what bounds a publisher
on a fast broker. Every message is a valid reading (its own ``seq`` and ``ts``) of a device of
the scenario, so an ingester downstream stores it rather than rejecting it. ``rate`` 0 means as
fast as the broker takes; otherwise the total rate is paced evenly over the connections.

The ingest benchmark calls :func:`run_load`; ``ioc simulate load`` is its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devices.codec import encode
from devices.endpoint import MqttEndpoint
from devices.kinds import READING_CHANNEL
from devices.mqtt_client import MqttLink
from devices.topics import Topics
from simulators.clock import SimClock, wall_clock_ts
from simulators.model import DeviceSpec
from simulators.values import reading_source

DEFAULT_WINDOW = 100  # QoS 1 publishes in flight per connection
PACE_STEP_S = 0.005  # pacing granularity of a rate-limited run
YIELD_EVERY = 64  # publishes between two turns of the event loop (lets acks in)


@dataclass(frozen=True, slots=True)
class LoadResult:
    messages: int  # acknowledged by the broker (QoS 1) or written to the socket (QoS 0)
    elapsed_s: float  # first publish to last acknowledgement
    connections: int
    qos: int
    payload_bytes: int  # of a typical message

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "elapsed_s": round(self.elapsed_s, 3),
            "msgs_per_s": round(self.msgs_per_s),
            "connections": self.connections,
            "qos": self.qos,
            "payload_bytes": self.payload_bytes,
        }


class ReadingTemplate:
    """One device's reading template: its metrics once, a fresh ``ts`` and ``seq`` per message."""

    def __init__(self, spec: DeviceSpec, topics: Topics) -> None:
        self.device_id = spec.device_id
        self.topic = topics.device(spec.kind, spec.device_id, READING_CHANNEL[spec.kind])
        values = reading_source(spec.kind, spec.device_id, spec.meta)
        self.metrics = values.reading(SimClock().now())
        self.seq = 0

    def next_payload(self, ts: str) -> bytes:
        body = {"device_id": self.device_id, "ts": ts, "seq": self.seq}
        body.update(self.metrics)
        self.seq += 1
        return encode(body)


class _Connection:
    def __init__(
        self, devices: list[ReadingTemplate], quota: int, qos: int, window: int, deadline: float
    ) -> None:
        self.devices, self.quota, self.qos, self.window = devices, quota, qos, window
        self.deadline = deadline  # perf_counter time to stop at, whatever the quota
        self.sent = 0
        self.acked = 0
        self.last_ack_at = 0.0
        self._acks = asyncio.Event()

    def on_ack(self) -> None:
        self.acked += 1
        self.last_ack_at = time.perf_counter()
        self._acks.set()

    async def run(self, link: MqttLink, pace: Callable[[], float] | None) -> None:
        link.on_ack = self.on_ack
        turn = 0
        ts = wall_clock_ts()  # renewed every few publishes: (device, ts, seq) stays unique
        while self.sent < self.quota:
            if pace is not None:
                allowed = pace()
                if self.sent >= allowed:
                    await asyncio.sleep(PACE_STEP_S)
                    continue
            while self.sent - self.acked >= self.window:
                self._acks.clear()
                await self._acks.wait()
            device = self.devices[self.sent % len(self.devices)]
            link.send(device.topic, device.next_payload(ts), self.qos)  # a lost link raises
            self.sent += 1
            turn += 1
            if turn >= YIELD_EVERY:
                turn = 0
                await asyncio.sleep(0)
                ts = wall_clock_ts()
                if time.perf_counter() >= self.deadline:
                    break
        while self.acked < self.sent:  # QoS 0: each one counts once written to the socket
            self._acks.clear()
            await self._acks.wait()


async def run_load(
    endpoint: MqttEndpoint,
    specs: Sequence[DeviceSpec],
    *,
    messages: int | None = None,
    duration_s: float | None = None,
    topics: Topics | None = None,
    connections: int | None = None,
    rate: float = 0.0,
    qos: int = 1,
    window: int = DEFAULT_WINDOW,
    on_progress: Callable[[str], None] | None = None,
    progress_every_s: float = 2.0,
) -> LoadResult:
    """Publish ``messages`` readings of ``specs`` (or for ``duration_s``) over ``connections``
    (default one per device)."""
    if not specs:
        raise ValueError("load needs at least one device")
    if (messages is None) == (duration_s is None):
        raise ValueError("give either --messages or --duration")
    if messages is not None and messages < 1:
        raise ValueError(f"--messages must be at least 1, not {messages}")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"--duration must be positive, not {duration_s}")
    if qos not in (0, 1):
        raise ValueError(f"--qos must be 0 or 1, not {qos}")
    if rate < 0:
        raise ValueError(f"--rate must be 0 (as fast as the broker takes) or more, not {rate}")
    topics = topics or Topics()
    n = connections or len(specs)
    if not 1 <= n <= len(specs):
        raise ValueError(f"--connections must be between 1 and the {len(specs)} devices, not {n}")
    devices = [ReadingTemplate(s, topics) for s in specs]
    total = messages if messages is not None else sys.maxsize
    conns = [
        _Connection(devices[i::n], total // n + (i < total % n), qos, max(1, window), math.inf)
        for i in range(n)
    ]
    payload_bytes = len(devices[0].next_payload(wall_clock_ts()))
    devices[0].seq = 0
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(_client(endpoint, i)) for i in range(n)]
        start = time.perf_counter()
        for c in conns:
            c.deadline = start + duration_s if duration_s is not None else math.inf
        per_conn_rate = rate / n if rate else 0.0

        def pacer() -> Callable[[], float] | None:
            if not rate:
                return None
            return lambda: (time.perf_counter() - start) * per_conn_rate

        work = [
            asyncio.create_task(c.run(cl, pacer())) for c, cl in zip(conns, clients, strict=True)
        ]
        reporter = asyncio.create_task(_report(conns, start, on_progress, progress_every_s))
        try:
            await asyncio.gather(*work)
        finally:
            reporter.cancel()
            for task in work:
                task.cancel()
            await asyncio.gather(reporter, *work, return_exceptions=True)
        end = max(c.last_ack_at for c in conns)
    return LoadResult(sum(c.acked for c in conns), end - start, n, qos, payload_bytes)


def _client(endpoint: MqttEndpoint, i: int) -> MqttLink:
    return MqttLink(
        endpoint,
        client_id=f"load-{i}-{secrets.token_hex(4)}",
        # paho's own in-flight limit rescans every queued message on each ack (O(window));
        # _Connection keeps the window itself, so paho is told there is none.
        max_inflight=0,
        connect_timeout_s=60,
    )


async def _report(
    conns: list[_Connection],
    start: float,
    on_progress: Callable[[str], None] | None,
    every_s: float,
) -> None:
    if on_progress is None:
        return
    total = sum(c.quota for c in conns)
    of = f"/{total}" if total < sys.maxsize // 2 else ""
    while True:
        await asyncio.sleep(every_s)
        acked = sum(c.acked for c in conns)
        elapsed = time.perf_counter() - start
        on_progress(f"load: {acked}{of} acknowledged, {acked / elapsed:.0f} msg/s")
