"""The publishing link of devices/mqtt_client.py against a real broker: acknowledgements per
message, the will on an abrupt drop and none on a clean end, a refused connection."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiomqtt
import pytest

from devices.endpoint import MqttEndpoint
from devices.mqtt_client import MqttLink, MqttLinkError, Will
from devices.topics import Topics
from tests.support.clients import subscribed
from tests.support.polling import wait_until


@contextlib.asynccontextmanager
async def listening(endpoint: MqttEndpoint, topic: str) -> AsyncIterator[list[bytes]]:
    """Collect every payload on ``topic`` (and below) while the block runs."""
    seen: list[bytes] = []
    async with aiomqtt.Client(
        endpoint.host, endpoint.port, protocol=endpoint.protocol_version
    ) as client:

        def take(message: aiomqtt.Message) -> None:
            seen.append(bytes(message.payload))

        async with subscribed(client, f"{topic}/#", take):
            yield seen


def _link(endpoint: MqttEndpoint, will: Will | None = None) -> MqttLink:
    return MqttLink(endpoint, client_id=f"test-link-{secrets.token_hex(4)}", will=will)


@dataclass
class Heard:
    endpoint: MqttEndpoint
    root: str
    seen: list[bytes]


@pytest.fixture
async def heard(mqtt_url: str, mqtt_protocol: int, topics: Topics) -> AsyncIterator[Heard]:
    """The broker, the test's own topic tree, and every payload published under it."""
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    async with listening(endpoint, topics.root) as seen:
        yield Heard(endpoint, topics.root, seen)


async def test_each_message_is_acknowledged_and_counted(heard: Heard) -> None:
    endpoint, root, seen = heard.endpoint, heard.root, heard.seen
    async with _link(endpoint) as link:
        acks: list[int] = []
        link.on_ack = lambda: acks.append(1)
        assert await link.publish(f"{root}/one", b"first") is None  # the broker holds it
        mids = {link.send(f"{root}/many", str(i).encode()) for i in range(200)}
        assert len(mids) == 200  # one message id each, so each ack finds its message
        await wait_until(lambda: len(acks) == 201, state=lambda: len(acks))
        await wait_until(lambda: len(seen) == 201, state=lambda: len(seen))
        assert seen[0] == b"first" and seen[1:] == [str(i).encode() for i in range(200)]
    assert link.ended.done() and not link.connected
    with pytest.raises(MqttLinkError):
        await link.publish(f"{root}/late", b"after the end")


async def test_a_dropped_link_leaves_its_will_and_a_clean_end_does_not(heard: Heard) -> None:
    endpoint, root, seen = heard.endpoint, heard.root, heard.seen
    clean = _link(endpoint, Will(f"{root}/clean", b"clean-will", retain=False))
    await clean.connect()
    assert await clean.publish(f"{root}/clean", b"clean-alive") is None
    await clean.disconnect()
    dropped = _link(endpoint, Will(f"{root}/dropped", b"dropped-will", retain=False))
    ends: list[str] = []
    dropped.on_end = lambda: ends.append("ended")
    await dropped.connect()
    assert await dropped.publish(f"{root}/dropped", b"dropped-alive") is None
    await dropped.drop()
    assert ends == ["ended"] and dropped.socket_closed()
    await wait_until(lambda: b"dropped-will" in seen, state=lambda: seen)
    # The clean link's will would have come before the dropped one's: it never does.
    assert seen == [b"clean-alive", b"dropped-alive", b"dropped-will"]


async def test_no_broker_is_an_error_of_the_link() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once it is closed
    link = _link(MqttEndpoint("127.0.0.1", port))
    with pytest.raises(MqttLinkError):
        await link.connect()
    assert not link.connected and link.socket_closed()
