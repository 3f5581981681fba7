"""Store-and-forward outbox, injected faults, malformed messages and gateway mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from devices import READING_CHANNEL, Channel, Codec, Kind, RejectReason, Topics
from simulators import DeviceModel, Fleet, MqttEndpoint, Outbox, Outgoing
from simulators.malformed import GHOST_SUFFIX
from simulators.outbox import MAX_BATCH
from tests.support.polling import wait_until
from tests.support.simulated import FLEET, WAIT_S, json_of, make, readings_of, watching


def item(n: int, *, topic: str = "t/bts/X/telemetry", batchable: bool = True) -> Outgoing:
    return Outgoing(topic, msgspec.json.encode({"seq": n}), batchable=batchable)


def seqs_in(box: Outbox) -> list[list[int]]:
    """Drain ``box`` as a link would: each message's seqs."""
    out = []
    while (taken := box.peek()) is not None:
        message, count = taken
        value = msgspec.json.decode(message.payload)
        out.append([r["seq"] for r in (value if isinstance(value, list) else [value])])
        box.commit(count)
    return out


def test_a_full_outbox_drops_the_oldest_and_counts_it() -> None:
    box = Outbox(limit=5)
    for n in range(8):
        box.put(item(n))
    assert len(box) == 5 and box.dropped == 3
    assert seqs_in(box) == [[3, 4, 5, 6, 7]]


def test_what_is_in_flight_is_never_dropped_under_it() -> None:
    box = Outbox(limit=3)
    for n in range(3):
        box.put(item(n, batchable=False))
    message, count = box.peek() or (None, 0)
    assert message is not None and count == 1
    box.put(item(3, batchable=False))  # full: drops 1, not 0 which is on its way
    box.commit(count)
    assert seqs_in(box) == [[2], [3]] and box.dropped == 1
    box.put(item(4))
    assert box.peek() is not None
    box.release()  # the send failed: it stays, first
    assert seqs_in(box) == [[4]]


def test_a_backlog_goes_out_in_arrays_and_lone_messages_stay_alone() -> None:
    box = Outbox(limit=1000)
    for n in range(MAX_BATCH + 3):
        box.put(item(n))
    box.put(item(100, batchable=False))
    box.put(item(101, topic="t/bts/Y/telemetry"))
    box.put(item(102, topic="t/bts/Y/telemetry"))
    assert seqs_in(box) == [
        list(range(MAX_BATCH)),
        [MAX_BATCH, MAX_BATCH + 1, MAX_BATCH + 2],
        [100],
        [101, 102],
    ]


def model(kind: Kind = Kind.BTS, device_id: str = "BTS-F-01") -> DeviceModel:
    return DeviceModel(make(kind, device_id), topics=Topics.under("t1"))


async def test_duplicates_reorder_skew_and_burst_change_what_is_queued() -> None:
    m = model()
    m.faults.duplicates = 2
    for _ in range(3):
        m.sample()
    assert seqs_in(m.outbox) == [[0], [0], [1], [1], [2]]

    m.faults.reorder = 3
    for _ in range(4):
        m.sample()
    assert seqs_in(m.outbox) == [[5], [4], [3], [6]]

    m.faults.skew_s = -3600
    ts = datetime.fromisoformat(m.sample()["ts"])
    assert abs((datetime.now(UTC) - ts) - timedelta(hours=1)) < timedelta(minutes=1)
    m.outbox.commit(len(m.outbox))

    m.burst(4)
    assert seqs_in(m.outbox) == [[8], [9], [10], [11]]  # each its own message


async def test_late_readings_are_held_then_sent_with_their_own_timestamps() -> None:
    m = model()
    m.faults.late, m.faults.late_by_s = 2, 0.2
    first = m.sample()
    m.sample()
    m.sample()  # the third is not held: it goes out before the two late ones
    assert seqs_in(m.outbox) == [[2]]

    async def released() -> bool:
        return len(m.outbox) == 2

    await wait_until(released, timeout_s=10)
    queued = m.outbox.peek()
    assert queued is not None and msgspec.json.decode(queued[0].payload)["ts"] == first["ts"]
    assert seqs_in(m.outbox) == [[0], [1]]


@pytest.mark.parametrize("kind", [Kind.BTS, Kind.CAMERA, Kind.BROADBAND])
async def test_malformed_sends_one_message_of_every_reject_class(kind: Kind) -> None:
    m = model(kind, f"{kind.value.upper()}-M-01")
    m.malformed()
    codec = Codec(m.topics, is_known=lambda device_id: not device_id.endswith(GHOST_SUFFIX))
    reasons = []
    while (taken := m.outbox.peek()) is not None:
        message, count = taken
        decoded = codec.decode(message.topic, message.payload, datetime.now(UTC))
        assert decoded.record is None and len(decoded.rejections) == 1, decoded
        reasons.append(decoded.rejections[0].reason)
        m.outbox.commit(count)
    assert reasons == list(RejectReason)
    assert m.seq == 0  # a broken message is not a reading


async def test_a_gateway_carries_many_devices_on_one_connection(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    specs = [d for d in FLEET if d.kind is not Kind.PROBE]
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    fleet = Fleet(specs, endpoint, topics=topics, speed=120, gateway_size=len(specs))
    assert len(fleet.links) == 1 and fleet.devices == {} and len(fleet) == len(specs)
    victim = fleet.models["CAM-T-01"]

    def states(device_id: str) -> list[tuple[str, Any]]:
        spec = next(d for d in specs if d.device_id == device_id)
        return [
            (json_of(s)["state"], json_of(s).get("reason"))
            for s in live.on(spec.kind, device_id, Channel.STATUS)
        ]

    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        fleet.start()
        await live.until(
            lambda: all(
                live.on(d.kind, d.device_id, Channel.META)
                and len(live.on(d.kind, d.device_id, READING_CHANNEL[d.kind])) >= 2
                for d in specs
            )
        )
        assert all(states(d.device_id) == [("online", None)] for d in specs)
        victim.condition.online = False  # dark: the gateway says so, its link stays up
        fleet.poke("CAM-T-01")
        await live.until(lambda: states("CAM-T-01")[-1] == ("offline", "unreachable"))
        victim.condition.online = True
        fleet.poke("CAM-T-01")
        await live.until(lambda: states("CAM-T-01")[-1] == ("online", None))
        assert len(live.on(Kind.CAMERA, "CAM-T-01", Channel.META)) == 2  # born again
        await fleet.stop()
        await live.until(lambda: all(states(d.device_id)[-1][0] == "offline" for d in specs))
    assert fleet.counters.connects == 1 and fleet.counters.connection_losses == 0
    assert all(states(d.device_id)[-1] == ("offline", "stopped") for d in specs)
    for d in specs:
        topic = topics.device(d.kind, d.device_id, READING_CHANNEL[d.kind])
        seqs = [r["seq"] for s in live.seen if s.topic == topic for r in readings_of(s)]
        assert seqs == list(range(len(seqs)))
    await wait_until(lambda: fleet.counters.connected == 0, WAIT_S)


def test_gateway_size_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="gateway size"):
        Fleet([], MqttEndpoint.parse("mqtt://127.0.0.1"), gateway_size=-1)
