"""Broken messages, one per reject class of the codec, as a misbehaving device would send them.

Each is built from a good reading of the device, so it fails for exactly one reason. Two need a
topic outside the grammar (an unknown kind, a wrong channel for the kind): they are derived
from a grammar-built topic here, on purpose, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from devices.codec import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_FUTURE,
    DEFAULT_MAX_PAYLOAD_BYTES,
    RejectReason,
    encode,
)
from devices.kinds import READING_CHANNEL, Channel, Kind
from devices.metrics import READINGS, MetricType
from devices.topics import Topics
from simulators.outbox import Outgoing

UNKNOWN_KIND = "drone"  # not a Kind
GHOST_SUFFIX = "-GHOST"  # a device id nobody registered
OVERSIZE_BYTES = DEFAULT_MAX_PAYLOAD_BYTES + 4096


def malformed_messages(
    kind: Kind,
    device_id: str,
    topics: Topics,
    reading: Mapping[str, Any],
    reasons: Iterable[RejectReason] = tuple(RejectReason),
) -> list[Outgoing]:
    """One message per reason in ``reasons``; ``reading`` is a good one (device_id, ts, seq…)."""
    good_topic = topics.device(kind, device_id, READING_CHANNEL[kind])
    builders = {
        RejectReason.MALFORMED_JSON: lambda: (good_topic, encode(reading)[:-7]),
        RejectReason.SCHEMA: lambda: (good_topic, encode({**reading, "seq": "seven"})),
        RejectReason.OUT_OF_RANGE: lambda: (good_topic, encode(_out_of_range(kind, reading))),
        RejectReason.UNKNOWN_KIND: lambda: (_with_kind(good_topic, UNKNOWN_KIND), encode(reading)),
        RejectReason.BAD_TOPIC: lambda: (_wrong_channel(topics, kind, device_id), encode(reading)),
        RejectReason.UNKNOWN_DEVICE: lambda: _ghost(topics, kind, device_id, reading),
        RejectReason.IDENTITY_MISMATCH: lambda: (
            good_topic,
            encode({**reading, "device_id": device_id + GHOST_SUFFIX}),
        ),
        RejectReason.OVERSIZE: lambda: (good_topic, _oversize(reading)),
        RejectReason.FUTURE_TIMESTAMP: lambda: (good_topic, encode(_from_the_future(reading))),
        RejectReason.STALE_TIMESTAMP: lambda: (good_topic, encode(_from_the_past(reading))),
    }
    out = []
    for reason in reasons:
        topic, payload = builders[RejectReason(reason)]()
        out.append(Outgoing(topic, payload, readings=0, batchable=False))
    return out


def _with_kind(topic: str, kind: str) -> str:
    """A grammar-built ``root/kind/id/channel`` with another kind."""
    root, _, device_id, channel = topic.rsplit("/", 3)  # the root may itself contain slashes
    return "/".join((root, kind, device_id, channel))


def _wrong_channel(topics: Topics, kind: Kind, device_id: str) -> str:
    # A channel of the grammar that this kind never publishes readings on.
    wrong = (
        Channel.TELEMETRY if READING_CHANNEL[kind] is Channel.MEASUREMENTS else Channel.MEASUREMENTS
    )
    return topics.device(kind, device_id, wrong)


def _ghost(
    topics: Topics, kind: Kind, device_id: str, reading: Mapping[str, Any]
) -> tuple[str, bytes]:
    ghost = (device_id + GHOST_SUFFIX)[-64:]
    return topics.device(kind, ghost, READING_CHANNEL[kind]), encode(
        {**reading, "device_id": ghost}
    )


def _out_of_range(kind: Kind, reading: Mapping[str, Any]) -> dict[str, Any]:
    spec = next(
        s
        for s in READINGS[kind]
        if s.type in (MetricType.FLOAT, MetricType.INT) and s.max is not None
    )
    assert spec.max is not None
    return {**reading, spec.name: spec.max + 1}


def _oversize(reading: Mapping[str, Any]) -> bytes:
    # Valid JSON and a valid reading but for its size: a firmware dump in a stray field.
    return encode({**reading, "dump": "A" * OVERSIZE_BYTES})


def _from_the_future(reading: Mapping[str, Any]) -> dict[str, Any]:
    ahead = datetime.now(UTC) + DEFAULT_MAX_FUTURE + timedelta(days=1)
    return {**reading, "ts": ahead.isoformat(timespec="milliseconds")}


def _from_the_past(reading: Mapping[str, Any]) -> dict[str, Any]:
    # A clock reset to its epoch, as a device without a real-time battery comes back.
    behind = datetime.now(UTC) - DEFAULT_MAX_AGE - timedelta(days=1)
    return {**reading, "ts": behind.isoformat(timespec="milliseconds")}
