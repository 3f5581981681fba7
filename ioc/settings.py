"""Every setting of the service, in one place: ``IOC_*`` environment variables, else a TOML
config file (``IOC_CONFIG``, or ``ioc.toml`` in the working directory), else these defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from devices.topics import SHARED_GROUP


def _config_file() -> Path:
    return Path(os.environ.get("IOC_CONFIG", "ioc.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOC_", extra="forbid")

    mode: Literal["development", "production"] = Field(
        "development", description="production: refuse to start on unset or example secrets"
    )
    database_url: str | None = Field(
        None, description="PostgreSQL/TimescaleDB URL; unset: `ioc up` starts an embedded one"
    )
    mqtt_url: str | None = Field(
        None, description="mqtt://[user:password@]host:port; unset: `ioc up` starts a broker"
    )
    mqtt_protocol: int = Field(5, description="MQTT protocol: 5, or 4 for 3.1.1 brokers")
    topic_root: str = Field("ioc/v1", description="root of every device and alert topic")
    ingest_client_id: str = Field("ioc-ingest-1", description="stable MQTT client id")
    ingest_share_group: str = Field(
        SHARED_GROUP,
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="the ingesters' shared-subscription group: a secret in production (a "
        "device that knows it could join the group and take a share of the readings)",
    )
    ingest_batch_size: int = Field(
        5000, ge=1, description="messages per transaction, at most (a backlog drains 1.7x "
        "faster than at 1,000; at a normal rate IOC_INGEST_BATCH_AGE_S sends batches sooner)"
    )
    ingest_batch_age_s: float = Field(0.2, gt=0, description="flush a batch at least this often")
    ingest_writers: int = Field(
        2, ge=1, le=8, description="batches committing at once, each on its own connection"
    )
    ingest_metrics_address: str = Field(
        "127.0.0.1", description="where /metrics and /health listen (0.0.0.0 in a container)"
    )
    max_payload_bytes: int = Field(256 * 1024, ge=1024, description="larger payloads are rejected")
    max_future_s: float = Field(300, ge=0, description="readings further ahead are rejected")
    max_topic_chars: int = Field(
        512, ge=128, le=65535, description="longer topics are rejected (bad_topic), unparsed"
    )
    max_age_days: float = Field(
        400, gt=0, description="older readings are rejected (stale_timestamp): the retention"
    )
    ingest_window_mb: int = Field(
        64, ge=8, description="MB held from the broker and not yet committed, at most"
    )
    ingest_self_register: bool | None = Field(
        None,
        description="a birth record from an unregistered id registers it; unset: on in "
        "development, off (unknown_device) in production, where it cannot be turned on",
    )
    liveness_missed_intervals: int = Field(3, ge=1, description="silent intervals → offline")
    liveness_min_silence_s: float = Field(
        30.0, ge=0, description="never offline by silence sooner than this"
    )
    liveness_check_s: float = Field(2.0, gt=0, description="how often liveness is evaluated")
    dashboard_port: int = Field(8501, description="Streamlit port")
    dashboard_refresh_s: float = Field(5.0, gt=0, description="live map refresh period")
    dashboard_tile_url: str | None = Field(
        None, description="basemap raster tiles {z}/{x}/{y} on the closed network; unset: none"
    )
    dashboard_session_hours: float = Field(12.0, gt=0, description="a dashboard login lasts")
    simulate_speed: float = Field(60.0, gt=0, description="time acceleration of the fleet")
    alert_rules: str | None = Field(
        None, description="TOML file merged over the shipped alert rules (processing/alerts)"
    )
    alert_webhooks: dict[str, str] = Field(
        default_factory=dict, description='alert webhooks, name → URL: {"ops": "https://…"}'
    )
    alert_webhook_timeout_s: float = Field(5.0, gt=0, description="one webhook POST, at most")

    @model_validator(mode="after")
    def _secrets_in_production(self) -> Settings:
        from ioc.production import production_problem

        if self.mode == "production":
            problem = production_problem(self.database_url, self.mqtt_url)
            if self.ingest_self_register:
                problem = ("IOC_INGEST_SELF_REGISTER: in production, devices are registered "
                           "through the registry, not by their own birth records")
            if problem:
                raise PydanticCustomError("insecure", problem)
        return self

    @property
    def self_register(self) -> bool:
        if self.ingest_self_register is None:
            return self.mode == "development"
        return self.ingest_self_register

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)
