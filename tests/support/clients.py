"""The MQTT test client: an aiomqtt client for a broker URL and protocol, as a device would be."""

from __future__ import annotations

from typing import Any

import aiomqtt

from devices.endpoint import MqttEndpoint


def mqtt_client(mqtt_url: str, protocol: int = 5, **options: Any) -> aiomqtt.Client:
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    return aiomqtt.Client(
        endpoint.host, endpoint.port, protocol=endpoint.protocol_version, **options
    )
