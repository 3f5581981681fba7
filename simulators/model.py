"""One simulated device's state and what it would publish; no network here.

A :class:`DeviceModel` samples its readings on its own schedule whether or not it is connected
(a real device keeps measuring through a broker outage) and puts them in its outbox, from
which a link (one connection per device, or a gateway's shared one) sends them. While the
device is dark (``condition.online`` False: no power) it measures nothing.

``seq`` counts readings from 0 over the device's whole life. Faults that scenarios inject
(clock skew, duplicates, late or reordered readings, bursts, malformed messages) are applied
here, on the way into the outbox, so every link type sends them the same way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack

from devices.codec import RejectReason, encode
from devices.kinds import READING_CHANNEL, Channel, DeviceState, Kind
from devices.topics import DEFAULT_ROOT, Topics
from simulators.clock import SimClock, wall_clock_ts
from simulators.malformed import malformed_messages
from simulators.outbox import DEFAULT_LIMIT, Outbox, Outgoing
from simulators.values import DeviceCondition, ReadingSource, reading_source

DEFAULT_INTERVAL_S = 60.0


class DeviceSpec(Protocol):
    """What the simulator needs of a scenario device (``seeds.ScenarioDevice`` has it)."""

    @property
    def kind(self) -> Kind: ...

    @property
    def device_id(self) -> str: ...

    @property
    def meta(self) -> Mapping[str, Any]: ...


@dataclass(slots=True)
class Faults:
    """Misbehaviour a scenario switched on; each count runs down as readings are made."""

    skew_s: float = 0.0  # added to every timestamp
    duplicates: int = 0  # the next N readings go out twice
    late: int = 0  # the next N readings are held back ...
    late_by_s: float = 0.0  # ... this many real seconds after the first of them was made
    reorder: int = 0  # the next N readings go out in reverse order, once all N are made
    held: list[Outgoing] = field(default_factory=list)


class ModelOptions(TypedDict, total=False):
    """How a :class:`DeviceModel` is built, beyond its spec (each one unset: the default)."""

    topics: Topics | None  # default: the standard root
    clock: SimClock | None  # default: real time
    condition: DeviceCondition | None  # default: healthy
    outbox_limit: int  # default: outbox.DEFAULT_LIMIT
    interval_s: float | None  # simulated seconds between readings; default: the spec's
    values: ReadingSource | None  # default: the kind's simulated readings


class DeviceModel:
    def __init__(self, spec: DeviceSpec, **options: Unpack[ModelOptions]) -> None:
        self.kind = spec.kind
        self.device_id = spec.device_id
        self.meta: dict[str, Any] = dict(spec.meta)
        self.clock = options.get("clock") or SimClock()
        self.topics = options.get("topics") or Topics(DEFAULT_ROOT)
        self.values: ReadingSource = options.get("values") or reading_source(
            self.kind, self.device_id, self.meta, options.get("condition")
        )
        # Simulated seconds between readings.
        every_s = options.get("interval_s") or self.meta.get("interval_s", DEFAULT_INTERVAL_S)
        self.interval_s = float(every_s)
        self.seq = 0  # the next reading's
        self.outbox = Outbox(options.get("outbox_limit", DEFAULT_LIMIT))
        self.faults = Faults()
        self.ready = asyncio.Event()  # set when there may be something to send or announce
        self.on_change: Callable[[DeviceModel], None] | None = None
        self.meta_topic = self.topics.device(self.kind, self.device_id, Channel.META)
        self.status_topic = self.topics.device(self.kind, self.device_id, Channel.STATUS)
        self.reading_topic = self.topics.device(
            self.kind, self.device_id, READING_CHANNEL[self.kind]
        )
        self._rng = random.Random()
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = 0.0

    @property
    def condition(self) -> DeviceCondition:
        return self.values.condition

    @property
    def real_interval_s(self) -> float:
        return self.clock.real_interval_s(self.interval_s)

    # -- what it publishes ---------------------------------------------------------------------

    def birth_record(self) -> dict[str, Any]:
        """The retained ``meta`` payload, announcing the real reporting interval."""
        announced = self.clock.announced_interval_s(self.interval_s)
        return {**self.meta, "device_id": self.device_id, "interval_s": announced}

    def birth(self) -> Outgoing:
        return Outgoing(self.meta_topic, encode(self.birth_record()), 0, False, retain=True)

    def status(self, state: DeviceState, reason: str | None = None) -> Outgoing:
        body: dict[str, Any] = {"device_id": self.device_id, "state": state.value}
        body["ts"] = wall_clock_ts(self.faults.skew_s)
        if reason is not None:
            body["reason"] = reason
        return Outgoing(self.status_topic, encode(body), 0, False, retain=True)

    def will(self) -> Outgoing:
        """What the broker publishes for the device when its link dies without DISCONNECT."""
        body = {"device_id": self.device_id, "state": "offline", "reason": "will"}
        return Outgoing(self.status_topic, encode(body), 0, False, retain=True)

    # -- sampling --------------------------------------------------------------------------------

    def start_sampling(self) -> None:
        """Make a reading every ``real_interval_s`` from now on, at a random phase (once)."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._next_at = loop.time() + self._rng.uniform(0, self.real_interval_s)
        self._timer = loop.call_at(self._next_at, self._tick)

    def stop_sampling(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        if self.condition.online:
            self.sample()
        period = self.real_interval_s
        self._next_at += period
        behind = loop.time() - self._next_at
        if behind > 0:  # a slow loop: skip the missed ticks, never burst
            self._next_at += period * (behind // period + 1)
        self._timer = loop.call_at(self._next_at, self._tick)
        self.changed()

    def reading(self) -> dict[str, Any]:
        """A new reading (it takes the next ``seq``), not yet queued."""
        body: dict[str, Any] = {
            "device_id": self.device_id,
            "ts": wall_clock_ts(self.faults.skew_s),
            "seq": self.seq,
        }
        body.update(self.values.reading(self.clock.now()))
        self.seq += 1
        return body

    def sample(self, *, batchable: bool = True) -> dict[str, Any]:
        """Make one reading and queue it, through whatever faults are switched on."""
        body = self.reading()
        self._emit(Outgoing(self.reading_topic, encode(body), batchable=batchable))
        return body

    def changed(self) -> None:
        """Something to send or a condition changed: wake whoever carries this device."""
        self.ready.set()
        if self.on_change is not None:
            self.on_change(self)

    def _emit(self, item: Outgoing) -> None:
        f = self.faults
        if f.reorder:
            f.reorder -= 1
            f.held.append(item)
            if not f.reorder:
                for held in reversed(f.held):
                    self.outbox.put(_alone(held))
                f.held.clear()
        elif f.late:
            f.late -= 1
            f.held.append(item)
            if len(f.held) == 1:
                asyncio.get_running_loop().call_later(f.late_by_s, self._release_late)
        elif f.duplicates:
            f.duplicates -= 1
            self.outbox.put(_alone(item))
            self.outbox.put(_alone(item))
        else:
            self.outbox.put(item)

    def _release_late(self) -> None:
        for held in self.faults.held:
            self.outbox.put(_alone(held))
        self.faults.held.clear()
        self.faults.late = 0
        self.changed()

    # -- injected by scenarios ---------------------------------------------------------------

    def burst(self, readings: int) -> None:
        """``readings`` readings at once, each its own message (a device flushing a buffer)."""
        for _ in range(readings):
            self.sample(batchable=False)
        self.changed()

    def malformed(self, reasons: Iterable[RejectReason] = tuple(RejectReason)) -> None:
        """One broken message per reject reason, built from a good reading (which is not sent)."""
        good = {"device_id": self.device_id, "ts": wall_clock_ts(), "seq": self.seq}
        good.update(self.values.reading(self.clock.now()))
        for item in malformed_messages(self.kind, self.device_id, self.topics, good, reasons):
            self.outbox.put(item)
        self.changed()


def _alone(item: Outgoing) -> Outgoing:
    return Outgoing(item.topic, item.payload, item.readings, batchable=False)
