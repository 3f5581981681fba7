"""Where a device or service connects: ``mqtt://[user:password@]host[:port]``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt

DEFAULT_PORT = 1883


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    protocol: int = 5  # 5, or 4 for MQTT 3.1.1

    @classmethod
    def parse(cls, url: str, *, protocol: int = 5) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} is not mqtt://[user:password@]host[:port]")
        if protocol not in (4, 5):
            raise ValueError(f"MQTT protocol {protocol} is not 5 or 4 (3.1.1)")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORT,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            protocol=protocol,
        )

    @property
    def protocol_version(self) -> aiomqtt.ProtocolVersion:
        return aiomqtt.ProtocolVersion.V5 if self.protocol == 5 else aiomqtt.ProtocolVersion.V311
