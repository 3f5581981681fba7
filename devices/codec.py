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
# Readings older than the time series keep (store.schema_gen.RETENTION, 400 days) are not news.
DEFAULT_MAX_AGE = timedelta(days=400)
# The grammar needs ~100 characters past the root; a longer topic is rejected on its length
# alone, so a hostile one is never split, parsed or kept.
DEFAULT_MAX_TOPIC_CHARS = 512
# Valid topics only, each within the limit above: a few MB at most.
_TOPIC_CACHE_SIZE = 20_000


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
    STALE_TIMESTAMP = "stale_timestamp"


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
    # False for a status that carries no time of its own and was replayed by the broker (a
    # retained message sent on subscribing): it says what the device last said, at some time
    # before now, so it may set a state never known but never override a known one.
    dated: bool = True


Record = Readings | MetaRecord | StatusRecord


@dataclass(slots=True)
class Decoded:
    record: Record | None = None
    rejections: list[Rejection] = field(default_factory=list)
    outbound: bool = False  # the service's own topic (alerts, commands): nothing to store


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
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_topic_chars: int = DEFAULT_MAX_TOPIC_CHARS,
        is_known: Callable[[str], bool] = _always_known,
        self_register: bool = True,
    ) -> None:
        self.topics = topics or Topics()
        self.max_payload_bytes = max_payload_bytes
        self.max_future = max_future
        self.max_age = max_age
        self.max_topic_chars = max_topic_chars
        self.is_known = is_known
        # Off: a birth record from an id the registry does not hold is refused, so one
        # credential cannot invent devices (production); on: it registers the device.
        self.self_register = self_register
        self._readings = {
            k: msgspec.json.Decoder(READING_TYPES[k] | list[READING_TYPES[k]])  # type: ignore[valid-type]
            for k in Kind
        }
        self._meta = {k: msgspec.json.Decoder(META_TYPES[k]) for k in Kind}
        self._status = msgspec.json.Decoder(StatusPayload)
        self._parsed: dict[str, DeviceTopic] = {}
        self._bounds_for: tuple[datetime | None, tuple[datetime, datetime]] = (
            None, (datetime.min, datetime.max))  # fmt: skip

    def _parse(self, topic: str) -> DeviceTopic:
        # A fleet repeats the same few thousand topics: parse each once. Only valid topics are
        # kept, so what a device sends outside the grammar never stays in memory.
        parsed = self._parsed.get(topic)
        if parsed is None:
            parsed = self.topics.parse(topic)
            if len(self._parsed) >= _TOPIC_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[topic] = parsed
        return parsed

    def _bounds(self, received_at: datetime) -> tuple[datetime, datetime]:
        """The oldest and the newest time a reading received at ``received_at`` may carry;
        a batch decodes all its messages with one ``received_at``, so they are kept."""
        if self._bounds_for[0] is not received_at:
            self._bounds_for = (received_at, (received_at - self.max_age,
                                              received_at + self.max_future))  # fmt: skip
        return self._bounds_for[1]

    @property
    def cached_topics(self) -> int:
        return len(self._parsed)

    def decode(
        self, topic: str, payload: bytes, received_at: datetime, *, retained: bool = False
    ) -> Decoded:
        """``retained``: the broker replayed a stored message on subscribing (MQTT RETAIN)."""

        def reject(reason: RejectReason, detail: str, device_id: str | None = None) -> Decoded:
            return Decoded(rejections=[Rejection(reason, detail, topic, payload, device_id)])

        if len(payload) > self.max_payload_bytes:
            return reject(
                RejectReason.OVERSIZE,
                f"payload of {len(payload)} bytes exceeds {self.max_payload_bytes}",
            )
        if len(topic) > self.max_topic_chars:
            detail = f"topic of {len(topic)} characters exceeds {self.max_topic_chars}"
            return reject(RejectReason.BAD_TOPIC, detail)
        try:
            source = self._parse(topic)
        except TopicError as err:
            if self.topics.is_outbound(topic):
                return Decoded(outbound=True)
            return reject(RejectReason(err.reason), str(err))
        device_id = source.device_id
        if source.channel is Channel.STATUS:
            return self._decode_status(source, topic, payload, received_at, retained)
        if (
            source.channel is not Channel.META
            and source.channel is not READING_CHANNEL[source.kind]
        ):
            detail = f"{source.kind.value} devices do not publish on {source.channel.value}"
            return reject(RejectReason.BAD_TOPIC, detail, device_id)
        if not self.is_known(device_id) and (
            source.channel is not Channel.META or not self.self_register
        ):
            detail = f"no device {device_id!r} is registered"
            return reject(RejectReason.UNKNOWN_DEVICE, detail, device_id)
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

        earliest, latest = self._bounds(received_at)
        if len(items) == 1 and earliest <= items[0].ts <= latest:
            return Decoded(Readings(source, items))  # the common case, without the lists below
        good = [r for r in items if earliest <= r.ts <= latest]
        out = Decoded(Readings(source, good) if good else None)
        if len(good) < len(items):
            # One row per message and reason, however many readings it carried.
            late = [r for r in items if r.ts > latest]
            early = [r for r in items if r.ts < earliest]
            for reason, bad, side, limit in (
                (RejectReason.FUTURE_TIMESTAMP, late, "after", latest),
                (RejectReason.STALE_TIMESTAMP, early, "before", earliest),
            ):
                if bad:
                    detail = (
                        f"{len(bad)} of {len(items)} readings (first: seq {bad[0].seq} at "
                        f"{bad[0].ts.isoformat()}) are {side} {limit.isoformat()}"
                    )
                    out.rejections.append(Rejection(reason, detail, topic, payload, device_id))
        return out

    def _decode_status(
        self,
        source: DeviceTopic,
        topic: str,
        payload: bytes,
        received_at: datetime,
        retained: bool,
    ) -> Decoded:
        device_id = source.device_id

        def reject(reason: RejectReason, detail: str) -> Decoded:
            return Decoded(rejections=[Rejection(reason, detail, topic, payload, device_id)])

        if not self.is_known(device_id):
            return reject(RejectReason.UNKNOWN_DEVICE, f"no device {device_id!r} is registered")
        bare = _BARE_STATUS.get(payload.strip())
        if bare is not None:
            return Decoded(StatusRecord(source, bare, received_at, "reported", not retained))
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
        earliest, latest = self._bounds(received_at)
        if ts > latest:
            return reject(RejectReason.FUTURE_TIMESTAMP, f"status at {ts.isoformat()} is ahead")
        if ts < earliest:
            return reject(RejectReason.STALE_TIMESTAMP, f"status at {ts.isoformat()} is too old")
        dated = status.ts is not None or not retained
        return Decoded(StatusRecord(source, status.state, ts, status.reason or "reported", dated))


def encode(value: Any) -> bytes:
    """JSON bytes for a payload: the one encoder devices and simulators use."""
    return msgspec.json.encode(value)
