"""The harness's one door to the environment: where the test services are, and the
environment a child process starts with."""

from __future__ import annotations

import os
from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HarnessSettings(BaseSettings):
    """Where the tests and benchmarks find their services; unset: they start their own."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(None, validation_alias="IOC_TEST_DATABASE_URL")
    mqtt_url: str | None = Field(None, validation_alias="IOC_TEST_MQTT_URL")
    mqtt_protocol: int = Field(5, validation_alias="IOC_TEST_MQTT_PROTOCOL")
    tsdb_url: str | None = Field(None, validation_alias="IOC_TEST_TSDB_URL")
    bench_database_url: str | None = Field(None, validation_alias="IOC_BENCH_DATABASE_URL")
    # Containers and CI runners without the right to mount a tmpfs skip the disk-full case.
    faults_no_mount: bool = Field(False, validation_alias="IOC_FAULTS_NO_MOUNT")


@cache
def harness() -> HarnessSettings:
    return HarnessSettings()


def clean_environ(**settings: str) -> dict[str, str]:
    """This process's environment without any ``IOC_*`` setting, plus ``settings``: the child
    sees the embedded defaults and exactly what the test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(settings)
    return env


def inherited_environ(**settings: str) -> dict[str, str]:
    """This process's environment as it is (the CI's service URLs included), plus ``settings``."""
    return {**os.environ, **settings}
