"""What an ingester needs to know; built by the ``ioc`` shell from its settings tree
(ioc/settings.py holds their defaults; the defaults here are engineering, not settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestConfig:
    database_url: str
    mqtt_url: str
    topic_root: str
    # Stable per instance: the broker keeps the unacknowledged messages of this id's session.
    client_id: str
    shared_subscription: bool = False
    share_group: str  # a secret in production (ioc.production)
    batch_size: int  # a batch commits when this full, or batch_age_s old
    batch_age_s: float
    writers: int  # batches committing at once, each on its own database connection
    # Unacknowledged messages the broker may have in flight to us (MQTT 5 receive-maximum);
    # 0 = one batch more than the writers, so one fills while the others commit. It bounds
    # the ingester's memory.
    receive_maximum: int = 0
    # Bytes held from the broker and not yet committed, at most (past it the socket is not
    # read, so TCP pushes back): a flood of large payloads cannot grow memory.
    window_bytes: int
    # The largest packet the broker may send (MQTT 5 maximum packet size): above the shipped
    # broker's 1 MB message_size_limit, so every message it accepts reaches us to be stored or
    # rejected with a row; a broker without a limit cannot send one 256 MB packet.
    max_packet_bytes: int = 4 * 1024 * 1024
    max_payload_bytes: int
    max_topic_chars: int  # longer topics are bad_topic rejects, never parsed or cached
    max_future_s: float
    max_age_s: float  # older readings are rejected (stale_timestamp): the retention
    # A birth from an id the registry does not hold registers it (development) or is refused
    # as unknown_device (production: one credential must not invent devices).
    self_register: bool
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    # A connection that stayed up this long ends the backoff: the next outage retries at once.
    stable_session_s: float = 30.0
    protocol: int  # 4 = MQTT 3.1.1 (amqtt), persistent session via clean_session=False
    metrics_port: int | None = None  # HTTP /metrics and /health; None = none
    metrics_address: str

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, not {self.batch_size}")
        if self.batch_age_s <= 0:
            raise ValueError(f"batch age must be above 0 s, not {self.batch_age_s}")
        if not 1 <= self.writers <= 8:
            raise ValueError(f"writers must be within 1…8, not {self.writers}")
        if self.protocol not in (4, 5):
            raise ValueError(f"MQTT protocol {self.protocol} is not 5 or 4 (3.1.1)")
        if not 0 <= self.receive_maximum <= 65535:
            raise ValueError(f"receive maximum {self.receive_maximum} is not within 0…65535")
        if self.window_bytes < self.max_packet_bytes:
            raise ValueError(f"window of {self.window_bytes} bytes is below one packet "
                             f"({self.max_packet_bytes} bytes)")  # fmt: skip

    @property
    def window(self) -> int:
        """Messages in flight from the broker to us, at most."""
        return self.receive_maximum or min(65535, (self.writers + 1) * self.batch_size)
