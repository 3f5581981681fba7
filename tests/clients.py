"""Small clients the ingest tests share: an MQTT publisher for a URL, and one query."""

from __future__ import annotations

from typing import Any

import aiomqtt
import psycopg

from devices.endpoint import MqttEndpoint


def mqtt_client(mqtt_url: str, protocol: int) -> aiomqtt.Client:
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=protocol)
    return aiomqtt.Client(endpoint.host, endpoint.port, protocol=endpoint.protocol_version)


def query(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()
