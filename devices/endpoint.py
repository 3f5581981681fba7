"""Where a device or service connects: ``mqtt[s]://[user:password@]host[:port][?ca_file=PATH]``.

``mqtts://`` is MQTT over TLS (default port 8883), verified against ``ca_file`` when given,
else the system's certificate authorities. ``ca_file`` may ride in the URL's query, so one
setting (``IOC_MQTT_URL``) says everything a service needs to reach a TLS broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}  # scheme → TLS


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    protocol: int = 5  # 5, or 4 for MQTT 3.1.1
    tls: bool = False
    ca_file: str | None = None  # PEM bundle of the CAs to trust (TLS only)

    @classmethod
    def parse(
        cls,
        url: str,
        *,
        protocol: int = 5,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> MqttEndpoint:
        """``username``/``password`` override the URL's; ``ca_file`` needs ``mqtts://``."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} is not mqtt[s]://[user:password@]host[:port]")
        if protocol not in (4, 5):
            raise ValueError(f"MQTT protocol {protocol} is not 5 or 4 (3.1.1)")
        tls = SCHEMES[parts.scheme]
        ca_file = ca_file or next(reversed(parse_qs(parts.query).get("ca_file", [])), None)
        if ca_file is not None:
            if not tls:
                raise ValueError(f"a CA file needs an mqtts:// URL, not {url!r}")
            if not Path(ca_file).is_file():
                raise ValueError(f"CA file {ca_file!r} does not exist")
        return cls(
            host=parts.hostname,
            port=parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
            username=username or (unquote(parts.username) if parts.username else None),
            password=password or (unquote(parts.password) if parts.password else None),
            protocol=protocol,
            tls=tls,
            ca_file=ca_file,
        )

    @property
    def protocol_version(self) -> aiomqtt.ProtocolVersion:
        return aiomqtt.ProtocolVersion.V5 if self.protocol == 5 else aiomqtt.ProtocolVersion.V311

    def tls_parameters(self) -> aiomqtt.TLSParameters | None:
        return aiomqtt.TLSParameters(ca_certs=self.ca_file) if self.tls else None
