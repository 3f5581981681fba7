"""A batch inside the ingester: each message is decoded when it is taken and carried with its
outcome, so a device found registered later costs its own messages a decode, not the whole
batch's, and a refused birth record is a reject of its own message's topic and bytes. The codec
in process; the refusal against a real database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from devices import Channel, Codec, Kind, MetaRecord, RejectReason, Topics, encode
from devices.codec import Decoded
from ingest.batch import BatchDecoder, Message
from ingest.commit import refuse_implausible
from store.db import aconnect, connect
from store.migrate import upgrade
from store.writer import write_batch
from tests.support.coverage_scene import LAT0, LON0, bts_doc, offset

TOPICS = Topics()


class CountingCodec(Codec):
    """The real codec, counting how often each payload is decoded."""

    def __init__(self, **options: Any) -> None:
        super().__init__(TOPICS, **options)
        self.calls: Counter[bytes] = Counter()

    def decode(
        self, topic: str, payload: bytes, received_at: datetime, *, retained: bool = False
    ) -> Decoded:
        self.calls[payload] += 1
        return super().decode(topic, payload, received_at, retained=retained)


def message(kind: Kind, device_id: str, channel: Channel, doc: Any, mid: int) -> Message:
    topic = TOPICS.device(kind, device_id, channel)
    payload = doc if isinstance(doc, bytes) else encode(doc)
    return Message(topic, payload, mid, 1, 1, 0.0, False, len(topic) + len(payload))


def reading(device_id: str, seq: int, now: datetime) -> Message:
    doc = {"device_id": device_id, "ts": now.isoformat(), "seq": seq}
    return message(Kind.BTS, device_id, Channel.TELEMETRY, doc, seq)


def decoder(known: set[str]) -> tuple[BatchDecoder, CountingCodec]:
    codec = CountingCodec(is_known=known.__contains__, self_register=False)
    return BatchDecoder(codec, known), codec


def test_a_device_found_registered_costs_its_own_messages_a_decode_not_the_batches() -> None:
    now = datetime.now(UTC)
    batch_decoder, codec = decoder({"A"})
    messages = [reading("A", 1, now), reading("B", 2, now), reading("A", 3, now)]
    messages.append(message(Kind.BTS, "B", Channel.STATUS, b"online", 4))
    in_hand = batch_decoder.take(messages, now)
    assert in_hand.unknown_devices() == ["B"]
    assert [r.reason for _, r in in_hand.rows.rejections] == [RejectReason.UNKNOWN_DEVICE] * 2
    assert len(in_hand.rows.readings[Kind.BTS]) == 2

    admitted = batch_decoder.admit(in_hand, {"B"})
    assert admitted.rows.rejections == [] and admitted.unknown_devices() == []
    assert [r.seq for r in admitted.rows.readings[Kind.BTS]] == [1, 2, 3]
    assert [s.source.device_id for s in admitted.rows.statuses] == ["B"]
    # Only the messages refused as unknown went through the codec again.
    assert [codec.calls[m.payload] for m in messages] == [1, 2, 1, 2]
    # The batch a retry would start from is left as it was.
    assert len(in_hand.rows.rejections) == 2

    first, second = admitted.halves()
    assert [m.mid for m in first.messages + second.messages] == [m.mid for m in messages]
    assert first.rows.messages + second.rows.messages == 4
    assert len(first.rows.readings[Kind.BTS]) + len(second.rows.readings[Kind.BTS]) == 3
    assert sum(codec.calls.values()) == 6  # halving a batch decodes nothing again


def test_a_birth_makes_its_device_known_to_the_messages_behind_it() -> None:
    now = datetime.now(UTC)
    batch_decoder, _ = decoder(set())
    batch_decoder.codec.self_register = True
    birth = message(Kind.BTS, "N", Channel.META, bts_doc("N", "mobifone", LAT0, LON0), 1)
    in_hand = batch_decoder.take([reading("N", 2, now), birth, reading("N", 3, now)], now)
    assert [r.reason for _, r in in_hand.rows.rejections] == [RejectReason.UNKNOWN_DEVICE]
    assert [r.seq for r in in_hand.rows.readings[Kind.BTS]] == [3]
    assert batch_decoder.known == {"N"}


async def test_a_refused_birth_is_a_reject_of_its_own_message(database_url: str) -> None:
    with connect(database_url) as conn:
        upgrade(conn)
    now = datetime.now(UTC)
    batch_decoder, _ = decoder({"M"})
    here = bts_doc("M", "mobifone", LAT0, LON0)
    moved = bts_doc("M", "mobifone", *offset(LAT0, LON0, 16000, 0))
    async with await aconnect(database_url) as conn:
        await write_batch(conn, batch_decoder.take([message(Kind.BTS, "M", Channel.META, here, 1)],
                                                   now).rows)  # fmt: skip
        # Two births on one topic: the implausible one first, a plausible one behind it.
        spoof = message(Kind.BTS, "M", Channel.META, moved, 2)
        hello = message(Kind.BTS, "M", Channel.META, here, 3)
        in_hand = batch_decoder.take([spoof, hello], now)
        checked = await refuse_implausible(conn, in_hand)
    (at, rejection), = checked.rows.rejections  # fmt: skip
    assert (at, rejection.reason, rejection.device_id) == (now, RejectReason.OUT_OF_RANGE, "M")
    assert "moved" in rejection.detail
    assert (rejection.topic, rejection.payload) == (spoof.topic, spoof.payload)
    assert isinstance(checked.messages[1].record, MetaRecord) and len(checked.rows.metas) == 1
    assert len(in_hand.rows.metas) == 2 and in_hand.rows.rejections == []
