"""A batch in hand: the messages taken from the broker, each beside what it decoded to.

A message is decoded when it is taken, and from then on the batch travels as one object
through commit, retry, split and acknowledgement. The writer's rows (``store.writer.Batch``)
are derived from the entries, so changing what one message came to (its device turned out to
be registered, its birth record is refused) is a change to that message's entry alone, and the
reject row keeps that message's own topic and bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from devices.codec import Codec, Decoded, MetaRecord, Readings, RejectReason, StatusRecord
from store.writer import Batch


@dataclass(slots=True)
class Message:
    """One PUBLISH taken from the broker, as the receiver holds it until it is acknowledged."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float  # time.monotonic() when it was read
    retain: bool
    size: int  # what it holds in memory, near enough: topic and payload


Entry = tuple[Message, Decoded]


class InHand:
    """Messages taken together, what each decoded to, and the rows they make for the writer."""

    __slots__ = ("entries", "received_at", "rows")

    def __init__(self, entries: list[Entry], received_at: datetime) -> None:
        self.entries = entries
        self.received_at = received_at  # one time for the batch: the codec's bounds and rejects
        self.rows = _rows(entries, received_at)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def messages(self) -> list[Message]:
        return [message for message, _ in self.entries]

    def unknown_devices(self) -> list[str]:
        """The devices whose messages were refused as unregistered."""
        return sorted({
            r.device_id for _, decoded in self.entries for r in decoded.rejections
            if r.reason is RejectReason.UNKNOWN_DEVICE and r.device_id is not None
        })  # fmt: skip

    def halves(self) -> tuple[InHand, InHand]:
        half = len(self.entries) // 2
        return (InHand(self.entries[:half], self.received_at),
                InHand(self.entries[half:], self.received_at))  # fmt: skip

    def with_outcomes(self, outcomes: dict[int, Decoded]) -> InHand:
        """The same messages, those at these positions now coming to these outcomes."""
        entries = [(m, outcomes.get(i, d)) for i, (m, d) in enumerate(self.entries)]
        return InHand(entries, self.received_at)


def _rows(entries: list[Entry], received_at: datetime) -> Batch:
    rows = Batch(messages=len(entries))
    readings = rows.readings
    for _, decoded in entries:
        record = decoded.record
        if isinstance(record, Readings):
            readings[record.source.kind].extend(record.items)
        elif isinstance(record, MetaRecord):
            rows.metas.append(record)
        elif isinstance(record, StatusRecord):
            rows.statuses.append(record)
        if decoded.rejections:
            rows.rejections.extend((received_at, r) for r in decoded.rejections)
        rows.outbound += decoded.outbound
    return rows


class BatchDecoder:
    """The codec applied to whole batches, with the registry as far as this ingester knows it
    (``known``: loaded at start, grown by every birth record decoded and every device found
    registered since)."""

    def __init__(self, codec: Codec, known: set[str]) -> None:
        self.codec = codec
        self.known = known  # what ``codec`` asks when it meets a device id
        self.seconds = 0.0  # spent decoding, on the event loop

    def take(self, messages: list[Message], received_at: datetime) -> InHand:
        started = time.perf_counter()
        entries = [(m, self._decode(m, received_at)) for m in messages]
        in_hand = InHand(entries, received_at)
        self.seconds += time.perf_counter() - started
        return in_hand

    def admit(self, in_hand: InHand, registered: set[str]) -> InHand:
        """``in_hand`` with the messages refused as unknown decoded again, now that the
        registry holds their device (another ingester of the group registered it). The codec
        stopped at the unknown id, so their payloads are decoded here for the first time."""
        started = time.perf_counter()
        self.known.update(registered)
        known = self.known
        outcomes = {
            i: self._decode(message, in_hand.received_at)
            for i, (message, decoded) in enumerate(in_hand.entries)
            if any(
                r.reason is RejectReason.UNKNOWN_DEVICE and r.device_id in known
                for r in decoded.rejections
            )
        }
        admitted = in_hand.with_outcomes(outcomes) if outcomes else in_hand
        self.seconds += time.perf_counter() - started
        return admitted

    def _decode(self, message: Message, received_at: datetime) -> Decoded:
        decoded = self.codec.decode(message.topic, message.payload, received_at,
                                    retained=message.retain)  # fmt: skip
        if isinstance(decoded.record, MetaRecord):
            # A birth makes its device known to the messages behind it in the same batch.
            self.known.add(decoded.record.source.device_id)
        return decoded
