"""Many simulated devices on one event loop: the province's fleet, or any iterable of devices.

Connections open through a semaphore (``connect_concurrency``), so thousands of devices come up
without a connection storm, and every reconnection after a broker restart goes through the
same gate. A progress line (devices connected, readings per second) goes out every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from itertools import islice

from devices.endpoint import MqttEndpoint
from devices.topics import DEFAULT_ROOT, Topics
from simulators.clock import SimClock
from simulators.device import Counters, DeviceSpec, SimulatedDevice
from simulators.values import SOURCES

log = logging.getLogger(__name__)

DEFAULT_CONNECT_CONCURRENCY = 50
DEFAULT_PROGRESS_EVERY_S = 5.0
STOP_TIMEOUT_S = 15.0


class Fleet:
    """The simulated devices of one run, by id, so scenarios can reach one and change it."""

    def __init__(
        self,
        specs: Iterable[DeviceSpec],
        endpoint: MqttEndpoint,
        *,
        topics: Topics | None = None,
        speed: float = 1.0,
        connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY,
    ) -> None:
        self.clock = SimClock(speed=speed)
        self.counters = Counters()
        self.skipped = 0  # kinds the fleet does not simulate (probes drive their own routes)
        gate = asyncio.Semaphore(connect_concurrency)
        self.devices: dict[str, SimulatedDevice] = {}
        for spec in specs:
            if spec.kind not in SOURCES:
                self.skipped += 1
                continue
            self.devices[spec.device_id] = SimulatedDevice(
                spec,
                endpoint,
                topics=topics,
                clock=self.clock,
                counters=self.counters,
                connect_gate=gate,
            )

    def start(self) -> None:
        for device in self.devices.values():
            device.start()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Every device publishes its retained ``offline`` and disconnects."""
        await asyncio.gather(*(d.stop(timeout_s) for d in self.devices.values()))

    def progress_line(self, msgs_per_s: float | None = None) -> str:
        c = self.counters
        rate = "stopped" if msgs_per_s is None else f"{msgs_per_s:.0f} msg/s"
        return (
            f"fleet: {c.connected}/{len(self.devices)} connected, {rate}, "
            f"{c.published} readings, {c.connection_losses} losses, "
            f"{c.connect_failures} failed connects"
        )


async def run_fleet(
    devices: Iterable[DeviceSpec],
    *,
    mqtt_url: str,
    topic_root: str = DEFAULT_ROOT,
    speed: float = 1.0,
    limit: int | None = None,
    protocol: int = 5,
    on_progress: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None,
    connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
) -> Counters:
    """Run ``devices`` (the first ``limit`` of them) until ``stop_event`` is set or cancelled.

    Either way every device publishes retained ``offline`` and disconnects before this returns
    (or re-raises the cancellation). Returns the fleet's final counters.
    """
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    specs = devices if limit is None else islice(devices, limit)
    fleet = Fleet(
        specs,
        endpoint,
        topics=Topics(topic_root),
        speed=speed,
        connect_concurrency=connect_concurrency,
    )
    report = on_progress or (lambda line: log.info("%s", line))
    if fleet.skipped:
        log.info("fleet: %d devices of kinds it does not simulate left out", fleet.skipped)
    stop_event = stop_event or asyncio.Event()
    fleet.start()
    try:
        await _report_until(fleet, stop_event, report, progress_every_s)
    finally:
        # Also on cancellation: a clean shutdown leaves a truthful retained status per device.
        await asyncio.shield(fleet.stop())
        report(fleet.progress_line())
    return fleet.counters


async def _report_until(
    fleet: Fleet, stop_event: asyncio.Event, report: Callable[[str], None], every_s: float
) -> None:
    while not stop_event.is_set():
        before, t0 = fleet.counters.published, time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop_event.wait()
        elapsed_s = time.monotonic() - t0
        report(fleet.progress_line((fleet.counters.published - before) / max(elapsed_s, 1e-9)))


def province_devices() -> list[DeviceSpec]:
    """Every device of the Bình Định scenario (``seeds``)."""
    from seeds import load_scenario

    return list(load_scenario().devices())
