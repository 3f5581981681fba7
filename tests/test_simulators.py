"""Simulators against the contract and a real broker: births, wills, readings the codec accepts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import READING_CHANNEL, READINGS, Channel, Codec, Kind, PowerSource, Readings, Topics
from devices import encode as encode_json
from ioc.brokers import start_broker
from simulators import (
    DeviceCondition,
    Fleet,
    MqttEndpoint,
    SimClock,
    SimulatedDevice,
    run_fleet,
)
from simulators.values import SOURCES, conform, reading_source
from tests.support.polling import wait_until

WAIT_S = 20.0
DAY = datetime(2026, 11, 24, tzinfo=UTC)


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


def decode_reading(codec: Codec, kind: Kind, payload: dict[str, Any]) -> Any:
    topic = codec.topics.device(kind, payload["device_id"], READING_CHANNEL[kind])
    decoded = codec.decode(topic, encode_json(payload), datetime.now(UTC))
    assert decoded.rejections == [], decoded.rejections
    assert isinstance(decoded.record, Readings)
    return decoded.record.items[0]


# -- readings, without a broker ---------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SOURCES))
def test_readings_have_exactly_the_declared_metrics_and_validate(kind: Kind) -> None:
    codec = Codec()
    conditions = [
        DeviceCondition(),
        DeviceCondition(power_source=PowerSource.BATTERY, battery_pct=3.0, sectors_down={2}),
        DeviceCondition(backhaul_up=False, video_online=False, tamper=True, uplink_up=False),
        DeviceCondition(storage_free_pct=0.0),
    ]
    for condition in conditions:
        source = reading_source(kind, "DEV-1", make(kind, "DEV-1").meta, condition)
        for hour in range(0, 48, 1):
            metrics = source.reading(DAY + timedelta(hours=hour))
            assert list(metrics) == [s.name for s in READINGS[kind]]
            payload = {"device_id": "DEV-1", "ts": DAY.isoformat(), "seq": hour, **metrics}
            decode_reading(codec, kind, payload)


def test_a_reading_with_a_metric_missing_or_invented_is_refused() -> None:
    good = reading_source(Kind.CAMERA, "CAM-1", {}).reading(DAY)
    with pytest.raises(ValueError, match="missing"):
        conform(Kind.CAMERA, {k: v for k, v in good.items() if k != "fps"})
    with pytest.raises(ValueError, match="extra"):
        conform(Kind.CAMERA, {**good, "colour": "red"})
    assert conform(Kind.CAMERA, {**good, "fps": 1e9})["fps"] == 120.0  # clamped to the range


def test_bts_follows_the_day_and_its_condition() -> None:
    source = reading_source(Kind.BTS, "BTS-1", make(Kind.BTS, "BTS-1").meta)
    # 20:00 and 03:00 local (UTC+7)
    busy, quiet = DAY + timedelta(hours=13), DAY + timedelta(hours=20)
    assert source.reading(busy)["active_users"] > 2 * source.reading(quiet)["active_users"]
    temps = [source.reading(DAY + timedelta(hours=h))["cabinet_temp_c"] for h in range(24)]
    assert 24 < min(temps) < 28 and 37 < max(temps) < 41

    source.condition.sectors_down = {2}
    assert source.reading(busy)["sectors_up"] == [True, False, True, True]
    source.condition.backhaul_up = False
    off_air = source.reading(busy)
    assert off_air["active_users"] == 0 and off_air["prb_util_pct"] == 0

    source.condition.power_source = PowerSource.BATTERY
    readings = [source.reading(busy + timedelta(hours=h)) for h in range(1, 12)]
    assert [r["power_source"] for r in readings] == ["battery"] * 11
    levels = [r["battery_pct"] for r in readings]
    assert levels == sorted(levels, reverse=True) and levels[-1] == 0
    assert source.condition.online is False  # flat batteries: the site goes dark


def test_clock_accelerates_and_announces_the_real_interval() -> None:
    clock = SimClock(speed=60)
    assert clock.real_interval_s(300) == 5
    assert clock.announced_interval_s(300) == 5
    assert clock.announced_interval_s(90) == 2  # 1.5 s, rounded up
    assert clock.announced_interval_s(10) == 1  # never below 1 s
    with pytest.raises(ValueError):
        SimClock(speed=0)


def test_endpoint_parses_credentials_and_protocol() -> None:
    e = MqttEndpoint.parse("mqtt://sim%40ioc:p%3Ass@broker.local:8883", protocol=4)
    assert (e.host, e.port, e.username, e.password) == ("broker.local", 8883, "sim@ioc", "p:ss")
    assert e.protocol_version is aiomqtt.ProtocolVersion.V311
    assert MqttEndpoint.parse("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError):
        MqttEndpoint.parse("http://127.0.0.1")


def test_endpoint_takes_tls_and_credentials_from_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until connect\n")
    e = MqttEndpoint.parse(
        "mqtts://url-user:url-pass@broker.example", username="u", password="p", ca_file=str(ca)
    )
    assert (e.port, e.tls, e.username, e.password, e.ca_file) == (8883, True, "u", "p", str(ca))
    tls = e.tls_parameters()
    assert tls is not None and tls.ca_certs == str(ca)
    assert MqttEndpoint.parse("mqtt://h").tls_parameters() is None
    with pytest.raises(ValueError, match="needs an mqtts:// URL"):
        MqttEndpoint.parse("mqtt://h", ca_file=str(ca))
    with pytest.raises(ValueError, match="does not exist"):
        MqttEndpoint.parse("mqtts://h", ca_file=str(tmp_path / "missing.pem"))


# -- against the broker -----------------------------------------------------------------------


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

    async def pump(self) -> None:
        async for m in self.client.messages:
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
        await client.subscribe(f"{topics.root}/#", qos=1)
        watcher = Watcher(client, topics)
        task = asyncio.create_task(watcher.pump())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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


async def test_a_small_fleet_is_born_reports_and_stops_cleanly(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    codec = Codec(topics)
    simulated = [d for d in FLEET if d.kind in SOURCES]
    stop = asyncio.Event()
    lines: list[str] = []
    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        fleet = asyncio.create_task(
            run_fleet(
                FLEET,
                mqtt_url=mqtt_url,
                topic_root=topics.root,
                speed=120,  # 60 s interval: a reading every 0.5 s
                protocol=mqtt_protocol,
                on_progress=lines.append,
                stop_event=stop,
                progress_every_s=0.5,
            )
        )

        def three_readings_each() -> bool:
            return all(len(live.on(d.kind, d.device_id, Channel.TELEMETRY)) >= 3 for d in simulated)

        await live.until(three_readings_each)
        await live.until(lambda: any(" 5/5 connected" in line for line in lines))

        # A late subscriber gets every device's birth and status, retained.
        async with watching(mqtt_url, mqtt_protocol, topics) as late:
            await late.until(
                lambda: all(
                    late.on(d.kind, d.device_id, Channel.META)
                    and late.on(d.kind, d.device_id, Channel.STATUS)
                    for d in simulated
                )
            )
            for d in simulated:
                (meta,) = late.on(d.kind, d.device_id, Channel.META)
                (status,) = late.on(d.kind, d.device_id, Channel.STATUS)
                assert meta.retain and status.retain
                assert json_of(status)["state"] == "online"
                decoded = codec.decode(meta.topic, meta.payload, datetime.now(UTC))
                assert decoded.rejections == []
                assert json_of(meta)["interval_s"] == 1  # 60 s at 120×: announced as 1 s real
        assert late.on(Kind.PROBE, "PRB-T-01", Channel.META) == []  # probes are not simulated

        for d in simulated:
            seqs = []
            for seen in live.on(d.kind, d.device_id, Channel.TELEMETRY):
                decoded = codec.decode(seen.topic, seen.payload, datetime.now(UTC))
                assert decoded.rejections == [], decoded.rejections
                assert isinstance(decoded.record, Readings)
                seqs += [r.seq for r in decoded.record.items]
            assert seqs == list(range(len(seqs)))

        stop.set()
        counters = await asyncio.wait_for(fleet, WAIT_S)
        assert counters.connected == 0 and counters.published >= 3 * len(simulated)

        def all_offline() -> bool:
            return all(
                json_of(live.on(d.kind, d.device_id, Channel.STATUS)[-1])["state"] == "offline"
                for d in simulated
            )

        await live.until(all_offline)
        for d in simulated:
            last = live.on(d.kind, d.device_id, Channel.STATUS)[-1]
            assert json_of(last)["reason"] == "stopped"
            assert codec.decode(last.topic, last.payload, datetime.now(UTC)).rejections == []


@pytest.mark.parametrize("protocol", [5, 4])
async def test_a_killed_device_leaves_its_will(
    mqtt_url: str, mqtt_protocol: int, topics: Topics, protocol: int
) -> None:
    if mqtt_protocol == 4 and protocol == 5:
        pytest.skip("the test broker speaks MQTT 3.1.1 only")
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    device = SimulatedDevice(
        make(Kind.BTS, "BTS-K-01"), endpoint, topics=topics, clock=SimClock(speed=60)
    )
    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        device.start()

        def states() -> list[dict[str, Any]]:
            return [json_of(s) for s in live.on(Kind.BTS, "BTS-K-01", Channel.STATUS)]

        await live.until(lambda: [s["state"] for s in states()] == ["online"])
        await device.kill()
        await live.until(lambda: len(states()) == 2)
        assert states()[-1] == {"device_id": "BTS-K-01", "state": "offline", "reason": "will"}
        assert not device.connected and device.counters.connected == 0


async def test_seq_goes_on_across_a_power_cut_and_a_new_birth(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    device = SimulatedDevice(
        make(Kind.CAMERA, "CAM-P-01"), endpoint, topics=topics, clock=SimClock(speed=120)
    )
    codec = Codec(topics)

    def seqs() -> list[int]:
        out: list[int] = []
        for s in live.on(Kind.CAMERA, "CAM-P-01", Channel.TELEMETRY):
            record = codec.decode(s.topic, s.payload, datetime.now(UTC)).record
            assert isinstance(record, Readings)
            out += [r.seq for r in record.items]
        return out

    def states() -> list[str]:
        return [json_of(s)["state"] for s in live.on(Kind.CAMERA, "CAM-P-01", Channel.STATUS)]

    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        device.start()
        await live.until(lambda: len(seqs()) >= 2)
        device.condition.online = False  # power cut: the link drops, the broker fires the will
        await live.until(lambda: states() == ["online", "offline"])
        before = seqs()
        device.condition.online = True
        await live.until(lambda: states() == ["online", "offline", "online"])
        await live.until(lambda: len(seqs()) >= len(before) + 2)
        await device.stop()

    after = seqs()
    assert after == list(range(len(after)))  # no restart from 0, no duplicates, no gaps here
    assert len(live.on(Kind.CAMERA, "CAM-P-01", Channel.META)) == 2  # born again on return
    assert states()[-1] == "offline"
    assert device.counters.connects == 2


async def poll_until(predicate: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return predicate()

    await wait_until(holds, timeout_s=WAIT_S)


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
        await client.subscribe(f"{topics.root}/+/+/telemetry", qos=1)

        async def pump() -> None:
            with contextlib.suppress(aiomqtt.MqttError):
                async for m in client.messages:
                    assert isinstance(m.payload, bytes)
                    seen.append(Seen(str(m.topic), m.payload, m.retain))

        task = asyncio.create_task(pump())
        try:
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_readings_made_while_the_broker_is_down_arrive_after_it_returns(
    tmp_path: Path, topics: Topics
) -> None:
    """Store-and-forward: in order, with the timestamps they were made at, nothing lost."""
    broker = start_broker(tmp_path / "broker")
    if broker.name != "mosquitto":
        broker.stop()
        pytest.skip("needs a broker that keeps sessions across a restart (Mosquitto)")
    port = int(broker.url.rsplit(":", 1)[1])
    endpoint = MqttEndpoint.parse(broker.url, protocol=broker.protocol)
    fleet = Fleet(FLEET[:3], endpoint, topics=topics, speed=120)
    watcher_id = f"watch-{topics.root.split('/')[0]}"
    seen: list[Seen] = []
    try:
        async with persistent_watcher(broker.url, broker.protocol, topics, watcher_id, seen):
            fleet.start()
            await poll_until(lambda: all(d.seq >= 2 for d in fleet.devices.values()))
            await asyncio.to_thread(broker.stop)
            await poll_until(lambda: fleet.counters.connected == 0)
        down_at = datetime.now(UTC)
        made_before = {d.device_id: d.seq for d in fleet.devices.values()}
        # Each device goes on measuring while the broker is away.
        await poll_until(
            lambda: all(d.seq >= made_before[d.device_id] + 3 for d in fleet.devices.values())
        )
        made_while_down = {d.device_id: d.seq for d in fleet.devices.values()}
        assert fleet.buffered() >= 9
        broker = await asyncio.to_thread(start_broker, tmp_path / "broker", port)
        up_at = datetime.now(UTC)
        async with persistent_watcher(broker.url, broker.protocol, topics, watcher_id, seen):

            def caught_up() -> bool:
                got = {d.device_id: set[int]() for d in fleet.devices.values()}
                for s in seen:
                    for r in readings_of(s):
                        got[r["device_id"]].add(r["seq"])
                return all(set(range(made_while_down[i])) <= seqs for i, seqs in got.items())

            await poll_until(caught_up)
        assert fleet.counters.connection_losses == 3 and fleet.counters.connects == 6
    finally:
        await fleet.stop()
        broker.stop()

    assert fleet.dropped() == 0
    caught_up_in_arrays = 0
    for d in fleet.devices.values():
        topic = topics.device(d.kind, d.device_id, Channel.TELEMETRY)
        messages = [s for s in seen if s.topic == topic]
        caught_up_in_arrays += sum(len(readings_of(s)) > 1 for s in messages)
        readings = [r for s in messages for r in readings_of(s)]
        # First arrivals in order; a reading in flight when the broker died may come twice.
        firsts: dict[int, dict[str, Any]] = {}
        for r in readings:
            firsts.setdefault(r["seq"], r)
        assert list(firsts) == sorted(firsts) and set(firsts) >= set(
            range(made_while_down[d.device_id])
        )
        stamps = [datetime.fromisoformat(firsts[q]["ts"]) for q in sorted(firsts)]
        assert stamps == sorted(stamps)
        for q in range(made_before[d.device_id] + 1, made_while_down[d.device_id]):
            # made while the broker was down, sent after it came back, stamped when made
            assert down_at <= datetime.fromisoformat(firsts[q]["ts"]) <= up_at
    assert caught_up_in_arrays >= 1
