"""Property tests: arbitrary bytes and arbitrary JSON at the decoder (and arbitrary reads at the
MQTT parser) never raise; every failure comes back as a rejection carrying the raw bytes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devices import Channel, Codec, Kind, RejectReason, Topics, encode
from ingest import wire

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TOPICS = Topics.under("fuzz")
CODEC = Codec(TOPICS)
DEVICE_TOPICS = [TOPICS.device(k, "DEV-1", c) for k in Kind for c in Channel]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)
# Readings that are nearly right: the contract's keys with values of any type.
near_readings = st.fixed_dictionaries(
    {
        "device_id": st.one_of(st.just("DEV-1"), st.text()),
        "ts": st.one_of(st.just(NOW.isoformat()), st.text(), st.integers()),
        "seq": st.one_of(st.integers(), st.text(), st.none()),
    },
    optional={
        "battery_pct": json_values,
        "sectors_up": json_values,
        "state": json_values,
        "lat": json_values,
        "lon": json_values,
        "rsrp_dbm": json_values,
    },
)
topics = st.one_of(st.sampled_from(DEVICE_TOPICS), st.text(max_size=80))


def _check(topic: str, payload: bytes) -> None:
    decoded = CODEC.decode(topic, payload, NOW)
    # Stored, or rejected; the one exception is an empty array of readings: nothing to store
    # and nothing wrong (the codec's choice, in devices/).
    assert decoded.record is not None or decoded.rejections or payload == b"[]"
    for rejection in decoded.rejections:
        assert isinstance(rejection.reason, RejectReason)
        assert rejection.payload == payload and rejection.topic == topic


@settings(max_examples=400, deadline=None)
@given(topic=topics, payload=st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@settings(max_examples=400, deadline=None)
@given(topic=topics, value=json_values)
def test_arbitrary_json_never_raises(topic: str, value: Any) -> None:
    _check(topic, encode(value))


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from(DEVICE_TOPICS),
    value=st.one_of(near_readings, st.lists(near_readings, max_size=4)),
)
def test_nearly_right_readings_never_raise(topic: str, value: Any) -> None:
    _check(topic, encode(value))


publishes = st.lists(
    st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=300), st.integers(1, 65535)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(messages=publishes, cut=st.integers(0, 10_000), protocol=st.sampled_from([4, 5]))
def test_the_mqtt_parser_reads_whole_packets_across_any_split(
    messages: list[tuple[str, bytes, int]], cut: int, protocol: int
) -> None:
    stream = b"".join(_publish(t, p, mid, protocol) for t, p, mid in messages)
    cut %= len(stream) + 1
    first, used = wire.parse(bytearray(stream[:cut]), protocol)
    rest, used_rest = wire.parse(bytearray(stream[used:]), protocol)
    assert used + used_rest == len(stream)
    got = [(p.topic, p.payload, p.mid) for p in first + rest if isinstance(p, wire.Publish)]
    assert got == messages


def _publish(
    topic: str, payload: bytes, mid: int, protocol: int, *, qos: int = 1, retain: bool = False
) -> bytes:
    # The broker's side of a PUBLISH, with a property (a user property) on MQTT 5.
    props = b""
    if protocol == 5:
        user = b"\x26" + wire.utf8("k") + wire.utf8("v")
        props = wire.varint(len(user)) + user
    packet_id = mid.to_bytes(2, "big") if qos else b""
    body = wire.utf8(topic) + packet_id + props + payload
    return bytes([wire.PUBLISH | qos << 1 | retain]) + wire.varint(len(body)) + body


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), protocol=st.sampled_from([4, 5]))
def test_the_mqtt_parser_refuses_garbage_with_its_own_error(data: bytes, protocol: int) -> None:
    # A ProtocolError closes the connection (and it is reopened); nothing else may escape.
    with contextlib.suppress(wire.ProtocolError):
        wire.parse(bytearray(data), protocol)


packets = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.text(min_size=1, max_size=40), st.binary(max_size=300),
                  st.integers(1, 65535), st.sampled_from([0, 1]), st.booleans()),
        st.just(("pingresp",)),
    ),
    min_size=1, max_size=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(stream_of=packets, chunks=st.lists(st.integers(1, 400), max_size=40),
       protocol=st.sampled_from([4, 5]))  # fmt: skip
def test_the_mqtt_parser_reads_the_same_packets_however_the_reads_split_or_coalesce(
    stream_of: list[tuple[Any, ...]], chunks: list[int], protocol: int
) -> None:
    """As the receiver reads a socket: any number of reads, each ending anywhere (inside a
    length, a topic, a payload) or holding many packets; the same packets come out."""
    wanted: list[tuple[Any, ...]] = []
    stream = b""
    for packet in stream_of:
        if packet[0] == "pingresp":
            stream += bytes([wire.PINGRESP, 0])
            wanted.append(("control", wire.PINGRESP))
            continue
        _, topic, payload, mid, qos, retain = packet
        stream += _publish(topic, payload, mid, protocol, qos=qos, retain=retain)
        wanted.append(("publish", topic, payload, mid if qos else 0, qos, retain))
    got: list[tuple[Any, ...]] = []
    buf, at = bytearray(), 0
    for size in [*chunks, len(stream)]:  # the last read takes whatever is left
        buf += stream[at : at + size]
        at += size
        parsed, used = wire.parse(buf, protocol)
        del buf[:used]
        for p in parsed:
            if isinstance(p, wire.Publish):
                got.append(("publish", p.topic, p.payload, p.mid, p.qos, p.retain))
            else:
                got.append(("control", p.kind))
    assert got == wanted and not buf
