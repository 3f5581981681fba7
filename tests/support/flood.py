"""A flood of distinct QoS 1 readings, as fast as the broker takes them: the load generator of
the ingest tests and ``bench/ingest.py``.

    python -m tests.support.flood --url mqtt://127.0.0.1:1883 --root ROOT --publisher 0 \\
        --devices 100 --messages 100000 [--per-message 50] [--times FILE]

Every reading is a ~200-byte BTS telemetry object with its own (device, seq): device ``d`` of
publisher ``p`` is ``BTS-F{p}-{d:04d}``; message ``i`` goes to device ``i % devices`` with
sequence numbers counting up per device, so a test can check that each (device, seq) is stored
exactly once. ``mosquitto_pub --repeat`` cannot do that (it repeats one payload, which the
idempotent writer would store once), and ``mosquitto_pub -l`` at QoS 1 crawls, so this speaks
MQTT 5 itself: packets are built before the clock starts and written in windows of the
broker's receive-maximum, counting PUBACKs — a publisher as cheap as a C one. It prints one
JSON line: messages sent and acknowledged, start and end (epoch seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from devices import Channel, Kind, Topics, encode
from devices.endpoint import MqttEndpoint
from devices.topics import DEFAULT_ROOT

BASE_TS = datetime(2026, 1, 1, tzinfo=UTC)


def device_ids(publisher: int, devices: int) -> list[str]:
    return [f"BTS-F{publisher}-{d:04d}" for d in range(devices)]


def reading(device_id: str, seq: int) -> dict[str, object]:
    return {
        "device_id": device_id,
        "ts": (BASE_TS + timedelta(seconds=seq)).isoformat(),
        "seq": seq,
        "power_source": "mains",
        "battery_pct": 97.5,
        "cabinet_temp_c": 31.2,
        "sectors_up": [True, True, True],
        "active_users": 412,
        "prb_util_pct": 47.2,
        "backhaul_up": True,
    }


def expected(
    publisher: int, devices: int, messages: int, per_message: int = 1
) -> Iterator[tuple[str, int]]:
    """Every (device_id, seq) that a flood with these arguments publishes."""
    ids = device_ids(publisher, devices)
    for i in range(messages):
        for k in range(per_message):
            yield ids[i % devices], (i // devices) * per_message + k


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _utf8(topic) + struct.pack("!H", packet_id) + b"\x00" + payload  # no properties
    return b"\x32" + _varint(len(body)) + body  # PUBLISH, QoS 1


def packets(
    topics: Topics, publisher: int, devices: int, messages: int, per_message: int
) -> list[bytes]:
    ids = device_ids(publisher, devices)
    out = []
    for i in range(messages):
        device_id, first = ids[i % devices], (i // devices) * per_message
        body = [reading(device_id, first + k) for k in range(per_message)]
        payload = encode(body[0] if per_message == 1 else body)
        topic = topics.device(Kind.BTS, device_id, Channel.TELEMETRY)
        out.append(publish_packet(topic, payload, i % 65535 + 1))
    return out


class Publisher:
    """A QoS 1 publisher that, when the broker goes away, reconnects and resends every message
    not yet acknowledged, as a device's client library would (the broker may then hold some
    twice; the ingester must store them once)."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str) -> None:
        self.endpoint, self.client_id = endpoint, client_id
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        endpoint = self.endpoint
        self.sock = socket.create_connection((endpoint.host, endpoint.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        flags = 0x02  # clean start
        if endpoint.username:
            flags |= 0x80 | (0x40 if endpoint.password else 0)
        body = _utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + b"\x00"
        body += _utf8(self.client_id)
        if endpoint.username:
            body += _utf8(endpoint.username)
            body += _utf8(endpoint.password) if endpoint.password else b""
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        kind, connack = self._read()[0]
        if kind != 0x20 or connack[1] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")
        self.receive_maximum = _receive_maximum(connack)

    def _reconnect(self, give_up_s: float = 60.0) -> None:
        self.sock.close()
        deadline = time.monotonic() + give_up_s
        while True:
            try:
                self._connect()
                self.reconnects += 1
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _read(self) -> list[tuple[int, bytes]]:
        """Every whole packet that has arrived (waiting for one if none has)."""
        while True:
            out, pos, buf = [], 0, self._buf
            while len(buf) - pos >= 2:
                length, shift, i = 0, 0, pos + 1
                while i < len(buf):
                    byte = buf[i]
                    length, shift, i = length + ((byte & 0x7F) << shift), shift + 7, i + 1
                    if not byte & 0x80:
                        break
                else:
                    break
                if len(buf) < i + length:
                    break
                out.append((buf[pos] & 0xF0, buf[i : i + length]))
                pos = i + length
            self._buf = buf[pos:]
            if out:
                return out
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self._buf += chunk

    def flood(
        self,
        work: list[bytes],
        times: list[tuple[int, float]] | None = None,
        rate: float | None = None,
    ) -> int:
        """Publish every packet, never more than the broker's receive-maximum unacknowledged
        (and, given a ``rate``, no faster than that many a second)."""
        sent = acked = 0
        start = time.monotonic()
        while acked < len(work):
            window = min(self.receive_maximum, 65535)
            try:
                if sent < len(work) and sent - acked < window:
                    n = min(window - (sent - acked), len(work) - sent, 1000)
                    if rate:
                        n = min(n, 100)
                        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
                    if times is not None:
                        times.append((sent, time.time()))
                    self.sock.sendall(b"".join(work[sent : sent + n]))
                    sent += n
                    continue
                # A broker acknowledges QoS 1 messages in the order it received them.
                acked += sum(1 for kind, _ in self._read() if kind == 0x40)
            except OSError:
                self._reconnect()
                sent = acked  # resend from the first unacknowledged one
        return acked

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()


def _receive_maximum(connack: bytes) -> int:
    """CONNACK: flags, reason, property length (varint), properties; 0x21 = Receive Maximum."""
    pos, length, shift = 2, 0, 0
    while True:
        byte = connack[pos]
        length, shift, pos = length + ((byte & 0x7F) << shift), shift + 7, pos + 1
        if not byte & 0x80:
            break
    props, i = connack[pos : pos + length], 0
    while i < len(props):
        ident = props[i]
        if ident == 0x21:
            return int(struct.unpack("!H", props[i + 1 : i + 3])[0])
        if ident not in _FIXED_SIZE:
            break  # a variable-length property: Mosquitto sends Receive Maximum before those
        i += 1 + _FIXED_SIZE[ident]
    return 65535


# CONNACK properties of a fixed size: identifier → bytes of value.
_FIXED_SIZE = {
    0x11: 4,
    0x13: 2,
    0x21: 2,
    0x22: 2,
    0x24: 1,
    0x25: 1,
    0x27: 4,
    0x28: 1,
    0x29: 1,
    0x2A: 1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--root", default=DEFAULT_ROOT)
    parser.add_argument("--publisher", type=int, default=0)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--start-at", type=float, help="epoch s to start at (publishers in step)")
    parser.add_argument("--go", help="print 'ready' once built, then start when this file exists")
    parser.add_argument("--rate", type=float, help="messages per second at most (default: all)")
    parser.add_argument("--times", help="write (message index, epoch s) send marks here (JSON)")
    args = parser.parse_args()
    work = packets(Topics(args.root), args.publisher, args.devices, args.messages, args.per_message)
    publisher = Publisher(MqttEndpoint.parse(args.url), f"flood-{args.publisher}-{time.time_ns()}")
    times: list[tuple[int, float]] | None = [] if args.times else None
    if args.go:
        print("ready", flush=True)
        while not os.path.exists(args.go):
            time.sleep(0.005)
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    start = time.time()
    acked = publisher.flood(work, times, args.rate)
    end = time.time()
    publisher.close()
    if args.times:
        with open(args.times, "w", encoding="utf-8") as out:
            json.dump(times, out)
    print(
        json.dumps(
            {
                "sent": len(work),
                "acked": acked,
                "start": start,
                "end": end,
                "reconnects": publisher.reconnects,
            }
        ),
        flush=True,
    )
    sys.exit(0 if acked == len(work) else 1)


if __name__ == "__main__":
    main()
