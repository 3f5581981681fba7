"""What an ingester needs to know; built by the ``ioc`` shell from settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestConfig:
    database_url: str
    mqtt_url: str
    topic_root: str = "ioc/v1"
    client_id: str = "ioc-ingest-1"
    shared_subscription: bool = False
    batch_size: int = 1000
    batch_age_s: float = 0.2
    max_payload_bytes: int = 256 * 1024
    max_future_s: float = 300.0
    session_expiry_s: int = 3600
    protocol: int = 5  # 4 = MQTT 3.1.1 (amqtt), persistent session via clean_session=False
