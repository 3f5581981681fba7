"""The device contract: declarations, topic grammar, codec round trips and every reject class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import (
    READING_CHANNEL,
    READINGS,
    Channel,
    Codec,
    Kind,
    MetricSpec,
    MetricType,
    Readings,
    RejectReason,
    StatusRecord,
    Topics,
    encode,
)
from devices.metrics import META, META_COMMON, SECTOR
from devices.topics import DEFAULT_ROOT

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
TOPICS = Topics()


def sample(spec: MetricSpec, where: str) -> Any:
    """A valid value of a metric at the low end, the high end or the middle of its range."""
    match spec.type:
        case MetricType.FLOAT | MetricType.INT:
            assert spec.min is not None and spec.max is not None
            value = {"lo": spec.min, "hi": spec.max, "mid": (spec.min + spec.max) / 2}[where]
            return int(value) if spec.type is MetricType.INT else float(value)
        case MetricType.BOOL:
            return where != "lo"
        case MetricType.TEXT:
            return spec.choices[0 if where == "lo" else -1] if spec.choices else f"text-{where}"
        case MetricType.BOOL_LIST:
            return [True, False, where == "hi"]
        case MetricType.INT_LIST:
            return [1, 2, 3]
    raise AssertionError(spec)


def reading(kind: Kind, where: str = "mid", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"device_id": "DEV-1", "ts": NOW.isoformat(), "seq": 7}
    body.update({s.name: sample(s, where) for s in READINGS[kind]})
    body.update(overrides)
    return body


def topic(kind: Kind, channel: Channel | None = None, device_id: str = "DEV-1") -> str:
    return TOPICS.device(kind, device_id, channel or READING_CHANNEL[kind])


def decode(kind: Kind, payload: bytes, channel: Channel | None = None) -> Any:
    return Codec().decode(topic(kind, channel), payload, NOW)


def test_every_metric_is_declared_with_unit_range_and_both_languages() -> None:
    for specs in (*READINGS.values(), *META.values(), META_COMMON, SECTOR):
        for spec in specs:
            assert spec.en and spec.vi, spec.name
            if spec.type in (MetricType.FLOAT, MetricType.INT):
                assert spec.min is not None and spec.max is not None and spec.min < spec.max


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("where", ["lo", "mid", "hi"])
def test_every_declared_metric_round_trips(kind: Kind, where: str) -> None:
    sent = reading(kind, where)
    decoded = decode(kind, encode(sent))
    assert not decoded.rejections
    assert isinstance(decoded.record, Readings)
    (item,) = decoded.record.items
    for spec in READINGS[kind]:
        assert getattr(item, spec.name) == sent[spec.name], spec.name
    assert item.ts == NOW and item.seq == 7


def test_array_of_readings_and_unknown_extra_field_keep_every_reading() -> None:
    batch = [reading(Kind.BTS, seq=i, firmware_note="x") for i in range(50)]
    decoded = decode(Kind.BTS, encode(batch))
    assert isinstance(decoded.record, Readings)
    assert [r.seq for r in decoded.record.items] == list(range(50))


def test_meta_with_sectors_and_bare_status() -> None:
    sector = {s.name: sample(s, "mid") for s in SECTOR}
    meta = {
        "device_id": "DEV-1",
        "lat": 14.1,
        "lon": 108.9,
        "operator": "viettel",
        "antenna_height_m": 30.0,
        "sectors": [sector, sector],
    }
    decoded = decode(Kind.BTS, encode(meta), Channel.META)
    assert decoded.record is not None and not decoded.rejections
    assert decoded.record.document["sectors"][1]["band_mhz"] == sector["band_mhz"]
    status = Codec().decode(topic(Kind.CAMERA, Channel.STATUS), b"offline", NOW)
    assert isinstance(status.record, StatusRecord) and status.record.state == "offline"


BAD_INPUT: list[tuple[str, str, bytes, RejectReason]] = [
    (
        "malformed json",
        topic(Kind.BTS),
        b'{"device_id": "DEV-1", "ts": ',
        RejectReason.MALFORMED_JSON,
    ),
    (
        "wrong type",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, battery_pct="full")),
        RejectReason.SCHEMA,
    ),
    (
        "missing seq",
        topic(Kind.BTS),
        encode({"device_id": "DEV-1", "ts": NOW.isoformat()}),
        RejectReason.SCHEMA,
    ),
    (
        "naive timestamp",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, ts="2026-11-24T08:00:00")),
        RejectReason.SCHEMA,
    ),
    (
        "out of range",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, battery_pct=101.0)),
        RejectReason.OUT_OF_RANGE,
    ),
    (
        "not a choice",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, power_source="solar")),
        RejectReason.OUT_OF_RANGE,
    ),
    (
        "unknown kind",
        f"{DEFAULT_ROOT}/drone/DEV-1/telemetry",
        encode(reading(Kind.BTS)),
        RejectReason.UNKNOWN_KIND,
    ),
    (
        "bad channel",
        f"{DEFAULT_ROOT}/bts/DEV-1/video",
        encode(reading(Kind.BTS)),
        RejectReason.BAD_TOPIC,
    ),
    (
        "wrong channel for kind",
        topic(Kind.BTS, Channel.MEASUREMENTS),
        encode(reading(Kind.BTS)),
        RejectReason.BAD_TOPIC,
    ),
    (
        "identity mismatch",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, device_id="DEV-2")),
        RejectReason.IDENTITY_MISMATCH,
    ),
    ("oversize", topic(Kind.BTS), b"[" + b" " * 300_000 + b"]", RejectReason.OVERSIZE),
    (
        "future timestamp",
        topic(Kind.BTS),
        encode(reading(Kind.BTS, ts=(NOW + timedelta(hours=1)).isoformat())),
        RejectReason.FUTURE_TIMESTAMP,
    ),
]


@pytest.mark.parametrize(
    ("case", "topic_", "payload", "reason"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT]
)
def test_each_bad_input_class_gives_its_reason(
    case: str, topic_: str, payload: bytes, reason: RejectReason
) -> None:
    decoded = Codec().decode(topic_, payload, NOW)
    assert decoded.record is None
    assert [r.reason for r in decoded.rejections] == [reason]
    assert decoded.rejections[0].payload == payload and decoded.rejections[0].detail


def test_unknown_device_is_rejected_but_its_birth_record_registers_it() -> None:
    codec = Codec(is_known=lambda device_id: device_id == "KNOWN")
    decoded = codec.decode(topic(Kind.CAMERA), encode(reading(Kind.CAMERA)), NOW)
    assert [r.reason for r in decoded.rejections] == [RejectReason.UNKNOWN_DEVICE]
    meta = codec.decode(
        topic(Kind.CAMERA, Channel.META),
        encode({"device_id": "DEV-1", "lat": 14.0, "lon": 109.0}),
        NOW,
    )
    assert meta.record is not None


def test_future_reading_in_an_array_rejects_only_that_reading() -> None:
    late = (NOW + timedelta(days=1)).isoformat()
    batch = [reading(Kind.BTS, seq=1), reading(Kind.BTS, seq=2, ts=late), reading(Kind.BTS, seq=3)]
    decoded = decode(Kind.BTS, encode(batch))
    assert isinstance(decoded.record, Readings)
    assert [r.seq for r in decoded.record.items] == [1, 3]
    assert [r.reason for r in decoded.rejections] == [RejectReason.FUTURE_TIMESTAMP]


def test_topic_grammar_builds_and_parses_its_own_topics() -> None:
    topics = Topics.under("t1")
    for kind in Kind:
        for channel in Channel:
            built = topics.device(kind, "ABC-001", channel)
            parsed = topics.parse(built)
            assert (parsed.kind, parsed.device_id, parsed.channel) == (kind, "ABC-001", channel)
    with pytest.raises(ValueError, match="device id"):
        topics.device(Kind.BTS, "has/slash", Channel.META)


@settings(max_examples=500, deadline=None)
@given(
    payload=st.binary(max_size=2048),
    kind=st.sampled_from(list(Kind)),
    channel=st.sampled_from(list(Channel)),
)
def test_arbitrary_bytes_never_raise(payload: bytes, kind: Kind, channel: Channel) -> None:
    decoded = Codec().decode(topic(kind, channel), payload, NOW)
    assert decoded.record is not None or decoded.rejections


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from([s.name for s in READINGS[Kind.BTS]] + ["device_id", "ts", "seq", "other"]),
        json_values,
    )
)
def test_arbitrary_json_objects_never_raise(doc: dict[str, Any]) -> None:
    decoded = decode(Kind.BTS, msgspec.json.encode(doc))
    assert decoded.record is not None or decoded.rejections
