"""Many simulated devices on one event loop: the province's fleet, or any iterable of devices.

Each device gets a connection of its own (its will marks it offline when it dies), or, with
``gateway_size`` N > 0, devices share one connection per N of them (see ``simulators.device``:
a gateway cannot leave per-device wills). Connections open through a semaphore
(``connect_concurrency``), so thousands of devices come up without a connection storm, and
every reconnection after a broker restart goes through the same gate. A progress line (devices
connected, readings per second, readings waiting for the broker) goes out every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import islice

from devices.endpoint import MqttEndpoint
from devices.kinds import Kind
from devices.topics import DEFAULT_ROOT, Topics
from simulators.clock import SimClock
from simulators.device import Gateway, LinkOptions, SimulatedDevice
from simulators.link import Counters, Link, Observer
from simulators.model import DeviceModel, DeviceSpec, ModelOptions
from simulators.outbox import DEFAULT_LIMIT
from simulators.probes import PROBE_INTERVAL_S, ProbeValues
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
        clock: SimClock | None = None,
        connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY,
        gateway_size: int = 0,
        outbox_limit: int = DEFAULT_LIMIT,
        interval_s: float | None = None,
        observer: Observer | None = None,
        probes: Mapping[str, ProbeValues] | None = None,
    ) -> None:
        if gateway_size < 0:
            raise ValueError(
                f"gateway size must be 0 (a connection per device) or more, not {gateway_size}"
            )
        self.clock = clock or SimClock(speed=speed)
        self.counters = Counters()
        self.skipped = 0  # kinds the fleet does not simulate (probes drive their own routes)
        link: LinkOptions = {
            "counters": self.counters,
            "connect_gate": asyncio.Semaphore(connect_concurrency),
            "observer": observer,
        }
        self.devices: dict[str, SimulatedDevice] = {}  # devices with a link of their own
        self.models: dict[str, DeviceModel] = {}  # every device, whatever carries it
        self.links: list[Link] = []
        pending: list[DeviceModel] = []
        probes = probes or {}
        for spec in specs:
            values = probes.get(spec.device_id) if spec.kind is Kind.PROBE else None
            if spec.kind not in SOURCES and values is None:
                self.skipped += 1
                continue
            if spec.device_id in self.models:
                raise ValueError(f"device {spec.device_id} appears twice in the fleet")
            model: ModelOptions = {
                "topics": topics,
                "clock": self.clock,
                "outbox_limit": outbox_limit,
                "interval_s": interval_s or (PROBE_INTERVAL_S if values is not None else None),
                "values": values,
            }
            if gateway_size == 0:
                device = SimulatedDevice(spec, endpoint, link=link, **model)
                self.devices[spec.device_id] = device
                self._add(device)
                continue
            pending.append(DeviceModel(spec, **model))
        for i in range(0, len(pending), max(gateway_size, 1)):
            group = pending[i : i + gateway_size]
            self._add(Gateway(group, endpoint, gateway_id=f"{len(self.links) + 1:04d}", **link))
        # The probes measure this fleet's towers as they are: dark, cut off or a sector down.
        towers = {i: m.condition for i, m in self.models.items() if m.kind is Kind.BTS}
        for source in probes.values():
            source.scene.bind(towers)

    def _add(self, link: Link) -> None:
        self.links.append(link)
        for model in link.models:
            self.models[model.device_id] = model

    def __len__(self) -> int:
        return len(self.models)

    def start(self) -> None:
        for link in self.links:
            link.start()

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Every device sends what it holds, publishes retained ``offline`` and disconnects."""
        await asyncio.gather(*(link.stop(timeout_s) for link in self.links))

    def poke(self, device_id: str) -> None:
        """A scenario changed this device's condition: let its link act on it now."""
        self.models[device_id].changed()

    def buffered(self) -> int:
        """Messages made and not yet acknowledged by the broker, over the whole fleet."""
        return sum(len(m.outbox) for m in self.models.values())

    def dropped(self) -> int:
        """Readings lost to full outboxes."""
        return sum(m.outbox.dropped for m in self.models.values())

    def progress_line(self, msgs_per_s: float | None = None) -> str:
        c = self.counters
        rate = "stopped" if msgs_per_s is None else f"{msgs_per_s:.0f} msg/s"
        return (
            f"fleet: {c.connected}/{len(self.models)} connected, {rate}, "
            f"{c.published} readings, {self.buffered()} buffered, {self.dropped()} dropped, "
            f"{c.connection_losses} losses, {c.connect_failures} failed connects"
        )


async def run_fleet(
    devices: Iterable[DeviceSpec],
    *,
    mqtt_url: str | None = None,
    endpoint: MqttEndpoint | None = None,
    topic_root: str = DEFAULT_ROOT,
    speed: float = 1.0,
    limit: int | None = None,
    protocol: int = 5,
    on_progress: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None,
    connect_concurrency: int = DEFAULT_CONNECT_CONCURRENCY,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    gateway_size: int = 0,
    probes: Mapping[str, ProbeValues] | None = None,
) -> Counters:
    """Run ``devices`` (the first ``limit`` of them) until ``stop_event`` is set or cancelled.

    Probes among them drive with the reading sources in ``probes`` (``simulators.probes``),
    else they are left out. Either way every device publishes retained ``offline`` and
    disconnects before this returns (or re-raises the cancellation). Returns the fleet's final
    counters.
    """
    if endpoint is None:
        if mqtt_url is None:
            raise ValueError("run_fleet needs an mqtt_url or an endpoint")
        endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    specs = devices if limit is None else islice(devices, limit)
    fleet = Fleet(
        specs,
        endpoint,
        topics=Topics(topic_root),
        speed=speed,
        connect_concurrency=connect_concurrency,
        gateway_size=gateway_size,
        probes=probes,
    )
    report = on_progress or (lambda line: log.info("%s", line))
    if fleet.skipped:
        log.info("fleet: %d devices of kinds it does not simulate left out", fleet.skipped)
    await run_until(fleet, stop_event or asyncio.Event(), report, progress_every_s)
    return fleet.counters


async def run_until(
    fleet: Fleet,
    stop_event: asyncio.Event,
    report: Callable[[str], None],
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
) -> None:
    """Start ``fleet``, report its progress until ``stop_event``, then stop it cleanly."""
    fleet.start()
    try:
        await _report_until(fleet, stop_event, report, progress_every_s)
    finally:
        # Also on cancellation: a clean shutdown leaves a truthful retained status per device.
        await asyncio.shield(fleet.stop())
        report(fleet.progress_line())


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


def province_devices(province: str | int = 52) -> list[DeviceSpec]:
    """Every device of a province's scenario (``seeds``; GSO code 52: Bình Định), or of
    several ("Bắc Giang, Thái Nguyên"). The shell passes the configured provinces
    (IOC_PROVINCE): simulators do not read the settings."""
    from seeds import load_scenario
    from seeds.national import province_codes

    return [d for code in province_codes(province) for d in load_scenario(code).devices()]
