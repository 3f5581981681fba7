"""Simulated devices for the simulator tests, and what watches them: a small fleet made from
the contract (``make``, ``FLEET``), and subscribers to a test's topic root that record what the
broker delivered (``watching``, ``persistent_watcher``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import Channel, Kind, Topics
from simulators import MqttEndpoint
from tests.support.clients import subscribed

WAIT_S = 20.0
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"  # the shipped scenario files


@dataclass(frozen=True)
class Dev:
    """Stands in for ``seeds.ScenarioDevice``."""

    kind: Kind
    device_id: str
    meta: dict[str, Any] = field(default_factory=dict)


def _sector(n: int, technology: str = "4G") -> dict[str, Any]:
    return {
        "sector": n,
        "azimuth_deg": (n - 1) * 120.0 % 360,
        "tilt_deg": 4.0,
        "band_mhz": 1800.0,
        "technology": technology,
        "tx_power_dbm": 43.0,
        "beamwidth_deg": 65.0,
    }


def make(kind: Kind, device_id: str, interval_s: int = 60) -> Dev:
    meta: dict[str, Any] = {
        "device_id": device_id,
        "name": f"Test {device_id}",
        "lat": 13.77,
        "lon": 109.22,
        "interval_s": interval_s,
    }
    if kind is Kind.BTS:
        meta["operator"] = "viettel"
        meta["sectors"] = [_sector(1), _sector(2), _sector(3), _sector(4, "3G")]
    if kind is Kind.BROADBAND:
        meta["households_passed"] = 4000
        meta["communes_served"] = [21550]
    return Dev(kind, device_id, meta)


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A subscriber to one topic root that can wait for a condition on what it has seen."""

    def __init__(self, client: aiomqtt.Client, topics: Topics) -> None:
        self.client, self.topics = client, topics
        self.seen: list[Seen] = []
        self._changed = asyncio.Event()

    def take(self, m: aiomqtt.Message) -> None:
        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
        self.seen.append(Seen(str(m.topic), payload, m.retain))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def on(self, kind: Kind, device_id: str, channel: Channel) -> list[Seen]:
        return self.on_topic(self.topics.device(kind, device_id, channel))

    def on_topic(self, topic: str) -> list[Seen]:
        return [s for s in self.seen if s.topic == topic]


@contextlib.asynccontextmanager
async def watching(mqtt_url: str, protocol: int, topics: Topics) -> AsyncIterator[Watcher]:
    e = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    async with aiomqtt.Client(
        e.host,
        e.port,
        username=e.username,
        password=e.password,
        protocol=e.protocol_version,
        tls_params=e.tls_parameters(),
    ) as client:
        watcher = Watcher(client, topics)
        async with subscribed(client, f"{topics.root}/#", watcher.take):
            yield watcher


def json_of(seen: Seen) -> dict[str, Any]:
    value: dict[str, Any] = msgspec.json.decode(seen.payload)
    return value


FLEET = [
    make(Kind.BTS, "BTS-T-01"),
    make(Kind.BTS, "BTS-T-02"),
    make(Kind.CAMERA, "CAM-T-01"),
    make(Kind.BROADBAND, "OLT-T-01"),
    make(Kind.CAMERA, "CAM-T-02"),
    Dev(Kind.PROBE, "PRB-T-01", {"device_id": "PRB-T-01", "lat": 13.7, "lon": 109.2}),
]


def readings_of(seen: Seen) -> list[dict[str, Any]]:
    """A telemetry message's readings: one object, or a catch-up array of them."""
    value = msgspec.json.decode(seen.payload)
    return value if isinstance(value, list) else [value]


@contextlib.asynccontextmanager
async def persistent_watcher(
    url: str, protocol: int, topics: Topics, client_id: str, seen: list[Seen]
) -> AsyncIterator[aiomqtt.Client]:
    """A subscriber whose session (and QoS 1 queue) the broker keeps while it is away."""
    e = MqttEndpoint.parse(url, protocol=protocol)
    props = None
    if protocol == 5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
    async with aiomqtt.Client(
        e.host,
        e.port,
        identifier=client_id,
        protocol=e.protocol_version,
        clean_session=None if protocol == 5 else False,
        clean_start=False,
        properties=props,
    ) as client:

        def take(m: aiomqtt.Message) -> None:
            assert isinstance(m.payload, bytes)
            seen.append(Seen(str(m.topic), m.payload, m.retain))

        async with subscribed(client, f"{topics.root}/+/+/telemetry", take):
            yield client
