"""The receive side: one MQTT connection on a persistent session, kept up with backoff.

Messages are parsed a whole read at a time (``ingest/wire.py``) into a buffer the writer takes
batches from. The broker should send at most ``window`` unacknowledged QoS 1 messages (MQTT 5
receive-maximum), but Mosquitto 2.0.11 overshoots it while a backlog is queued (a PUBACK for
the oldest message in flight releases up to a whole window more; eclipse-mosquitto#2301), so
the buffer is bounded here too: at ``window`` messages held, or ``window_bytes`` held and not
yet committed, we stop reading the socket and TCP pushes back on the broker, which keeps the
rest queued. Memory stays bounded while the database is slow or down, and under a flood of
large payloads, whatever the broker does.

Every connection is a new *generation*. Messages of an older one are never acknowledged: the
broker redelivers them on the resumed session, and the writer's idempotence makes storing
them twice harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import deque

from devices.endpoint import MqttEndpoint
from devices.kinds import Channel
from ingest import wire
from ingest.batch import Message
from ingest.config import IngestConfig

log = logging.getLogger("ioc.ingest")
HANDSHAKE_TIMEOUT_S = 10.0
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 30.0
BATCH_TRIGGER_DIVISOR = 5  # a batch goes once a fifth of batch_size is held (take)


def _due_at(size: int) -> int:
    """Messages held that make a batch of at most ``size`` due."""
    return max(1, size // BATCH_TRIGGER_DIVISOR)


# QoS 0 messages are not flow-controlled by the broker; past this many held they are dropped
# (at most once is what their sender asked for) so memory stays bounded.
_QOS0_CAP_FACTOR = 4
# A status (a will, above all) does not wait for its batch to fill: a village's coverage alert
# waits on it. The channel is the topic's last level (devices.topics).
_URGENT_SUFFIX = "/" + Channel.STATUS.value


class Refused(ConnectionError):
    """The broker answered, and said no."""


class _Connection(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.controls: asyncio.Queue[wire.Control] = asyncio.Queue()
        self.last_read = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # A new generation before the first byte: a resumed session redelivers right behind
        # the CONNACK, often in the same read, and those messages belong to this connection.
        self.receiver.new_generation(self)

    def data_received(self, data: bytes) -> None:
        started = time.perf_counter()
        self.last_read = now = time.monotonic()
        self.buf += data
        try:
            packets, used = wire.parse(self.buf, self.receiver.config.protocol)
        except wire.ProtocolError as err:
            log.error("unreadable packet from the broker (%s); reconnecting", err)
            self.close()
            return
        if used == len(self.buf):
            self.buf = bytearray()  # a bytearray never gives back what one large packet took
        else:
            del self.buf[:used]
        for packet in packets:
            if isinstance(packet, wire.Publish):
                self.receiver.hold(packet, now)
            else:
                self.controls.put_nowait(packet)
        self.receiver.receive_s += time.perf_counter() - started

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def expect(self, kind: int) -> wire.Control:
        while True:
            packet = await self.controls.get()
            if packet.kind == kind:
                return packet
            if packet.kind == wire.DISCONNECT:
                code = packet.body[0] if packet.body else 0
                raise Refused(f"broker disconnected us: {wire.reason(code)}")


class Receiver:
    def __init__(self, config: IngestConfig, subscription: str) -> None:
        self.config = config
        self.subscription = subscription
        self._window = config.window
        self._enough = _due_at(config.batch_size)
        self._qos0_cap = _QOS0_CAP_FACTOR * config.window
        self.endpoint = MqttEndpoint.parse(config.mqtt_url, protocol=config.protocol)
        self.generation = 0
        self.connected = False
        self.ready = asyncio.Event()  # the buffer went non-empty or reached a batch
        self.subscribed = asyncio.Event()
        self._buffer: deque[Message] = deque()
        self._urgent = False  # a status is held: the next batch goes at once
        self._intake_open = True
        self._stopping = False
        self._conn: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self.held_max = 0  # high-water mark of messages held, for /health and the tests
        self.bytes_in_hand = 0  # held, or taken and not yet acknowledged
        self.bytes_max = 0  # high-water mark of bytes_in_hand
        self.last_retry_s = 0.0  # the latest wait before reconnecting, jitter included
        self.reconnects = 0
        self.last_error = ""  # why the latest connection ended
        self._connected_at = 0.0
        self.receive_s = 0.0  # time spent reading and parsing

    # -- connection --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-receiver")

    async def _run(self) -> None:
        backoff = RECONNECT_FIRST_S
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
            except (OSError, TimeoutError, Refused, wire.ProtocolError) as err:
                level = logging.ERROR if isinstance(err, Refused) else logging.WARNING
                self.last_error = str(err) or repr(err)
                log.log(level, "broker %s:%d: %s", self.endpoint.host, self.endpoint.port,
                        self.last_error)  # fmt: skip
            finally:
                self._lost()
            if self._stopping:
                return
            up_s = time.monotonic() - self._connected_at if self._connected_at > started else 0.0
            if up_s >= self.config.stable_session_s:
                backoff = RECONNECT_FIRST_S  # a healthy session ended: this is a new outage
            # Jitter: a fleet of ingesters (or a broker restart) does not reconnect in step.
            self.last_retry_s = backoff * random.uniform(0.5, 1.0)
            self.reconnects += 1
            log.info("reconnecting in %.1fs", self.last_retry_s)
            await asyncio.sleep(self.last_retry_s)
            backoff = min(RECONNECT_MAX_S, backoff * 2)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        tls = ssl.create_default_context(cafile=endpoint.ca_file) if endpoint.tls else None
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Connection(self), endpoint.host, endpoint.port, ssl=tls
            ),
            HANDSHAKE_TIMEOUT_S,
        )
        config = self.config
        conn.write(
            wire.connect_packet(
                config.client_id,
                protocol=config.protocol,
                keepalive_s=config.keepalive_s,
                username=self.endpoint.username,
                password=self.endpoint.password,
                session_expiry_s=config.session_expiry_s,
                receive_maximum=config.window,
                maximum_packet_size=config.max_packet_bytes,
            )
        )
        ack = await asyncio.wait_for(conn.expect(wire.CONNACK), HANDSHAKE_TIMEOUT_S)
        session_present, code = wire.connack(ack.body, config.protocol)
        if code:
            raise Refused(f"connection refused: {wire.reason(code)}")
        self.connected = True
        self._connected_at = time.monotonic()
        # Subscribe on every connection, resumed session or not: a lost subscription is a
        # silent stall in other consumers.
        conn.write(wire.subscribe_packet(1, self.subscription, protocol=config.protocol))
        suback = await asyncio.wait_for(conn.expect(wire.SUBACK), HANDSHAKE_TIMEOUT_S)
        codes = wire.suback_codes(suback.body, config.protocol)
        if not codes or codes[0] >= 0x80:
            code = codes[0] if codes else 0x80
            raise Refused(f"subscription to {self.subscription} refused: {wire.reason(code)}")
        log.info(
            "subscribed to %s as %s (session %s)",
            self.subscription,
            config.client_id,
            "resumed" if session_present else "new",
        )
        self.subscribed.set()
        await self._keepalive(conn)

    async def _keepalive(self, conn: _Connection) -> None:
        """Ping every half keepalive; a ping that nothing answers (no PINGRESP, no other
        packet) within the next half is a stalled broker or path: within one keepalive."""
        period = max(0.25, self.config.keepalive_s / 2)
        ping_sent: float | None = None
        while not conn.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), period)
            except TimeoutError:
                # While paused we read nothing, the PINGRESP included: not a stall.
                if ping_sent is not None and conn.last_read < ping_sent and not self._paused:
                    conn.close()
                    raise TimeoutError(
                        f"no PINGRESP within {period:.1f}s: broker stalled"
                    ) from None
                ping_sent = time.monotonic()
                conn.write(wire.PINGREQ_PACKET)
            while not conn.controls.empty():
                packet = conn.controls.get_nowait()
                if packet.kind == wire.DISCONNECT:
                    code = packet.body[0] if packet.body else 0
                    conn.close()
                    raise Refused(f"broker disconnected us: {wire.reason(code)}")
        if not self._stopping:
            raise ConnectionError("connection lost")

    def new_generation(self, conn: _Connection) -> None:
        self._conn = conn
        self.generation += 1
        self._drop_held()  # held from a dead connection: the broker redelivers them
        self._paused = False

    def _lost(self) -> None:
        was = self.connected
        self.connected = False
        self._paused = False
        self.subscribed.clear()
        self._drop_held()  # not acknowledged on this connection: the broker redelivers them
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if was and not self._stopping:
            log.warning("broker connection lost; reconnecting")

    def _drop_held(self) -> None:
        self.bytes_in_hand -= sum(m.size for m in self._buffer)
        self._buffer.clear()
        self._urgent = False

    # -- the buffer --------------------------------------------------------------------

    def hold(self, packet: wire.Publish, received: float) -> None:
        """Called for every message read: kept lean (it runs ~10 µs a message in all)."""
        if not self._intake_open:
            return  # stopping: left unacknowledged, so the broker keeps it for the next run
        held = len(self._buffer)
        if packet.qos == 0 and held >= self._qos0_cap:
            return
        topic, payload = packet.topic, packet.payload
        size = len(payload) + len(topic)
        self._buffer.append(Message(topic, payload, packet.mid, packet.qos, self.generation,
                                    received, packet.retain, size))  # fmt: skip
        held += 1
        if held > self.held_max:
            self.held_max = held
        in_hand = self.bytes_in_hand = self.bytes_in_hand + size
        if in_hand > self.bytes_max:
            self.bytes_max = in_hand
        if topic.endswith(_URGENT_SUFFIX):
            self._urgent = True
            self.ready.set()
        if held == 1 or held == self._enough:
            self.ready.set()
        # Not before the SUBACK: it may be queued behind a resumed session's redeliveries.
        full = held >= self._window or in_hand >= self.config.window_bytes
        if full and not self._paused and self.subscribed.is_set():
            self._pause(True)

    def _pause(self, on: bool) -> None:
        conn = self._conn
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return
        self._paused = on
        if on:
            conn.transport.pause_reading()
        else:
            conn.last_read = time.monotonic()
            conn.transport.resume_reading()

    @property
    def paused(self) -> bool:
        """Not reading the socket: the window (messages or bytes) is full."""
        return self._paused

    def session_age_s(self) -> float:
        return time.monotonic() - self._connected_at if self.connected else 0.0

    @property
    def held(self) -> int:
        return len(self._buffer)

    def oldest_age_s(self) -> float:
        try:
            return time.monotonic() - self._buffer[0].received
        except IndexError:
            return 0.0

    async def take(self, size: int, age_s: float) -> list[Message]:
        """Up to ``size`` messages, once a fifth of ``size`` are held, the oldest is ``age_s``
        old or a status is among them. A steady rate sends batches of about a fifth (a
        reading waits for a fifth to fill, not the whole); a backlog, where more is held
        than that, sends whole ones (fewer commits: bench/ingest.py, drain)."""
        while not self._buffer:
            self.ready.clear()
            await self.ready.wait()
        enough = _due_at(size)
        while len(self._buffer) < enough and not self._urgent:
            self.ready.clear()
            remaining = age_s - self.oldest_age_s()
            if remaining <= 0 or not self._buffer:
                break
            try:
                await asyncio.wait_for(self.ready.wait(), remaining)
            except TimeoutError:
                break
        return self.take_now(size)

    def take_now(self, size: int) -> list[Message]:
        self._urgent = False
        n = min(size, len(self._buffer))
        taken = [self._buffer.popleft() for _ in range(n)]
        self._resume_if_room()
        return taken

    def _resume_if_room(self) -> None:
        room = (len(self._buffer) <= self._window // 2
                and self.bytes_in_hand <= self.config.window_bytes // 2)  # fmt: skip
        if self._paused and room:
            self._pause(False)

    def ack(self, messages: list[Message]) -> int:
        """Acknowledge committed messages of the current connection; returns how many. Their
        bytes are released whatever their connection."""
        self.bytes_in_hand -= sum(m.size for m in messages)
        self._resume_if_room()
        generation = self.generation
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if not mids or self._conn is None or not self.connected:
            return 0
        self._conn.write(wire.pubacks(mids))
        return len(mids)

    def close_intake(self) -> None:
        """Take no more messages; what arrives from now on stays with the broker."""
        self._intake_open = False

    async def stop(self) -> None:
        self._intake_open = False
        self._stopping = True
        conn = self._conn
        if conn is not None:
            conn.write(wire.DISCONNECT_PACKET)  # after the PUBACKs already written
            conn.close()  # an asyncio transport flushes what it holds, then closes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), HANDSHAKE_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
