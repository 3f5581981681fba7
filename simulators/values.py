"""Realistic readings per device kind, shaped by the metric declarations in ``devices.metrics``.

Each simulated device has a :class:`DeviceCondition` (its physical state, mutable, changed live
by scenarios or a field engineer) and a reading source that turns condition + simulated time
into one reading. A reading's keys are exactly the kind's declared metric names and every number
is clamped into its declared range, so whatever a scenario does, the payload stays valid.

The numbers below (traffic curve, cell capacities, bitrates, take-up) are plausible
illustrations chosen for the simulator, not measurements: no source is claimed for them.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from devices.kinds import Kind, PowerSource, Technology
from devices.metrics import READINGS, MetricSpec, MetricType

# Bình Định keeps Indochina Time all year (UTC+7, no daylight saving).
LOCAL_TZ = timezone(timedelta(hours=7))

# Relative mobile traffic by local hour (1.0 = busy hour, 20:00): quiet before dawn, a morning
# rise, a plateau through the day and an evening peak — the usual shape of a cellular day.
TRAFFIC_BY_HOUR: tuple[float, ...] = (
    0.35, 0.22, 0.15, 0.12, 0.12, 0.18, 0.35, 0.55, 0.70, 0.78, 0.80, 0.82,
    0.78, 0.72, 0.74, 0.78, 0.80, 0.84, 0.90, 0.97, 1.00, 0.95, 0.78, 0.55,
)  # fmt: skip

# Busy-hour active users one cell carries at full site load, by technology.
CELL_PEAK_USERS: dict[str, int] = {
    Technology.G2.value: 40,
    Technology.G3.value: 80,
    Technology.G4.value: 200,
}
BATTERY_DRAIN_PCT_PER_H = 12.5  # about 8 h on battery
BATTERY_CHARGE_PCT_PER_H = 20.0
CAMERA_BITRATE_KBPS = 4096.0  # 1080p H.264 at 25 fps
STORAGE_FILL_PCT_PER_DAY = 0.8
ONT_TAKE_UP = 0.6  # ONTs provisioned per household passed


@dataclass(slots=True)
class DeviceCondition:
    """What is true of a device right now; generators read it, scenarios and engineers set it.

    Fields that do not apply to a kind are ignored by it. Slowly varying quantities
    (``battery_pct``, ``storage_free_pct``) live here too, so they can be set live as well.
    """

    online: bool = True  # False: the device is dark, its link drops (the broker fires the will)
    # False: powered and measuring, but its network path to the broker is cut (fibre, radio):
    # the link drops and readings wait in the outbox until the path is back.
    reachable: bool = True
    power_source: PowerSource = PowerSource.MAINS  # BTS: BATTERY drains battery_pct
    battery_pct: float = 100.0  # BTS: at 0 on battery the site goes dark (online = False)
    sectors_down: set[int] = field(default_factory=set)  # BTS: sector numbers off air
    backhaul_up: bool = True  # BTS
    video_online: bool = True  # camera stream
    tamper: bool = False  # camera
    storage_free_pct: float | None = None  # camera: None until first reading picks one
    uplink_up: bool = True  # broadband


class ReadingSource(Protocol):
    condition: DeviceCondition

    def reading(self, at: datetime) -> dict[str, Any]:
        """One reading's metrics at simulated time ``at`` (no device_id, ts or seq)."""
        ...


def traffic_level(at: datetime) -> float:
    """Relative traffic (0-1) at ``at``, interpolated between the hourly values."""
    local = at.astimezone(LOCAL_TZ)
    hour = local.hour + local.minute / 60 + local.second / 3600
    i = int(hour) % 24
    frac = hour - int(hour)
    return TRAFFIC_BY_HOUR[i] * (1 - frac) + TRAFFIC_BY_HOUR[(i + 1) % 24] * frac


def daily_cycle(at: datetime, low: float, high: float, peak_hour: float) -> float:
    """A cosine day between ``low`` and ``high`` peaking at ``peak_hour`` local time."""
    local = at.astimezone(LOCAL_TZ)
    hour = local.hour + local.minute / 60
    mid, amplitude = (low + high) / 2, (high - low) / 2
    return mid + amplitude * math.cos(2 * math.pi * (hour - peak_hour) / 24)


def conform(kind: Kind, values: Mapping[str, Any]) -> dict[str, Any]:
    """The reading in declaration order, numbers clamped into their declared ranges.

    Raises when the keys are not exactly the kind's declared metrics: a generator that forgot
    or invented a metric is a programming error, not something to send.
    """
    names, bounds = _BOUNDS[kind]
    if values.keys() != names:
        raise ValueError(
            f"{kind.value} reading keys differ from the declaration: "
            f"missing {sorted(names - values.keys())}, extra {sorted(values.keys() - names)}"
        )
    out = {}
    for name, numeric, lo, hi in bounds:  # a fleet calls this thousands of times a second
        value = values[name]
        if value is None:  # not measured (a probe's SINR on 2G): sent as null
            pass
        elif numeric is MetricType.FLOAT:
            value = round(min(max(float(value), lo), hi), _DECIMALS.get(name, 2))
        elif numeric is MetricType.INT:
            value = min(max(round(value), int(lo)), int(hi))
        out[name] = value
    return out


def _lo(spec: MetricSpec) -> float:
    return -math.inf if spec.min is None else spec.min


def _hi(spec: MetricSpec) -> float:
    return math.inf if spec.max is None else spec.max


# Decimals a number is sent with: two, but positions to the metre (a probe's lat, lon).
_DECIMALS = {"lat": 6, "lon": 6}
# Per kind: the declared names, and (name, type, low, high) in declaration order.
_BOUNDS: dict[Kind, tuple[frozenset[str], tuple[tuple[str, MetricType, float, float], ...]]] = {
    kind: (
        frozenset(s.name for s in specs),
        tuple((s.name, s.type, _lo(s), _hi(s)) for s in specs),
    )
    for kind, specs in READINGS.items()
}


def _floor_of(kind: Kind, name: str) -> float:
    """The declared minimum of a metric (what an instrument reports when it reads nothing)."""
    spec = next(s for s in READINGS[kind] if s.name == name)
    return _lo(spec)


def _ceiling_of(kind: Kind, name: str) -> float:
    spec = next(s for s in READINGS[kind] if s.name == name)
    return _hi(spec)


class _Source:
    """What every kind's source shares: its condition, a seeded RNG and simulated elapsed time."""

    kind: Kind

    def __init__(
        self, device_id: str, meta: Mapping[str, Any], condition: DeviceCondition | None = None
    ) -> None:
        self.device_id = device_id
        self.meta = meta
        self.condition = condition or DeviceCondition()
        self.rng = random.Random(zlib.crc32(device_id.encode()))  # the same device, the same day
        self._last: datetime | None = None
        self._setup(meta)

    def _setup(self, meta: Mapping[str, Any]) -> None:
        """What a kind derives from its birth record, once the shared state is in place."""

    def _elapsed_h(self, at: datetime) -> float:
        """Simulated hours since the previous reading (0 for the first)."""
        last, self._last = self._last, at
        return 0.0 if last is None else max(0.0, (at - last).total_seconds() / 3600)

    def _noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)


class BtsValues(_Source):
    kind = Kind.BTS

    def _setup(self, meta: Mapping[str, Any]) -> None:
        self.sectors = sorted(meta.get("sectors", []), key=lambda s: int(s["sector"]))
        self.sector_numbers = [int(s["sector"]) for s in self.sectors]
        self.peak_users = [CELL_PEAK_USERS.get(str(s.get("technology")), 100) for s in self.sectors]
        self.site_load = self.rng.uniform(0.3, 1.1)  # rural mast … busy town site

    def reading(self, at: datetime) -> dict[str, Any]:
        c = self.condition
        self._update_battery(self._elapsed_h(at))
        up = [n not in c.sectors_down for n in self.sector_numbers]
        carrying = [p for p, on in zip(self.peak_users, up, strict=True) if on and c.backhaul_up]
        traffic = traffic_level(at) * self.site_load
        # One draw for the site: its cells rise and fall together with the hour.
        users = sum(carrying) * traffic * (1 + self._noise(0.08 / max(1, len(carrying)) ** 0.5))
        prb = 5 + 85 * traffic + self._noise(3) if carrying else 0.0
        return conform(
            self.kind,
            {
                "power_source": c.power_source.value,
                "battery_pct": c.battery_pct,
                "cabinet_temp_c": daily_cycle(at, 25, 40, peak_hour=15) + self._noise(0.3),
                "sectors_up": up,
                "active_users": users,
                "prb_util_pct": prb,
                "backhaul_up": c.backhaul_up,
            },
        )

    def _update_battery(self, hours: float) -> None:
        c = self.condition
        if c.power_source is PowerSource.BATTERY:
            c.battery_pct = max(0.0, c.battery_pct - BATTERY_DRAIN_PCT_PER_H * hours)
            if c.battery_pct == 0.0:
                c.online = False  # batteries flat: the site goes dark
        else:
            c.battery_pct = min(100.0, c.battery_pct + BATTERY_CHARGE_PCT_PER_H * hours)


class CameraValues(_Source):
    kind = Kind.CAMERA

    def _setup(self, meta: Mapping[str, Any]) -> None:
        if self.condition.storage_free_pct is None:
            self.condition.storage_free_pct = self.rng.uniform(40, 90)

    def reading(self, at: datetime) -> dict[str, Any]:
        c = self.condition
        free = c.storage_free_pct if c.storage_free_pct is not None else 100.0
        free = max(0.0, free - STORAGE_FILL_PCT_PER_DAY * self._elapsed_h(at) / 24)
        c.storage_free_pct = free
        streaming = c.video_online
        # Night scenes (sensor noise, IR) cost the encoder a little more.
        night = 1.0 - traffic_level(at)
        bitrate = CAMERA_BITRATE_KBPS * (0.9 + 0.2 * night) * (1 + self._noise(0.05))
        return conform(
            self.kind,
            {
                "online": streaming,
                "fps": 25 + self._noise(0.2) if streaming else 0.0,
                "bitrate_kbps": bitrate if streaming else 0.0,
                "recording": streaming and free > 0,
                "storage_free_pct": free,
                "tamper": c.tamper,
            },
        )


class BroadbandValues(_Source):
    kind = Kind.BROADBAND

    def _setup(self, meta: Mapping[str, Any]) -> None:
        explicit = meta.get("onts_total")
        passed = int(meta.get("households_passed", 0))
        self.onts_total = int(explicit) if explicit is not None else round(passed * ONT_TAKE_UP)
        self.rx_dbm = -20 + self.rng.uniform(-2, 2)  # each link has its own budget

    def reading(self, at: datetime) -> dict[str, Any]:
        c = self.condition
        traffic = traffic_level(at)
        if c.uplink_up:
            rx = self.rx_dbm + self._noise(0.2)
            latency = 4 + 6 * traffic + abs(self._noise(1))
            loss = 0.05 * traffic + abs(self._noise(0.02))
        else:  # loss of signal: the receiver reads its floor, nothing gets through
            rx = _floor_of(self.kind, "optical_rx_dbm")
            latency = _ceiling_of(self.kind, "latency_ms")
            loss = 100.0
        online_share = 0.97 - 0.03 * (1 - traffic) + self._noise(0.005)
        return conform(
            self.kind,
            {
                "uplink_up": c.uplink_up,
                "optical_rx_dbm": rx,
                "onts_online": min(self.onts_total, self.onts_total * online_share),
                "onts_total": self.onts_total,
                "latency_ms": latency,
                "packet_loss_pct": loss,
            },
        )


SourceFactory = Callable[[str, Mapping[str, Any], DeviceCondition | None], ReadingSource]

# The kinds the fleet simulates; probes (routes, radio model) come with their own simulator.
SOURCES: dict[Kind, SourceFactory] = {
    Kind.BTS: BtsValues,
    Kind.CAMERA: CameraValues,
    Kind.BROADBAND: BroadbandValues,
}


def reading_source(
    kind: Kind,
    device_id: str,
    meta: Mapping[str, Any],
    condition: DeviceCondition | None = None,
) -> ReadingSource:
    try:
        factory = SOURCES[kind]
    except KeyError:
        raise ValueError(f"no reading source for {kind.value} devices") from None
    return factory(device_id, meta, condition)
