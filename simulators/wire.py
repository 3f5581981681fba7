"""Plumbing under aiomqtt for thousands of messages a second from one event loop.

aiomqtt hands every outgoing packet to the event loop as a thread-safe callback that registers
a socket writer, which then writes and unregisters: a wake-up of the loop through its self-pipe
and two epoll changes per message. Our publishes all happen on the loop's own thread, so
:func:`write_at_once` makes paho write straight away and falls back to aiomqtt's writer only
when the socket would block.
"""

from __future__ import annotations

from typing import Any

import aiomqtt
import paho.mqtt.client as paho


def write_at_once(client: aiomqtt.Client) -> None:
    """Call once connected; only for clients that publish from the event loop's thread."""
    p: paho.Client = client._client
    add_writer, remove_writer = p.on_socket_register_write, p.on_socket_unregister_write
    writer = [False]  # whether aiomqtt's writer is registered now

    def write_now(c: paho.Client, userdata: Any, sock: Any) -> None:
        try:
            c.loop_write()
            full = c.want_write()  # the socket would block: let aiomqtt's writer wait for it
        except Exception:  # a broken link: aiomqtt's writer meets it and ends the session
            full = True
        if full and add_writer is not None:
            writer[0] = True
            add_writer(c, userdata, sock)

    def unregister(c: paho.Client, userdata: Any, sock: Any) -> None:
        if writer[0] and remove_writer is not None:
            writer[0] = False
            remove_writer(c, userdata, sock)

    p.on_socket_register_write = write_now
    p.on_socket_unregister_write = unregister
