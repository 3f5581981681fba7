"""What the alert engine needs to know; built by the ``ioc`` shell from its settings tree
(ioc/settings.py holds their defaults; the timings here are engineering, not settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from processing.alerts.routing import Router, Routing


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSettings:
    host: str
    port: int
    sender: str  # the From address
    username: str | None = None
    password: str | None = None
    starttls: bool = True  # upgrade the connection before any credential or alert crosses it
    ca_file: str | None = None  # trust this CA (a private relay); None: the system's


@dataclass(frozen=True, slots=True, kw_only=True)
class TelegramSettings:
    token: str
    api_url: str = "https://api.telegram.org"


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsSettings:
    """A generic HTTP gateway: ``{to}``, ``{text}`` and ``{key}`` are filled in the URL, the
    headers and the body (escaped for JSON when the body is JSON, for a form otherwise)."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"to": "{to}", "text": "{text}"}'
    key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertConfig:
    database_url: str
    mqtt_url: str | None  # None: alerts are not published on MQTT
    mqtt_protocol: int
    topic_root: str
    rules_path: str | None  # a TOML file merged over the shipped rules
    webhooks: dict[str, str]  # name → URL
    webhook_secrets: dict[str, str] = field(default_factory=dict)  # name → HMAC key
    evaluate: bool = True  # run the rules (one engine per database holds the lock)
    deliver: bool = True  # run the outbox dispatchers
    tick_s: float = 0.25  # longest wait between two evaluations
    telemetry_every_s: float = 1.0
    telemetry_overlap_s: float = 5.0  # re-read readings this far back: late commits are seen
    telemetry_fresh_s: float = 600.0  # older readings are history, not the present state
    # The battery runway is read this often: the coverage service rewrites it every ~15 s and
    # its forecasts move by minutes, and time passing alone brings a village into the lead time.
    runway_every_s: float = 5.0
    webhook_timeout_s: float
    retry_first_s: float = 1.0
    retry_max_s: float = 300.0
    max_attempts: int  # then the row is dead
    client_id: str = "ioc-alerts"
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None  # /metrics and /health; None: not served
    stale_after_s: float = 30.0  # no tick (or dispatcher pass) for this long: /health 503
    routing: Routing = field(default_factory=Routing)  # recipients and routes (rules file)
    email: EmailSettings | None = None
    telegram: TelegramSettings | None = None
    sms: SmsSettings | None = None
    dashboard_url: str | None = None  # messages link to {dashboard_url}?alert=ID

    @property
    def router(self) -> Router:
        """Where each transition goes (the outbox's fan-out): MQTT, the routes' recipients,
        else the webhooks; ``.all_channels`` lists every channel in use."""
        return Router(self.mqtt_url is not None, tuple(self.webhooks), self.routing)
