"""The services' configs, built from the settings tree: ingest/ and processing/ may not import
ioc/, so their config classes hold no defaults of the settings, and this is where the two meet.

Each builder takes ``fields`` that win over the settings: the CLI's options, and the tests' and
benches' own (a test gives each run its own topic root and a tiny batch).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioc.errors import SettingError
from ioc.settings import Settings

if TYPE_CHECKING:
    from dashboard.data import DashboardConfig
    from ingest.config import IngestConfig
    from processing.alerts.config import AlertConfig
    from processing.alerts.routing import Routing
    from processing.coverage.advise import AdvisorSetup
    from processing.coverage.config import CoverageConfig
    from processing.coverage.service import CoverageServiceConfig
    from processing.liveness import LivenessConfig

_WEBHOOK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SettingError("IOC_DATABASE_URL is not set (or run `ioc up` for an embedded one)")
    return settings.database_url


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt.url:
        raise SettingError("IOC_MQTT_URL is not set (or run `ioc up` for an embedded broker)")
    return settings.mqtt.url


def _urls(settings: Settings, fields: dict[str, Any], *, mqtt: bool = True) -> dict[str, Any]:
    urls = {"database_url": fields["database_url"] if "database_url" in fields
            else require_database(settings)}  # fmt: skip
    if mqtt:
        urls["mqtt_url"] = fields["mqtt_url"] if "mqtt_url" in fields else require_mqtt(settings)
    return urls


def ingest_config(
    settings: Settings | None = None, *, shared: bool = False, **fields: Any
) -> IngestConfig:
    """``shared``: on the ingesters' shared subscription, whose group is a secret in
    production."""
    from ingest.config import IngestConfig
    from ioc.production import share_group_problem

    s = settings or Settings.defaults()
    production = shared and s.mode == "production"
    if production and (problem := share_group_problem(s.ingest.share_group)):
        raise SettingError(problem)
    values: dict[str, Any] = {
        "topic_root": s.topic_root,
        "client_id": s.ingest.client_id,
        "shared_subscription": shared,
        "share_group": s.ingest.share_group,
        "batch_size": s.ingest.batch_size,
        "batch_age_s": s.ingest.batch_age_s,
        "writers": s.ingest.writers,
        "max_payload_bytes": s.max_payload_bytes,
        "max_future_s": s.max_future_s,
        "max_age_s": s.max_age_days * 86400,
        "max_topic_chars": s.max_topic_chars,
        "window_bytes": s.ingest.window_mb * 1024 * 1024,
        "self_register": s.self_register,
        "protocol": s.mqtt.protocol,
        "metrics_address": s.ingest.metrics_address,
    }
    return IngestConfig(**(values | fields | _urls(s, fields)))


def liveness_config(settings: Settings | None = None, **fields: Any) -> LivenessConfig:
    from processing.liveness import LivenessConfig

    s = settings or Settings.defaults()
    values: dict[str, Any] = {
        "missed_intervals": s.liveness.missed_intervals,
        "min_silence_s": s.liveness.min_silence_s,
        "check_every_s": s.liveness.check_s,
        "metrics_address": s.liveness.metrics_address,
        "metrics_port": s.liveness.metrics_port or None,
    }
    return LivenessConfig(**(values | fields | _urls(s, fields, mqtt=False)))


def coverage_config(settings: Settings | None = None, **fields: Any) -> CoverageConfig:
    from devices.kinds import Technology
    from processing.coverage.config import CoverageConfig

    c = (settings or Settings.defaults()).coverage
    values: dict[str, Any] = {
        "resolution_m": c.resolution_m,
        "thresholds_dbm": {
            Technology.G4: c.threshold_4g_dbm,
            Technology.G3: c.threshold_3g_dbm,
            Technology.G2: c.threshold_2g_dbm,
        },
        "measured_window_s": c.measured_window_h * 3600.0,
        "measured_min_samples": c.min_samples,
        "measured_min_probes": c.min_probes,
        "metropolitan": c.metropolitan,
        "unknown_grace_s": c.unknown_grace_s,
    }
    values["dem_path"], values["dem_province"] = dem_setting(c.dem)
    try:
        return CoverageConfig(**(values | fields))
    except ValueError as err:
        raise SettingError(f"IOC_COVERAGE_{err}") from None


def dem_setting(value: str) -> tuple[Path | None, int | None]:
    """IOC_COVERAGE_DEM as (the file, the one province that reads it; None: every one)."""
    from seeds.national import BINH_DINH
    from seeds.sources import SCENARIO_DEM

    if value.strip().lower() == "scenario":
        return SCENARIO_DEM, BINH_DINH  # the synthetic terrain is Bình Định's alone
    if value.strip().lower() in ("none", ""):
        return None, None
    path = Path(value.strip()).expanduser().absolute()  # the services may not share our cwd
    if not path.is_file():
        raise SettingError(f"IOC_COVERAGE_DEM: {path}: no such file")
    return path, None


def coverage_service_config(
    settings: Settings | None = None, **fields: Any
) -> CoverageServiceConfig:
    from processing.coverage.runway import RunwayConfig
    from processing.coverage.service import CoverageServiceConfig

    s = settings or Settings.defaults()
    c = s.coverage
    values: dict[str, Any] = {
        "coverage": coverage_config(s),
        "runway": RunwayConfig(
            every_s=c.runway_every_s,
            window_s=c.runway_window_h * 3600,
            min_readings=c.runway_min_readings,
            min_drop_pct=c.runway_min_drop_pct,
            nominal_drain_pct_per_h=c.runway_nominal_drain_pct_per_h,
            nominal_band=c.runway_nominal_band,
        ),
        "sweep_s": s.coverage.sweep_s,
        "metrics_address": s.coverage.metrics_address,
        "metrics_port": s.coverage.metrics_port or None,
        "dask_scheduler": s.dask_scheduler,
    }
    return CoverageServiceConfig(**(values | fields | _urls(s, fields, mqtt=False)))


def alert_config(
    settings: Settings | None = None,
    *,
    evaluate: bool = True,
    deliver: bool = True,
    **fields: Any,
) -> AlertConfig:
    from ioc.production import secret_problem
    from processing.alerts.config import AlertConfig
    from processing.alerts.routing import load_routing
    from processing.alerts.rules import load_rules

    s = settings or Settings.defaults()
    for name, url in s.alert.webhooks.items():
        if not _WEBHOOK_NAME.match(name):
            raise SettingError(f"IOC_ALERT_WEBHOOKS: name {name!r} must be letters, digits, _.-")
        if not url.startswith(("http://", "https://")):
            raise SettingError(f"IOC_ALERT_WEBHOOKS: {name}: {url!r} is not an http(s) URL")
    if unknown := sorted(s.alert.webhook_secrets.keys() - s.alert.webhooks.keys()):
        raise SettingError(f"IOC_ALERT_WEBHOOK_SECRETS: {unknown} name no IOC_ALERT_WEBHOOKS")
    if s.mode == "production":
        for name, url in s.alert.webhooks.items():
            # An alert names villages, people and failing sites: not for every network hop.
            if url.startswith("http://") and not s.alert.allow_http_webhooks:
                raise SettingError(
                    f"IOC_ALERT_WEBHOOKS: {name} is plain http://; IOC_MODE=production sends "
                    "alerts over https:// only (IOC_ALERT_ALLOW_HTTP_WEBHOOKS=true to allow it)"
                )
            if problem := secret_problem(s.alert.webhook_secrets.get(name)):
                raise SettingError(
                    f"IOC_ALERT_WEBHOOK_SECRETS: the secret of webhook {name!r} {problem}; "
                    "IOC_MODE=production signs every webhook"
                )
    load_rules(s.alert.rules)  # a bad rules file stops here, with its one-line reason
    routing = load_routing(s.alert.rules, province=s.province)
    people = _people_channels(s, routing)
    values: dict[str, Any] = {
        "mqtt_url": s.mqtt.url,  # None: alerts are not published on MQTT
        "mqtt_protocol": s.mqtt.protocol,
        "topic_root": s.topic_root,
        "rules_path": s.alert.rules,
        "webhooks": dict(s.alert.webhooks),
        "webhook_secrets": dict(s.alert.webhook_secrets),
        "max_attempts": s.alert.max_attempts,
        "evaluate": evaluate,
        "deliver": deliver,
        "webhook_timeout_s": s.alert.webhook_timeout_s,
        "routing": routing,
        "dashboard_url": s.alert.dashboard_url,
        **people,
        "metrics_address": s.alert.metrics_address,
        "metrics_port": s.alert.metrics_port or None,
    }
    return AlertConfig(**(values | fields | _urls(s, fields, mqtt=False)))


def _people_channels(s: Settings, routing: Routing) -> dict[str, Any]:
    """The e-mail, Telegram and SMS settings of AlertConfig, each only where a routed recipient
    uses it; a recipient whose channel has no settings stops here with its one-line reason."""
    from processing.alerts.config import EmailSettings, SmsSettings, TelegramSettings
    from processing.alerts.routing import Medium

    a, out = s.alert, dict[str, Any]()
    where = a.rules or "rules.toml (shipped)"
    have = {Medium.EMAIL: ("IOC_ALERT_SMTP_HOST", a.smtp_host is not None),
            Medium.TELEGRAM: ("IOC_ALERT_TELEGRAM_TOKEN", a.telegram_token is not None),
            Medium.SMS: ("IOC_ALERT_SMS_URL", a.sms_url is not None)}  # fmt: skip
    for r in routing.used():
        need, found = have.get(r.medium) or (
            f"a webhook {r.address[0]!r} in IOC_ALERT_WEBHOOKS",
            r.address[0] in a.webhooks,
        )
        if not found:
            raise SettingError(f"{where}: recipient {r.name!r} ({r.medium.value}) needs {need}")
    if s.mode == "production":
        # As for webhooks: an alert names villages, people and failing sites.
        for name, url in (("IOC_ALERT_SMS_URL", a.sms_url),
                          ("IOC_ALERT_TELEGRAM_API_URL", a.telegram_api_url)):  # fmt: skip
            if url and url.startswith("http://") and not a.allow_http_webhooks:
                raise SettingError(f"{name} is plain http://; IOC_MODE=production sends alerts "
                                   "over https:// only (IOC_ALERT_ALLOW_HTTP_WEBHOOKS=true to "
                                   "allow it)")  # fmt: skip
        if a.smtp_host and not a.smtp_starttls and a.smtp_host not in ("localhost", "127.0.0.1"):
            raise SettingError(
                "IOC_ALERT_SMTP_STARTTLS is off for a relay beyond this host; "
                "IOC_MODE=production sends the SMTP login and alerts encrypted"
            )
    if a.smtp_host:
        out["email"] = EmailSettings(
            host=a.smtp_host, port=a.smtp_port, sender=a.smtp_from, username=a.smtp_username,
            password=a.smtp_password, starttls=a.smtp_starttls, ca_file=a.smtp_ca_file,
        )  # fmt: skip
    if a.telegram_token:
        out["telegram"] = TelegramSettings(token=a.telegram_token, api_url=a.telegram_api_url)
    if a.sms_url:
        out["sms"] = SmsSettings(url=a.sms_url, method=a.sms_method, headers=dict(a.sms_headers),
                                 body=a.sms_body, key=a.sms_key)  # fmt: skip
    return out


def advisor_setup(settings: Settings) -> AdvisorSetup:
    from processing.coverage.advise import AdvisorSetup, StandardSite

    c = settings.coverage
    site = StandardSite.of(
        c.advise_technology,
        c.advise_band_mhz,
        height_m=c.advise_height_m,
        tx_power_dbm=c.advise_tx_power_dbm,
        sectors=c.advise_sectors,
        tilt_deg=c.advise_tilt_deg,
    )
    return AdvisorSetup(coverage_config(settings), site, c.advise_spacing_m, c.advise_road_km)


def dashboard_config(settings: Settings) -> DashboardConfig:
    from dashboard.data import DashboardConfig

    return DashboardConfig(
        database_url=settings.database_url,
        refresh_s=settings.dashboard.refresh_s,
        tile_url=settings.dashboard.tile_url,
        session_hours=settings.dashboard.session_hours,
        idle_minutes=settings.dashboard.idle_minutes,
        login_failures=settings.dashboard.login_failures,
        address_failures=settings.dashboard.address_failures,
        login_window_minutes=settings.dashboard.login_window_minutes,
        lockout_minutes=settings.dashboard.lockout_minutes,
        map_skip=tuple(filter(None, settings.dashboard.map_skip.split(","))),
        advisor=advisor_setup(settings),
    )
