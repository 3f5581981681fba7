"""The MQTT test client: an aiomqtt client for a broker URL and protocol, as a device would be;
and a subscription that hands every message it brings to a callback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt

from devices.endpoint import MqttEndpoint
from tests.support.tasks import background


def mqtt_client(mqtt_url: str, protocol: int = 5, **options: Any) -> aiomqtt.Client:
    """With the account and the TLS (and CA) the URL carries."""
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        tls_params=endpoint.tls_parameters(),
        protocol=endpoint.protocol_version,
        **options,
    )


@contextlib.asynccontextmanager
async def subscribed(
    client: aiomqtt.Client, topic_filter: str, on_message: Callable[[aiomqtt.Message], None]
) -> AsyncIterator[None]:
    """``client`` subscribed to ``topic_filter`` (QoS 1); each message goes to ``on_message``
    while the block runs, until the connection ends."""
    await client.subscribe(topic_filter, qos=1)

    async def pump() -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                on_message(message)

    async with background(pump()):
        yield
