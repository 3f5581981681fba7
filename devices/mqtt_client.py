"""One MQTT publishing link on paho-mqtt's public API, driven by the running asyncio loop.

Used by everything that publishes except the ingester's own receiver (``ingest/wire.py``): the
simulated devices, the load generator and alert delivery. Built on paho's documented hooks for
an external event loop (``on_socket_open``/``close``/``register_write``/``unregister_write``,
``loop_read``/``loop_write``/``loop_misc``), so nothing depends on another library's private
attributes.

What the callers need and get:

- QoS 1 with the broker's acknowledgement per message (:meth:`MqttLink.publish` waits for it;
  :meth:`MqttLink.send` does not, and :attr:`MqttLink.on_ack` counts them), so a device drops a
  reading from its outbox only once the broker holds it. A PUBACK with a failure code (MQTT 5:
  an ACL) is returned as the broker's reason, not raised: sending it again would not help.
- A link that ends fails every acknowledgement still awaited at once (:class:`MqttLinkError`).
- :meth:`MqttLink.drop` ends the TCP connection without DISCONNECT, as a power cut would, so
  the broker publishes the will; :meth:`MqttLink.disconnect` ends it cleanly.
- Publishes from the loop's thread are written at once: the write-readiness hook writes
  straight away and waits on the socket only when it would block. One event-loop wake-up and
  two epoll changes per message (a writer registered, then removed) were a third of a fleet's
  CPU.

A link connects once; reconnecting (with whatever backoff the caller wants) is a new link,
with a clean start, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from devices.endpoint import MqttEndpoint

CONNECT_TIMEOUT_S = 10.0  # TCP, TLS and CONNACK together
MISC_EVERY_S = 1.0  # keepalive pings and the broker's silence are checked this often
END_WAIT_S = 5.0  # for a DISCONNECT or a dropped socket to be seen through


class MqttLinkError(Exception):
    """The link could not be made, or ended, or cannot take a message now."""


@dataclass(frozen=True, slots=True)
class Will:
    """What the broker publishes for this client if its link dies without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttLink:
    """One connection; see the module docstring. Use from one event loop only."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        client_id: str,
        will: Will | None = None,
        keepalive_s: int = 60,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        max_inflight: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.on_ack: Callable[[], None] | None = None  # every acknowledgement, awaited or not
        self.on_end: Callable[[], None] | None = None  # once, when an established link ends
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self.ended: asyncio.Future[None] = self._loop.create_future()  # done when the link ends
        self._acks: dict[int, asyncio.Future[str | None]] = {}  # message id → refusal or None
        self._writer = False  # whether we wait on the socket for room to write
        self._misc: asyncio.TimerHandle | None = None
        p = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if endpoint.protocol == 5 else paho.MQTTv311,
            clean_session=None if endpoint.protocol == 5 else True,
            reconnect_on_failure=False,
        )
        if endpoint.username is not None:
            p.username_pw_set(endpoint.username, endpoint.password)
        if will is not None:
            p.will_set(will.topic, will.payload, will.qos, will.retain)
        if max_inflight is not None:
            p.max_inflight_messages_set(max_inflight)
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_publish = self._on_publish
        p.on_socket_open = self._on_socket_open
        p.on_socket_close = self._on_socket_close
        p.on_socket_register_write = self._on_register_write
        p.on_socket_unregister_write = self._on_unregister_write
        self._paho = p

    @property
    def connected(self) -> bool:
        return self._came_up() and not self.ended.done()

    def socket_closed(self) -> bool:
        """Nothing of this link is open (its socket closed, off the event loop)."""
        return self._paho.socket() is None

    def _came_up(self) -> bool:
        return self._connected.done() and self._connected.exception() is None

    async def __aenter__(self) -> MqttLink:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Connect and wait for the broker's CONNACK; :class:`MqttLinkError` if refused or late."""
        try:
            # paho connects blocking (DNS, TCP within its own 5 s, TLS, certificates read).
            await self._loop.run_in_executor(None, self._connect_blocking)
            async with asyncio.timeout(self.connect_timeout_s):
                await asyncio.shield(self._connected)
        except (OSError, TimeoutError, MqttLinkError) as err:
            await self._abort()
            if isinstance(err, MqttLinkError):
                raise
            raise MqttLinkError(f"could not connect: {err or type(err).__name__}") from err
        except BaseException:
            await self._abort()
            raise

    def _connect_blocking(self) -> None:
        e = self.endpoint
        if e.tls:
            self._paho.tls_set(ca_certs=e.ca_file)
        self._paho.connect(e.host, e.port, self.keepalive_s)

    def send(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a message without waiting (:attr:`on_ack` tells when it is acknowledged);
        returns its message id."""
        return self._send(topic, payload, qos, retain).mid

    async def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> str | None:
        """Publish and wait until the broker holds it (QoS 1) or it is written (QoS 0).

        Returns None, or the broker's reason for refusing it (MQTT 5 PUBACK failure code)."""
        info = self._send(topic, payload, qos, retain)
        if info.is_published():
            return None
        acked: asyncio.Future[str | None] = self._loop.create_future()
        self._acks[info.mid] = acked
        try:
            return await acked
        finally:
            self._acks.pop(info.mid, None)

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> paho.MQTTMessageInfo:
        if not self.connected:
            raise MqttLinkError("not connected")
        info = self._paho.publish(topic, payload, qos, retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"could not publish: {paho.error_string(info.rc)}")
        return info

    async def disconnect(self, timeout_s: float = END_WAIT_S) -> None:
        """End the link cleanly (DISCONNECT: no will) if it is up; in any case leave nothing on."""
        if self.connected and self._paho.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            await asyncio.wait([self.ended], timeout=timeout_s)
        await self._abort()

    async def drop(self, timeout_s: float = END_WAIT_S) -> None:
        """End the TCP connection without DISCONNECT, so the broker publishes the will.

        ``shutdown`` (not ``close``) sends the FIN and leaves paho to read end-of-stream, close
        the socket and say so through its hooks, as for any lost connection."""
        sock = self._paho.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            await asyncio.wait([self.ended], timeout=timeout_s)
        await self._abort()

    async def _abort(self) -> None:
        """Make sure the socket is closed and nothing of this link stays on the loop."""
        sock = self._paho.socket()
        if sock is None:
            self._end(MqttLinkError("connection closed"))
            return
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _ in range(1000):  # paho closes the socket once it reads end-of-stream
            if self._paho.socket() is None:
                break
            with contextlib.suppress(Exception):
                self._paho.loop_read()
        self._end(MqttLinkError("connection closed"))

    # paho's hooks. The socket hooks may come from the executor thread that connects;
    # everything else runs on the loop.

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._connected.done():
            return
        if reason.is_failure:
            self._connected.set_exception(MqttLinkError(f"broker refused the connection: {reason}"))
        else:
            self._connected.set_result(None)
            self._misc = self._loop.call_later(MISC_EVERY_S, self._misc_tick)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._end(MqttLinkError(f"connection lost: {reason}"))

    def _end(self, err: MqttLinkError) -> None:
        if self._misc is not None:
            self._misc.cancel()
        if not self._connected.done():
            self._connected.set_exception(err)
            self._connected.exception()  # retrieved: nobody may be waiting for it any more
        if self.ended.done():
            return
        self.ended.set_result(None)
        for acked in self._acks.values():  # their acknowledgements will never come
            if not acked.done():
                acked.set_exception(err)
        if self.on_end is not None and self._came_up():
            self.on_end()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        acked = self._acks.pop(mid, None)
        if acked is not None and not acked.done():
            refused = reason is not None and reason.is_failure
            acked.set_result(str(reason) if refused else None)
        if self.on_ack is not None:
            self.on_ack()

    def _misc_tick(self) -> None:
        if self._paho.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._misc = self._loop.call_later(MISC_EVERY_S, self._misc_tick)

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        self._loop.call_soon_threadsafe(self._watch, sock)

    def _watch(self, sock: Any) -> None:
        if self._is_current(sock):  # not already closed by a failed connect
            self._loop.add_reader(sock, self._readable)

    def _is_current(self, sock: object) -> bool:
        return self._paho.socket() is sock

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        if threading.get_ident() != self._thread:  # a connect that failed after the socket opened
            self._loop.call_soon_threadsafe(self._loop.remove_reader, sock)
            return
        self._loop.remove_reader(sock)
        if self._writer:
            self._writer = False
            self._loop.remove_writer(sock)

    def _readable(self) -> None:
        try:
            self._paho.loop_read()
            # TLS: paho may leave decrypted bytes in the SSL object, where epoll cannot see them.
            while isinstance(sock := self._paho.socket(), ssl.SSLSocket) and sock.pending() > 0:
                self._paho.loop_read()
        except Exception as err:  # a broken link: paho has not closed it, so close it here
            self._end(MqttLinkError(f"connection failed: {err}"))
            sock = self._paho.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _on_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        if threading.get_ident() != self._thread:  # connecting: CONNECT waits for the loop
            self._loop.call_soon_threadsafe(self._wait_writable, sock)
            return
        try:
            self._paho.loop_write()
            full = self._paho.want_write()  # the socket would block: wait for room
        except Exception:  # a broken link: the reader meets it and ends the link
            full = True
        if full:
            self._wait_writable(sock)

    def _wait_writable(self, sock: Any) -> None:
        if not self._writer and self._is_current(sock):
            self._writer = True
            self._loop.add_writer(sock, self._writable)

    def _writable(self) -> None:
        with contextlib.suppress(Exception):  # a broken link: the reader meets it
            self._paho.loop_write()

    def _on_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        if self._writer:
            self._writer = False
            self._loop.remove_writer(sock)
