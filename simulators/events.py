"""What a scenario can do to a device: each event's name, the kinds it applies to, its
parameters, and its effect on the device's condition or faults.

Effects only change state; the device's link and sampler act on it (a dark device drops its
link so its will fires, a cut-off device keeps measuring into its outbox, and so on).
Durations in parameters are simulated time, except ``clock_skew``'s offset, which is how far
the device's own clock is wrong and does not scale with the acceleration.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devices.codec import RejectReason
from devices.kinds import Kind, PowerSource
from simulators.model import DeviceModel

ALL_KINDS = frozenset({Kind.BTS, Kind.CAMERA, Kind.BROADBAND})
REQUIRED = object()
_DURATION = re.compile(
    r"^(?P<sign>[+-])?(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_CLOCK = re.compile(r"^(?P<h>\d+):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?$")


def duration_s(value: Any, *, signed: bool = False) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"`` or ``"01:30"`` (h:mm) → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        clock, match = _CLOCK.match(text), _DURATION.match(text)
        if clock:
            seconds = int(clock["h"]) * 3600 + int(clock["m"]) * 60 + int(clock["s"] or 0)
        elif match and text.lstrip("+-"):
            units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
            seconds = sum(float(match[u] or 0) * f for u, f in units.items())
            seconds = -seconds if match["sign"] == "-" else seconds
        else:
            raise ValueError(f"{value!r} is not a duration like 90s, 30m, 1h30m or 01:30")
    if seconds < 0 and not signed:
        raise ValueError(f"{value!r} is a negative duration")
    return seconds


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a whole number of at least 1")
    return value


def _sector(value: Any) -> int:
    return _count(value)


def _battery_range(value: Any) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, int | float) else tuple(value)
    if not 0 <= float(lo) <= float(hi) <= 100:
        raise ValueError(f"{value!r} is not a charge or a [low, high] range within 0-100 %")
    return float(lo), float(hi)


def _percent(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ValueError(f"{value!r} is not a percentage within 0-100")
    return float(value)


def _reasons(value: Any) -> tuple[RejectReason, ...]:
    names = [value] if isinstance(value, str) else list(value)
    known = ", ".join(r.value for r in RejectReason)
    try:
        return tuple(RejectReason(n) for n in names)
    except ValueError:
        raise ValueError(f"{value!r} holds a reason that is not one of: {known}") from None


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    parse: Callable[[Any], Any]
    default: Any = REQUIRED


@dataclass(frozen=True, slots=True)
class Context:
    """What an effect may need beyond the device: the run's acceleration and randomness."""

    speed: float
    rng: random.Random


Effect = Callable[[DeviceModel, Mapping[str, Any], Context], None]


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    help: str
    kinds: frozenset[Kind]
    params: tuple[Param, ...]
    effect: Effect


def _set(**changes: Any) -> Effect:
    def effect(m: DeviceModel, _p: Mapping[str, Any], _c: Context) -> None:
        for key, value in changes.items():
            setattr(m.condition, key, value)

    return effect


def _sector_down(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.condition.sectors_down.add(p["sector"])


def _sector_up(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.condition.sectors_down.discard(p["sector"])


def _power_cut(m: DeviceModel, p: Mapping[str, Any], c: Context) -> None:
    if m.kind is Kind.BTS:  # sites have batteries; they go dark when these are flat
        m.condition.power_source = PowerSource.BATTERY
        m.condition.battery_pct = c.rng.uniform(*p["battery_pct"])
    else:
        m.condition.online = False


def _power_restored(m: DeviceModel, _p: Mapping[str, Any], _c: Context) -> None:
    m.condition.power_source = PowerSource.MAINS
    m.condition.online = True


def _fibre(up: bool) -> Effect:
    def effect(m: DeviceModel, _p: Mapping[str, Any], _c: Context) -> None:
        if m.kind is Kind.BROADBAND:
            m.condition.uplink_up = up
        elif m.kind is Kind.BTS:
            m.condition.backhaul_up = up
        else:  # a camera on that fibre loses its way to the broker, not its power
            m.condition.reachable = up

    return effect


def _storage(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.condition.storage_free_pct = p["free_pct"]  # it fills on from there at the usual rate


def _skew(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.faults.skew_s = p["offset"]


def _late(m: DeviceModel, p: Mapping[str, Any], c: Context) -> None:
    m.faults.late, m.faults.late_by_s = p["readings"], p["delay"] / c.speed


def _reorder(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.faults.reorder = p["readings"]


def _duplicates(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.faults.duplicates = p["readings"]


def _malformed(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.malformed(p["reasons"])


def _burst(m: DeviceModel, p: Mapping[str, Any], _c: Context) -> None:
    m.burst(p["readings"])


def _never(_m: DeviceModel, _p: Mapping[str, Any], _c: Context) -> None:
    raise AssertionError("flapping is expanded into down and up when the file is read")


_READINGS = Param("readings", _count)
_SECTOR = Param("sector", _sector)
_BTS = frozenset({Kind.BTS})
_CAMERA = frozenset({Kind.CAMERA})
_types = [
    EventType("down", "the device goes dark (no power): its will fires", ALL_KINDS, (),
              _set(online=False)),
    EventType("up", "the device is powered again and reconnects", ALL_KINDS, (),
              _set(online=True)),
    EventType("sector_down", "one sector of a BTS goes off air", _BTS, (_SECTOR,), _sector_down),
    EventType("sector_up", "the sector is back on air", _BTS, (_SECTOR,), _sector_up),
    EventType("power_cut",
              "mains lost: BTS run on battery (charge from battery_pct) and go dark when it is "
              "flat; cameras and broadband nodes go dark at once",
              ALL_KINDS, (Param("battery_pct", _battery_range, (60.0, 100.0)),), _power_cut),
    EventType("power_restored", "mains back: every device powered and reconnecting", ALL_KINDS,
              (), _power_restored),
    EventType("fibre_cut",
              "the fibre behind a broadband node is cut: its uplink goes down, BTS in the "
              "communes it serves lose backhaul, cameras there lose their way to the broker "
              "(and buffer)",
              ALL_KINDS, (), _fibre(False)),
    EventType("fibre_restored", "the fibre is spliced: all of the above comes back", ALL_KINDS,
              (), _fibre(True)),
    EventType("tamper", "a camera is covered or turned away", _CAMERA, (), _set(tamper=True)),
    EventType("tamper_cleared", "the camera sees again", _CAMERA, (), _set(tamper=False)),
    # The recorder fills by itself only slowly (simulators.values: 0.8 %/day), too slowly for a
    # scenario to reach camera_storage_low; these set the level at once.
    EventType("storage_low", "a camera's recorder is nearly full: `free_pct` % free",
              _CAMERA, (Param("free_pct", _percent, 5.0),), _storage),
    EventType("storage_cleared", "the recorder is emptied or its card swapped: `free_pct` % free",
              _CAMERA, (Param("free_pct", _percent, 95.0),), _storage),
    EventType("flapping", "the device goes down and up again every `period`, `times` times",
              ALL_KINDS, (Param("period", duration_s), Param("times", _count)), _never),
    EventType("clock_skew",
              "the device's clock is `offset` wrong (e.g. +2h, -10m; real time, not scaled)",
              ALL_KINDS, (Param("offset", lambda v: duration_s(v, signed=True)),), _skew),
    EventType("late", "the next `readings` readings arrive `delay` late", ALL_KINDS,
              (_READINGS, Param("delay", duration_s)), _late),
    EventType("out_of_order", "the next `readings` readings arrive in reverse order", ALL_KINDS,
              (_READINGS,), _reorder),
    EventType("duplicates", "the next `readings` readings are each sent twice", ALL_KINDS,
              (_READINGS,), _duplicates),
    EventType("malformed",
              "one broken message per reject reason in `reasons` (default: every reason)",
              ALL_KINDS, (Param("reasons", _reasons, tuple(RejectReason)),), _malformed),
    EventType("burst", "`readings` readings at once, each its own message", ALL_KINDS,
              (_READINGS,), _burst),
]  # fmt: skip
EVENTS: dict[str, EventType] = {t.name: t for t in _types}
