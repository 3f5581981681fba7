"""Bytes from the broker → a typed, validated record, or a typed rejection with its reason.

Bad input never raises out of :meth:`Codec.decode`; every failure is a :class:`Rejection`
carrying the raw bytes, so the ingester can store it and count it by reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from devices.kinds import READING_CHANNEL, Channel, DeviceState, Kind
from devices.schemas import META_TYPES, READING_TYPES, StatusPayload
from devices.topics import DeviceTopic, TopicError, Topics

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_MAX_FUTURE = timedelta(minutes=5)
_TOPIC_CACHE_SIZE = 100_000


class RejectReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"  # wrong type, missing field
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_KIND = "unknown_kind"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    IDENTITY_MISMATCH = "identity_mismatch"
    OVERSIZE = "oversize"
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str
    topic: str
    payload: bytes
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Readings:
    """Telemetry or probe measurements: one or more readings of one device."""

    source: DeviceTopic
    items: list[Any]


@dataclass(frozen=True, slots=True)
class MetaRecord:
    source: DeviceTopic
    meta: Any
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusRecord:
    source: DeviceTopic
    state: DeviceState
    ts: datetime
    reason: str


Record = Readings | MetaRecord | StatusRecord


@dataclass(slots=True)
class Decoded:
    record: Record | None = None
    rejections: list[Rejection] = field(default_factory=list)


# msgspec phrases range failures as "Expected `float` <= 100.0" and bad enum members as
# "Invalid enum value"; everything else it reports is a type or shape error.
_RANGE_ERROR = re.compile(r"Expected `\w+` [<>]=?|Invalid enum value|Expected `str` of length")
_BARE_STATUS = {b"online": DeviceState.ONLINE, b"offline": DeviceState.OFFLINE}


def _classify(err: msgspec.ValidationError) -> RejectReason:
    return RejectReason.OUT_OF_RANGE if _RANGE_ERROR.search(str(err)) else RejectReason.SCHEMA


def _always_known(_: str) -> bool:
    return True


class Codec:
    def __init__(
        self,
        topics: Topics | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_future: timedelta = DEFAULT_MAX_FUTURE,
        is_known: Callable[[str], bool] = _always_known,
    ) -> None:
        self.topics = topics or Topics()
        self.max_payload_bytes = max_payload_bytes
        self.max_future = max_future
        self.is_known = is_known
        self._readings = {
            k: msgspec.json.Decoder(READING_TYPES[k] | list[READING_TYPES[k]])  # type: ignore[valid-type]
            for k in Kind
        }
        self._meta = {k: msgspec.json.Decoder(META_TYPES[k]) for k in Kind}
        self._status = msgspec.json.Decoder(StatusPayload)
        self._parsed: dict[str, DeviceTopic | TopicError] = {}

    def _parse(self, topic: str) -> DeviceTopic:
        # A fleet repeats the same few thousand topics: parse each once.
        parsed = self._parsed.get(topic)
        if parsed is None:
            try:
                parsed = self.topics.parse(topic)
            except TopicError as err:
                parsed = err
            if len(self._parsed) >= _TOPIC_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[topic] = parsed
        if isinstance(parsed, TopicError):
            raise parsed
        return parsed

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> Decoded:
        def reject(reason: RejectReason, detail: str, device_id: str | None = None) -> Decoded:
            return Decoded(rejections=[Rejection(reason, detail, topic, payload, device_id)])

        if len(payload) > self.max_payload_bytes:
            return reject(
                RejectReason.OVERSIZE,
                f"payload of {len(payload)} bytes exceeds {self.max_payload_bytes}",
            )
        try:
            source = self._parse(topic)
        except TopicError as err:
            return reject(RejectReason(err.reason), str(err))
        device_id = source.device_id
        if source.channel is Channel.STATUS:
            return self._decode_status(source, topic, payload, received_at)
        if (
            source.channel is not Channel.META
            and source.channel is not READING_CHANNEL[source.kind]
        ):
            detail = f"{source.kind.value} devices do not publish on {source.channel.value}"
            return reject(RejectReason.BAD_TOPIC, detail, device_id)
        if source.channel is not Channel.META and not self.is_known(device_id):
            return reject(RejectReason.UNKNOWN_DEVICE, f"no device {device_id!r} is registered")
        decoder = self._meta if source.channel is Channel.META else self._readings
        try:
            value = decoder[source.kind].decode(payload)
        except msgspec.ValidationError as err:
            return reject(_classify(err), str(err), device_id)
        except msgspec.DecodeError as err:
            return reject(RejectReason.MALFORMED_JSON, str(err), device_id)

        items: list[Any] = value if isinstance(value, list) else [value]
        for item in items:
            if item.device_id != device_id:
                detail = f"payload names device {item.device_id!r}, topic names {device_id!r}"
                return reject(RejectReason.IDENTITY_MISMATCH, detail, device_id)
        if source.channel is Channel.META:
            return Decoded(MetaRecord(source, value, msgspec.to_builtins(value)))

        limit = received_at + self.max_future
        good = [r for r in items if r.ts <= limit]
        out = Decoded(Readings(source, good) if good else None)
        for r in items:
            if r.ts > limit:
                detail = f"reading seq {r.seq} at {r.ts.isoformat()} is after {limit.isoformat()}"
                out.rejections.append(
                    Rejection(RejectReason.FUTURE_TIMESTAMP, detail, topic, payload, device_id)
                )
        return out

    def _decode_status(
        self, source: DeviceTopic, topic: str, payload: bytes, received_at: datetime
    ) -> Decoded:
        device_id = source.device_id

        def reject(reason: RejectReason, detail: str) -> Decoded:
            return Decoded(rejections=[Rejection(reason, detail, topic, payload, device_id)])

        if not self.is_known(device_id):
            return reject(RejectReason.UNKNOWN_DEVICE, f"no device {device_id!r} is registered")
        bare = _BARE_STATUS.get(payload.strip())
        if bare is not None:
            return Decoded(StatusRecord(source, bare, received_at, "reported"))
        try:
            status = self._status.decode(payload)
        except msgspec.ValidationError as err:
            return reject(_classify(err), str(err))
        except msgspec.DecodeError as err:
            return reject(RejectReason.MALFORMED_JSON, str(err))
        if status.device_id != device_id:
            detail = f"payload names device {status.device_id!r}, topic names {device_id!r}"
            return reject(RejectReason.IDENTITY_MISMATCH, detail)
        ts = status.ts or received_at
        if ts > received_at + self.max_future:
            return reject(RejectReason.FUTURE_TIMESTAMP, f"status at {ts.isoformat()} is ahead")
        return Decoded(StatusRecord(source, status.state, ts, status.reason or "reported"))


def encode(value: Any) -> bytes:
    """JSON bytes for a payload: the one encoder devices and simulators use."""
    return msgspec.json.encode(value)
