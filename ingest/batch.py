"""A batch in hand: the messages taken from the broker, each carrying what it decoded to.

A message is decoded when it is taken, and from then on the batch travels as one object
through commit, retry, split and acknowledgement. The writer's rows (``store.writer.Batch``)
are derived from the messages' outcomes, so changing what one message came to (its device
turned out to be registered, its birth record is refused) is a change to that message alone,
and the reject row keeps that message's own topic and bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime

from devices.codec import (
    Codec,
    Decoded,
    MetaRecord,
    Readings,
    Record,
    RejectReason,
    StatusRecord,
)
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
    # What the codec made of it, set when its batch is taken: the record alone when that is all
    # there is (the common case), else the codec's whole answer. As few objects as will do:
    # the garbage collector walks each one a batch keeps until its commit (5,000 messages
    # decoded with 3 batches alive: the whole answer kept cost 1.5 µs a message, the record
    # alone 0.4; a tuple or a list beside the messages more).
    outcome: Record | Decoded | None = None

    @property
    def record(self) -> Record | None:
        outcome = self.outcome
        return outcome.record if isinstance(outcome, Decoded) else outcome


class InHand:
    """Messages taken together, each with what it decoded to, and the rows they make."""

    __slots__ = ("messages", "received_at", "rows")

    def __init__(self, messages: list[Message], received_at: datetime) -> None:
        self.messages = messages
        self.received_at = received_at  # one time for the batch: the codec's bounds and rejects
        self.rows = _rows(messages, received_at)

    def __len__(self) -> int:
        return len(self.messages)

    def unknown_devices(self) -> list[str]:
        """The devices whose messages were refused as unregistered."""
        return sorted({
            r.device_id for _, r in self.rows.rejections
            if r.reason is RejectReason.UNKNOWN_DEVICE and r.device_id is not None
        })  # fmt: skip

    def halves(self) -> tuple[InHand, InHand]:
        half = len(self.messages) // 2
        return (InHand(self.messages[:half], self.received_at),
                InHand(self.messages[half:], self.received_at))  # fmt: skip

    def with_outcomes(self, outcomes: dict[int, Record | Decoded]) -> InHand:
        """The same messages, those at these positions now coming to these outcomes; this
        batch is left as it was (a retry of its transaction starts from it again)."""
        messages = [
            replace(m, outcome=outcomes[i]) if i in outcomes else m
            for i, m in enumerate(self.messages)
        ]
        return InHand(messages, self.received_at)


def _rows(messages: list[Message], received_at: datetime) -> Batch:
    rows = Batch(messages=len(messages))
    readings = rows.readings
    for message in messages:
        record = outcome = message.outcome
        if isinstance(outcome, Decoded):
            record = outcome.record
            if outcome.rejections:
                rows.rejections.extend((received_at, r) for r in outcome.rejections)
            rows.outbound += outcome.outbound
        elif outcome is None:
            raise LookupError(f"a message on {message.topic} was never decoded")
        if isinstance(record, Readings):
            readings[record.source.kind].extend(record.items)
        elif isinstance(record, MetaRecord):
            rows.metas.append(record)
        elif isinstance(record, StatusRecord):
            rows.statuses.append(record)
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
        for message in messages:
            message.outcome = self._decode(message, received_at)
        in_hand = InHand(messages, received_at)
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
            for i, message in enumerate(in_hand.messages)
            if isinstance(message.outcome, Decoded)
            and any(
                r.reason is RejectReason.UNKNOWN_DEVICE and r.device_id in known
                for r in message.outcome.rejections
            )
        }
        admitted = in_hand.with_outcomes(outcomes) if outcomes else in_hand
        self.seconds += time.perf_counter() - started
        return admitted

    def _decode(self, message: Message, received_at: datetime) -> Record | Decoded:
        decoded = self.codec.decode(message.topic, message.payload, received_at,
                                    retained=message.retain)  # fmt: skip
        record = decoded.record
        if isinstance(record, MetaRecord):
            # A birth makes its device known to the messages behind it in the same batch.
            self.known.add(record.source.device_id)
        return record if record is not None and not decoded.rejections else decoded
