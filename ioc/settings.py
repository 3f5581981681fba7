"""Every setting of the service, in one tree and the only place their defaults live:
``IOC_*`` environment variables, else a TOML config file (``IOC_CONFIG``, or ``ioc.toml`` in
the working directory), else these defaults.

A section's variables are ``IOC_{SECTION}_{FIELD}`` (``IOC_INGEST_BATCH_SIZE`` →
``ingest.batch_size``); its TOML table is ``[section]``. Any of them may be given as a file
instead, ``IOC_{NAME}_FILE=/run/secrets/x`` (the convention of the postgres image and of compose
secrets): a secret then never sits in the environment that ``docker inspect`` shows. The
services' own config classes (ingest/, processing/) are built from this tree by the shell
(ioc/configs.py): they may not import ioc/, and hold no defaults of these settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from devices.topics import DEFAULT_ROOT, SHARED_GROUP
from ioc.errors import SettingError

PREFIX = "IOC_"


def _config_file() -> Path:
    return Path(os.environ.get("IOC_CONFIG", "ioc.toml"))


class Section(BaseModel):
    # A misspelt key in a TOML file is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


def _metrics_address() -> Any:
    return Field(
        "127.0.0.1", description="where /metrics and /health listen (0.0.0.0 in a container)"
    )


def _metrics_port(default: int, description: str) -> Any:
    return Field(default, ge=0, le=65535, description=description)


class MqttSettings(Section):
    url: str | None = Field(
        None, description="mqtt://[user:password@]host:port; unset: `ioc up` starts a broker"
    )
    password: str | None = Field(
        None,
        description="the password of IOC_MQTT_URL's user, when the URL has none "
        "(compose: IOC_MQTT_PASSWORD_FILE=/run/secrets/…)",
    )
    protocol: int = Field(5, description="MQTT protocol: 5, or 4 for 3.1.1 brokers")
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(
        9474, "the $SYS bridge's (python -m ioc.broker_bridge) /metrics, /health; 0: none"
    )


class IngestSettings(Section):
    client_id: str = Field("ioc-ingest-1", description="stable MQTT client id")
    share_group: str = Field(
        SHARED_GROUP,
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        description="the ingesters' shared-subscription group: a secret in production (a "
        "device that knows it could join the group and take a share of the readings)",
    )
    batch_size: int = Field(
        5000,
        ge=1,
        description="messages per transaction, at most (a backlog drains 1.7x "
        "faster than at 1,000; at a normal rate IOC_INGEST_BATCH_AGE_S sends batches sooner)",
    )
    batch_age_s: float = Field(0.2, gt=0, description="flush a batch at least this often")
    writers: int = Field(
        2, ge=1, le=8, description="batches committing at once, each on its own connection"
    )
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(9464, "/metrics, /health; 0: none")
    window_mb: int = Field(64, ge=8, description="MB held from the broker and not yet committed")
    self_register: bool | None = Field(
        None,
        description="a birth record from an unregistered id registers it; unset: on in "
        "development, off (unknown_device) in production, where it cannot be turned on",
    )


class LivenessSettings(Section):
    missed_intervals: int = Field(3, ge=1, description="silent intervals → offline")
    min_silence_s: float = Field(30.0, ge=0, description="never offline by silence sooner")
    check_s: float = Field(2.0, gt=0, description="how often liveness is evaluated")
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(9470, "processing's /metrics, /health; 0: none")


class CoverageSettings(Section):
    resolution_m: float = Field(100.0, description="raster cell size, metres")
    sweep_s: float = Field(
        60.0, gt=0, description="re-read every tower though no change was pushed (a safety net)"
    )
    unknown_grace_s: float = Field(
        300.0, ge=0, description="towers never heard from serve this long after start-up"
    )
    # Outdoor coverage edges, ours: RSRP −110 dBm (4G), RSCP −100 dBm (3G), RxLev −100 dBm (2G).
    threshold_4g_dbm: float = Field(-110.0, description="4G RSRP threshold")
    threshold_3g_dbm: float = Field(-100.0, description="3G RSCP threshold")
    threshold_2g_dbm: float = Field(-100.0, description="2G RxLev threshold")
    measured_window_h: float = Field(168.0, gt=0, description="probe samples this recent count")
    min_samples: int = Field(5, ge=1, description="samples a cell needs to be measured")
    min_probes: int = Field(2, ge=1, description="distinct probes a measured cell needs")
    metropolitan: bool = Field(
        False, description="judge urban cells as a metropolitan centre (COST-231 Cm = 3 dB)"
    )
    dem: str = Field(
        "scenario",
        description='the terrain: "scenario", the synthetic DEM shipped for Bình Định (its '
        'other provinces flat); "none", no terrain (Okumura-Hata and land use alone); else a '
        "GeoTIFF of ground heights (SRTM, Copernicus GLO-30; or a VRT of such tiles) that "
        "covers every province loaded",
    )
    # Battery runway (issue 18): when towers on battery, and the places they serve, go dark.
    runway_every_s: float = Field(
        15.0, gt=0, description="the battery runway is recomputed this often, seconds"
    )
    runway_window_h: float = Field(
        4.0, gt=0, description="battery readings this recent are fitted for the drain rate, hours"
    )
    runway_min_readings: int = Field(
        6, ge=2, description="a tower with fewer battery readings gets the nominal drain rate"
    )
    runway_min_drop_pct: float = Field(
        5.0,
        ge=0,
        description="a charge that does not clearly fall is believed (no drain) once the nominal "
        "rate would have drained this many % over its readings; before that: the nominal rate",
    )
    runway_nominal_drain_pct_per_h: float = Field(
        12.5,
        gt=0,
        description="drain rate when too few readings to fit, %/h: the simulators' battery model "
        "(simulators/values.py BATTERY_DRAIN_PCT_PER_H, about 8 h on a full charge), the only "
        "drain the fleet is known to have; set your batteries' rated runtime in production",
    )
    runway_nominal_band: float = Field(
        0.5, ge=0, lt=1, description="the nominal rate's band: ± this fraction of it (wide)"
    )
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(9471, "the coverage service's /metrics, /health; 0: none")
    # siting advisor (issue 18): the standard new site, a common 3-sector 4G macro of the
    # scenario's fleet (its towers stand 30–32 m, 43–45 dBm per sector, 4–6° tilt)
    advise_technology: Literal["4G", "3G"] = Field("4G", description="advised sites' technology")
    advise_band_mhz: float = Field(1800.0, description="advised sites' band, MHz")
    advise_height_m: float = Field(30.0, description="advised sites' antenna height, m")
    advise_tx_power_dbm: float = Field(43.0, description="advised sites' power per sector, dBm")
    advise_sectors: int = Field(3, ge=1, le=6, description="advised sites' sectors, evenly spread")
    advise_tilt_deg: float = Field(4.0, description="advised sites' downtilt, degrees")
    advise_spacing_m: float = Field(1000.0, gt=0, description="candidate positions' spacing, m")
    advise_road_km: float = Field(
        0.0, ge=0, description="candidates within this of a road, km; 0: anywhere in the province"
    )


class AlertSettings(Section):
    rules: str | None = Field(
        None, description="TOML file merged over the shipped alert rules (processing/alerts)"
    )
    webhooks: dict[str, str] = Field(
        default_factory=dict, description='alert webhooks, name → URL: {"ops": "https://…"}'
    )
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="HMAC-SHA256 key per webhook, name → secret (required in production)",
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, description="one webhook POST, at most, from connect to the last byte"
    )
    allow_http_webhooks: bool = Field(
        False,
        description="production: allow plain http:// webhooks (a receiver on a network you "
        "trust); otherwise alerts leave only over https://",
    )
    max_attempts: int = Field(
        12, ge=1, description="a delivery failing this often is given up (a dead letter)"
    )
    dashboard_url: str | None = Field(
        None, description="alert messages link to {dashboard_url}?alert=ID; unset: no link"
    )
    smtp_host: str | None = Field(None, description="e-mail recipients: the SMTP relay")
    smtp_port: int = Field(587, description="the relay's submission port (STARTTLS)")
    smtp_username: str | None = Field(None, description="SMTP login, if the relay wants one")
    smtp_password: str | None = Field(None, description="SMTP password (a secret)")
    smtp_from: str = Field("ioc-alerts@localhost", description="From address of alert e-mail")
    smtp_starttls: bool = Field(
        True, description="upgrade to TLS before login and message (off: a relay on loopback)"
    )
    smtp_ca_file: str | None = Field(
        None, description="CA certificate the relay's is checked against; unset: the system's"
    )
    telegram_token: str | None = Field(None, description="Telegram bot token (a secret)")
    telegram_api_url: str = Field(
        "https://api.telegram.org", description="Telegram Bot API base URL"
    )
    sms_url: str | None = Field(
        None, description="SMS/Zalo gateway URL; {to} {text} {key} are filled in"
    )
    sms_method: str = Field("POST", description="SMS gateway HTTP method")
    sms_headers: dict[str, str] = Field(
        default_factory=dict, description='SMS gateway headers: {"Authorization": "Bearer {key}"}'
    )
    sms_body: str = Field(
        '{"to": "{to}", "text": "{text}"}',
        description="SMS gateway body template (JSON-escaped when it is JSON, else form-encoded)",
    )
    sms_key: str | None = Field(None, description="SMS gateway key (a secret), as {key}")
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(9472, "the alert engine's /metrics, /health; 0: none")


class DashboardSettings(Section):
    port: int = Field(8501, description="Streamlit port")
    refresh_s: float = Field(5.0, gt=0, description="live map refresh period")
    tile_url: str | None = Field(
        None, description="basemap raster tiles {z}/{x}/{y} on the closed network; unset: none"
    )
    session_hours: float = Field(12.0, gt=0, description="a dashboard login lasts")
    idle_minutes: float = Field(30.0, gt=0, description="a login unused this long ends")
    login_failures: int = Field(
        5, ge=1, description="failed logins of one account within login_window_minutes: locked"
    )
    address_failures: int = Field(
        20, ge=1, description="failed logins from one address in login_window_minutes: locked"
    )
    login_window_minutes: float = Field(15.0, gt=0, description="failed logins counted over")
    lockout_minutes: float = Field(
        15.0, gt=0, description="a lock lasts (`ioc users unlock` lifts it early)"
    )
    db_password: str = Field(
        "", description="the password `ioc roles login dashboard` gives the dashboard's login"
    )
    metrics_address: str = _metrics_address()
    metrics_port: int = _metrics_port(9473, "the dashboard's /metrics, /health; 0: none")
    map_skip: str = Field(
        "", description="map layers left out, by id, comma-separated (bench/dashboard.py)"
    )


class SimulateSettings(Section):
    speed: float = Field(60.0, gt=0, description="time acceleration of the fleet")
    password: str | None = Field(None, description="broker password of `ioc simulate` devices")


class _EnvSource(EnvSettingsSource):
    """``IOC_{SECTION}_*`` variables a section does not declare are ignored, as unknown
    ``IOC_*`` variables always were; ``IOC_{NAME}_FILE`` reads ``IOC_{NAME}`` from a file.
    (pydantic-settings' own ``secrets_dir`` reads a folder of files named after the fields,
    which neither names a file per variable as compose and the postgres image do, nor reports
    a value given twice; so the convention is read here, with the variables.)"""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = dict(super()._load_env_vars())  # names lower-cased: case_sensitive is off
        for name in setting_names():
            path = env.get(f"{name}_file".lower())
            if path is None:
                continue
            if env.get(name.lower()) is not None:
                raise SettingError(f"{name} and {name}_FILE are both set: give one of them")
            env[name.lower()] = read_secret_file(f"{name}_FILE", Path(path))
        return env

    def explode_env_vars(
        self, field_name: str, field: FieldInfo, env_vars: Mapping[str, str | None]
    ) -> dict[str, Any]:
        exploded = super().explode_env_vars(field_name, field, env_vars)
        section = field.annotation
        if isinstance(section, type) and issubclass(section, Section):
            return {k: v for k, v in exploded.items() if k in section.model_fields}
        return exploded


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="forbid", env_nested_delimiter="_", env_nested_max_split=1
    )

    mode: Literal["development", "production"] = Field(
        "development", description="production: refuse to start on unset or example secrets"
    )
    database_url: str | None = Field(
        None, description="PostgreSQL/TimescaleDB URL; unset: `ioc up` starts an embedded one"
    )
    database_password: str | None = Field(
        None,
        description="the password of IOC_DATABASE_URL's user, when the URL has none "
        "(compose: IOC_DATABASE_PASSWORD_FILE=/run/secrets/…)",
    )
    topic_root: str = Field(DEFAULT_ROOT, description="root of every device and alert topic")
    province: str = Field(
        "Bình Định",
        min_length=1,
        description="the province whose scenario `ioc up` loads and simulates: any of the 63 "
        "by name or GSO code, or several separated by commas (one deployment, users scoped "
        "to provinces); all but Bình Định are synthetic (ioc scenario generate)",
    )
    # A deployment's address, like the database's (IOC_DASK_SCHEDULER, the name).
    dask_scheduler: str | None = Field(
        None,
        description="tcp://host:8786: heavy coverage work (full recompute, N-1) runs on this "
        "Dask cluster; unset or unreachable: in the coverage service's own process",
    )
    # What a device may send the ingester, at most: top-level names, as they always were.
    max_payload_bytes: int = Field(256 * 1024, ge=1024, description="larger payloads are rejected")
    max_future_s: float = Field(300, ge=0, description="readings further ahead are rejected")
    max_topic_chars: int = Field(
        512, ge=128, le=65535, description="longer topics are rejected (bad_topic), unparsed"
    )
    max_age_days: float = Field(
        400, gt=0, description="older readings are rejected (stale_timestamp): the retention"
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    liveness: LivenessSettings = Field(default_factory=LivenessSettings)
    coverage: CoverageSettings = Field(default_factory=CoverageSettings)
    # IOC_ALERT_*: the section is named for its variables.
    alert: AlertSettings = Field(default_factory=AlertSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    # False: the values given and the defaults alone, no environment nor file (``defaults``).
    _reads_outside: ClassVar[bool] = True

    @model_validator(mode="after")
    def _passwords_into_urls(self) -> Settings:
        # One URL for every consumer: a password given apart (a secret file) joins its URL here.
        self.database_url = _with_password("IOC_DATABASE", self.database_url,
                                           self.database_password)  # fmt: skip
        self.mqtt.url = _with_password("IOC_MQTT", self.mqtt.url, self.mqtt.password)
        self.database_password = self.mqtt.password = None
        return self

    @model_validator(mode="after")
    def _secrets_in_production(self) -> Settings:
        from ioc.production import production_problem

        if self.mode == "production":
            problem = production_problem(self.database_url, self.mqtt.url)
            if self.ingest.self_register:
                problem = (
                    "IOC_INGEST_SELF_REGISTER: in production, devices are registered "
                    "through the registry, not by their own birth records"
                )
            if problem:
                raise PydanticCustomError("insecure", problem)
        return self

    @classmethod
    def defaults(cls, **values: Any) -> Settings:
        """The tree from ``values`` and the defaults alone, neither environment nor file read
        (tests and benches: what they build does not depend on the shell they run in)."""
        validated = _Defaults(**values)
        return cls.model_construct(**{name: getattr(validated, name) for name in cls.model_fields})

    @property
    def self_register(self) -> bool:
        if self.ingest.self_register is None:
            return self.mode == "development"
        return self.ingest.self_register

    def as_env(self) -> dict[str, str]:
        """These settings as the ``IOC_*`` variables that read back into them (unset: absent)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            if isinstance(value, dict) and isinstance(getattr(self, name), Section):
                out |= {f"{PREFIX}{name}_{k}".upper(): _env_value(v) for k, v in value.items()
                        if v is not None}  # fmt: skip
            elif value is not None:
                out[f"{PREFIX}{name}".upper()] = _env_value(value)
        return out

    def child_environ(self) -> dict[str, str]:
        """The environment of a child ``ioc`` process: ours, with every setting as we hold it
        (what came from a file or a separate password is in ``as_env``: the sources go)."""
        read = {f"{n}_FILE" for n in setting_names()} | {
            "IOC_DATABASE_PASSWORD",
            "IOC_MQTT_PASSWORD",
        }
        return {**{k: v for k, v in os.environ.items() if k.upper() not in read}, **self.as_env()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not cls._reads_outside:
            return (init_settings,)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, _EnvSource(settings_cls), toml)


class _Defaults(Settings):
    _reads_outside: ClassVar[bool] = False


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers, true/false, and {"name": "url"} as pydantic reads them


def setting_names() -> list[str]:
    """Every setting's variable name: ``IOC_MODE``, ``IOC_INGEST_BATCH_SIZE``, …"""
    names = []
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, Section):
            names += [f"{PREFIX}{name}_{sub}".upper() for sub in section.model_fields]
        else:
            names.append(f"{PREFIX}{name}".upper())
    return names


def read_secret_file(variable: str, path: Path) -> str:
    """A secret file's text less one trailing newline (``echo`` adds one; a secret has none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SettingError(f"{variable}: cannot read {path}: {reason}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _with_password(setting: str, url: str | None, password: str | None) -> str | None:
    if password is None:
        return url
    if not url:
        raise PydanticCustomError("password", f"{setting}_PASSWORD is set but {setting}_URL is not")
    parts = urlsplit(url)
    if parts.password is not None:
        raise PydanticCustomError(
            "password", f"{setting}_URL holds a password and {setting}_PASSWORD gives another"
        )
    if not parts.username:
        raise PydanticCustomError("password", f"{setting}_URL names no user for the password")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def setting_name(loc: tuple[int | str, ...]) -> str:
    """``("ingest", "batch_size")`` → ``IOC_INGEST_BATCH_SIZE``: how a user names a setting."""
    return PREFIX + "_".join(str(part) for part in loc).upper() if loc else "settings"
