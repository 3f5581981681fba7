"""The few MQTT 3.1.1 / 5 packets a subscribing ingester exchanges, encoded and parsed by hand.

Why not paho-mqtt's loop: on this machine kind it delivers ~9,000 QoS 1 messages/s to Python
(several ``recv`` calls, a ``select`` and a ``Properties`` object per message, and a thread
fighting the writer for the GIL) while Mosquitto drains a session at ~54,000/s to a C client.
Parsing whole reads here costs ~2 µs a message. The ingester needs only CONNECT, SUBSCRIBE,
PUBLISH in (QoS 0/1), PUBACK, PINGREQ and DISCONNECT; everything else is ignored or ends the
connection. Spec: MQTT 5.0 (OASIS, 2019) §3, MQTT 3.1.1 (OASIS, 2014) §3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0
PROP_SESSION_EXPIRY, PROP_RECEIVE_MAXIMUM, PROP_MAXIMUM_PACKET_SIZE = 0x11, 0x21, 0x27
# SUBSCRIBE options (MQTT 5 §3.8.3.1): QoS 1, and retained messages only when the subscription
# is new, so a resumed session is not sent every device's retained status again.
_SUBSCRIBE_OPTIONS_V5 = 0x01 | (1 << 4)
PINGREQ_PACKET = bytes([PINGREQ, 0])
DISCONNECT_PACKET = bytes([DISCONNECT, 0])


# Reason codes a broker refuses or ends a connection with (MQTT 5 §2.4; 3.1.1 CONNACK §3.2.2.3).
REASONS = {
    0x80: "unspecified error",
    0x85: "client id not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x8A: "banned",
    0x8F: "topic filter invalid",
    0x97: "quota exceeded",
    0x9E: "shared subscriptions not supported",
    1: "protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def reason(code: int) -> str:
    return REASONS.get(code, hex(code))


class ProtocolError(ValueError):
    """The broker sent something this client cannot read; the connection is closed."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def connect_packet(
    client_id: str,
    *,
    protocol: int,
    keepalive_s: int,
    username: str | None = None,
    password: str | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
    maximum_packet_size: int = 0,
) -> bytes:
    """CONNECT on a persistent session: clean start (5) / clean session (3.1.1) off.
    ``maximum_packet_size`` (MQTT 5; 0 = the protocol's 256 MB) bounds one packet's memory."""
    flags = (0x80 if username else 0) | (0x40 if password else 0)
    body = utf8("MQTT") + bytes([protocol, flags]) + struct.pack("!H", keepalive_s)
    if protocol == 5:
        props = struct.pack("!BI", PROP_SESSION_EXPIRY, session_expiry_s)
        props += struct.pack("!BH", PROP_RECEIVE_MAXIMUM, receive_maximum)
        if maximum_packet_size:
            props += struct.pack("!BI", PROP_MAXIMUM_PACKET_SIZE, maximum_packet_size)
        body += varint(len(props)) + props
    body += utf8(client_id)
    if username:
        body += utf8(username)
    if password:
        body += utf8(password)
    return bytes([CONNECT]) + varint(len(body)) + body


def subscribe_packet(packet_id: int, topic_filter: str, *, protocol: int) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if protocol == 5 else b"")
    body += utf8(topic_filter) + bytes([_SUBSCRIBE_OPTIONS_V5 if protocol == 5 else 0x01])
    return bytes([SUBSCRIBE]) + varint(len(body)) + body


def pubacks(mids: list[int]) -> bytes:
    """PUBACKs for many messages in one write (type, length 2, packet id: 3.1.1 and 5 alike)."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in mids)


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool = False  # replayed from the broker's store on subscribing


@dataclass(frozen=True, slots=True)
class Control:
    """Any packet but PUBLISH: its type (high nibble) and body."""

    kind: int
    body: bytes


def _varint_at(buf: bytes | bytearray, i: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(4):
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
    raise ProtocolError("malformed variable byte integer")


def parse(buf: bytearray, protocol: int) -> tuple[list[Publish | Control], int]:
    """Every whole packet at the start of ``buf``, and how many bytes they took."""
    out: list[Publish | Control] = []
    pos, n = 0, len(buf)
    v5 = protocol == 5
    while n - pos >= 2:
        header = buf[pos]
        try:
            length, i = _varint_at(buf, pos + 1)
        except IndexError:
            break  # the length itself is not all here yet
        end = i + length
        if end > n:
            break
        if header & 0xF0 == PUBLISH:
            out.append(_publish(buf, header, i, end, v5))
        else:
            out.append(Control(header & 0xF0, bytes(buf[i:end])))
        pos = end
    return out, pos


def _publish(buf: bytearray, header: int, i: int, end: int, v5: bool) -> Publish:
    qos = (header >> 1) & 3
    if qos > 1:
        raise ProtocolError(f"QoS {qos} delivery on a QoS 1 subscription")
    try:
        topic_len = (buf[i] << 8) | buf[i + 1]
        j = i + 2 + topic_len
        raw_topic = bytes(buf[i + 2 : j])
        mid = 0
        if qos:
            mid = (buf[j] << 8) | buf[j + 1]
            j += 2
        if v5:
            props_len, j = _varint_at(buf, j)
            j += props_len
    except IndexError:
        j = end + 1
    if j > end:
        raise ProtocolError("PUBLISH shorter than its own headers")
    try:
        topic = raw_topic.decode()
    except UnicodeDecodeError:
        topic = repr(raw_topic)  # brokers refuse these; one that passes is a bad topic
    return Publish(topic, bytes(buf[j:end]), mid, qos, bool(header & 1))


def connack(body: bytes, protocol: int) -> tuple[bool, int]:
    """(session present, reason code); 0 is success in both versions."""
    if len(body) < 2:
        raise ProtocolError("short CONNACK")
    return bool(body[0] & 1), body[1]


def suback_codes(body: bytes, protocol: int) -> list[int]:
    i = 2
    if protocol == 5:
        props_len, i = _varint_at(body, i)
        i += props_len
    return list(body[i:])
