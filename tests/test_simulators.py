"""Simulators against the contract and a real broker: births, wills, readings the codec accepts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devices import Channel, Codec, Kind, Readings, Topics
from ioc.brokers import start_broker
from simulators import (
    Fleet,
    MqttEndpoint,
    SimClock,
    SimulatedDevice,
    run_fleet,
)
from simulators.values import SOURCES
from tests.support.polling import wait_until
from tests.support.simulated import (
    FLEET,
    WAIT_S,
    Seen,
    json_of,
    make,
    persistent_watcher,
    readings_of,
    watching,
)


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
            await wait_until(lambda: all(d.seq >= 2 for d in fleet.devices.values()), WAIT_S)
            await asyncio.to_thread(broker.stop)
            await wait_until(lambda: fleet.counters.connected == 0, WAIT_S)
        down_at = datetime.now(UTC)
        made_before = {d.device_id: d.seq for d in fleet.devices.values()}
        # Each device goes on measuring while the broker is away.
        await wait_until(
            lambda: all(d.seq >= made_before[d.device_id] + 3 for d in fleet.devices.values()),
            WAIT_S,
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

            await wait_until(caught_up, WAIT_S)
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
