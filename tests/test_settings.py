"""The settings tree: every ``IOC_*`` name a deployment uses lands in it, the services' configs
come from it, and the CLI only overrides it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devices.kinds import Technology
from ioc.configs import coverage_config, dashboard_config, ingest_config
from ioc.settings import Settings, setting_names

ROOT = Path(__file__).parent.parent
# Names that are not settings of the tree: tests' own, a benchmark's, the config file's name,
# and the other services' database passwords `ioc roles login SERVICE` reads (the dashboard's
# is a setting, IOC_DASHBOARD_DB_PASSWORD).
NOT_SETTINGS = re.compile(
    r"^IOC_(TEST_|BENCH_|FAULTS_|CONFIG$|(INGEST|PROCESSING|COVERAGE|ALERTS)_DB_PASSWORD$)"
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No IOC_* from the shell running the tests, and no ioc.toml of the working directory."""
    for name in [k for k in os.environ if k.startswith("IOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IOC_CONFIG", str(tmp_path / "absent.toml"))
    return monkeypatch


def documented_names() -> set[str]:
    texts = [ROOT / "README.md", ROOT / "docker-compose.yml"]
    found = set().union(*(re.findall(r"\bIOC_[A-Z0-9_]*[A-Z0-9]\b", p.read_text()) for p in texts))
    # IOC_X_FILE is setting IOC_X read from a file (IOC_{NAME}_FILE alone names the convention).
    found = {n.removesuffix("_FILE") for n in found} - {"IOC_{NAME}", "IOC_X"}
    return {n for n in found if not NOT_SETTINGS.match(n)}


def test_every_documented_variable_is_a_setting_of_the_tree() -> None:
    declared = set(setting_names())  # unset ones too (IOC_DATABASE_URL…)
    assert documented_names() - declared == set()
    assert {"IOC_INGEST_BATCH_SIZE", "IOC_COVERAGE_RESOLUTION_M", "IOC_ALERT_WEBHOOKS",
            "IOC_MAX_PAYLOAD_BYTES", "IOC_LIVENESS_CHECK_S"} <= declared  # fmt: skip


def test_flat_names_land_in_their_sections(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {
        "IOC_INGEST_BATCH_SIZE": "7", "IOC_MQTT_URL": "mqtt://broker:1884",
        "IOC_MQTT_PROTOCOL": "4",
        "IOC_ALERT_WEBHOOKS": '{"ops": "https://ops.example/hook"}', "IOC_MAX_AGE_DAYS": "30",
        "IOC_COVERAGE_METROPOLITAN": "true", "IOC_COVERAGE_THRESHOLD_4G_DBM": "-105",
        "IOC_DASHBOARD_REFRESH_S": "2.5", "IOC_SIMULATE_PASSWORD": "s3cret-device-pass",
        "IOC_MQTT_INGEST_1_PASSWORD": "not-a-setting-of-the-mqtt-section",
    }.items():  # fmt: skip
        clean_env.setenv(name, value)
    s = Settings()
    assert (s.ingest.batch_size, s.mqtt.url, s.mqtt.protocol) == (7, "mqtt://broker:1884", 4)
    assert s.alert.webhooks == {"ops": "https://ops.example/hook"} and s.max_age_days == 30
    assert s.coverage.metropolitan and s.dashboard.refresh_s == 2.5
    assert s.simulate.password == "s3cret-device-pass"
    cov = coverage_config(s)
    assert cov.metropolitan and cov.thresholds_dbm[Technology.G4] == -105
    assert ingest_config(s, database_url="postgresql://db/ioc").max_age_s == 30 * 86400
    assert dashboard_config(s).refresh_s == 2.5


def test_a_child_reads_back_the_settings_it_was_given(clean_env: pytest.MonkeyPatch) -> None:
    ours = Settings.defaults(database_url="postgresql://db/ioc", mqtt={"url": "mqtt://b:1"},
                             ingest={"batch_size": 9, "self_register": False},
                             alert={"webhooks": {"ops": "https://x/hook"}},
                             coverage={"metropolitan": True},
                             dashboard={"tile_url": "t/{z}"})  # fmt: skip
    for name, value in ours.as_env().items():
        clean_env.setenv(name, value)
    assert Settings() == ours
    assert ours.child_environ()["PATH"] == os.environ["PATH"]


def test_a_config_file_has_a_table_per_section_and_the_environment_wins(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "ioc.toml"
    toml.write_text('topic_root = "lab/v1"\n[ingest]\nbatch_size = 11\nwriters = 3\n')
    clean_env.setenv("IOC_CONFIG", str(toml))
    clean_env.setenv("IOC_INGEST_WRITERS", "4")
    s = Settings()
    assert (s.topic_root, s.ingest.batch_size, s.ingest.writers) == ("lab/v1", 11, 4)
    toml.write_text("[ingest]\nbatch_sise = 11\n")  # a typo in a file is an error, not ignored
    with pytest.raises(ValueError, match=r"ingest\.batch_sise"):
        Settings()


def test_defaults_ignore_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_INGEST_BATCH_SIZE", "3")
    assert Settings().ingest.batch_size == 3
    assert Settings.defaults().ingest.batch_size == 5000


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run([sys.executable, "-m", "ioc", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_a_bad_nested_setting_is_one_line_with_its_variable_name() -> None:
    done = ioc("db", "upgrade", IOC_DATABASE_URL="postgresql://x", IOC_LIVENESS_CHECK_S="0")
    assert done.returncode == 2 and done.stderr.startswith("ioc: IOC_LIVENESS_CHECK_S:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_coverage_options_override_their_settings() -> None:
    """A bad IOC_COVERAGE_RESOLUTION_M stops the command; the option given wins over it."""
    bad = ioc("coverage", "report", "--scenario", IOC_COVERAGE_RESOLUTION_M="5")
    assert bad.returncode == 2 and "IOC_COVERAGE_resolution_m: 5.0 m" in bad.stderr
    worse = ioc("coverage", "report", "--scenario", "--resolution-m", "4",
                IOC_COVERAGE_RESOLUTION_M="100")  # fmt: skip
    assert worse.returncode == 2 and "4.0 m is not within" in worse.stderr


def test_a_setting_is_read_from_the_file_its_file_variable_names(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The postgres image's convention, and compose secrets' form: IOC_X_FILE holds IOC_X."""
    (tmp_path / "url").write_text("postgresql://ioc@db:5432/ioc\n")
    (tmp_path / "db").write_text("pa ss/wörd@1\n")  # one trailing newline is not the secret's
    (tmp_path / "group").write_text("g-7f3a9c")
    (tmp_path / "keys").write_text('{"ops": "k1"}')
    clean_env.setenv("IOC_DATABASE_URL_FILE", str(tmp_path / "url"))
    clean_env.setenv("IOC_DATABASE_PASSWORD_FILE", str(tmp_path / "db"))
    clean_env.setenv("IOC_INGEST_SHARE_GROUP_FILE", str(tmp_path / "group"))
    clean_env.setenv("IOC_ALERT_WEBHOOK_SECRETS_FILE", str(tmp_path / "keys"))
    clean_env.setenv("IOC_MQTT_URL", "mqtts://ioc-alerts@broker:8883?ca_file=/c.crt")
    clean_env.setenv("IOC_MQTT_PASSWORD", "x/y")
    s = Settings()
    # The password joins its URL, quoted: every consumer reads one URL.
    assert s.database_url == "postgresql://ioc:pa%20ss%2Fw%C3%B6rd%401@db:5432/ioc"
    assert s.mqtt.url == "mqtts://ioc-alerts:x%2Fy@broker:8883?ca_file=/c.crt"
    assert s.ingest.share_group == "g-7f3a9c" and s.alert.webhook_secrets == {"ops": "k1"}
    # A child gets the result, not the sources (which would now conflict with it).
    child = s.child_environ()
    assert "IOC_DATABASE_PASSWORD_FILE" not in child and "IOC_MQTT_PASSWORD" not in child
    assert child["IOC_DATABASE_URL"] == s.database_url
    for name, value in child.items():
        if name.startswith("IOC_"):
            clean_env.setenv(name, value)
    for name in ("IOC_DATABASE_URL_FILE", "IOC_DATABASE_PASSWORD_FILE", "IOC_MQTT_PASSWORD",
                 "IOC_INGEST_SHARE_GROUP_FILE", "IOC_ALERT_WEBHOOK_SECRETS_FILE"):  # fmt: skip
        clean_env.delenv(name)
    assert Settings() == s


def test_a_setting_and_its_file_both_set_or_an_unreadable_file_is_one_clear_line(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("postgresql://x")
    both = ioc("db", "upgrade", IOC_DATABASE_URL="postgresql://x",
               IOC_DATABASE_URL_FILE=str(secret))  # fmt: skip
    assert both.returncode == 2
    assert both.stderr == (
        "ioc: IOC_DATABASE_URL and IOC_DATABASE_URL_FILE are both set: give one of them\n"
    )
    missing = ioc("db", "upgrade", IOC_DATABASE_URL_FILE=str(tmp_path / "absent"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert missing.stderr.startswith(f"ioc: IOC_DATABASE_URL_FILE: cannot read {tmp_path}/absent")


def test_a_password_apart_needs_a_url_without_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_DATABASE_PASSWORD", "long-enough-secret")
    with pytest.raises(ValueError, match="IOC_DATABASE_PASSWORD is set but IOC_DATABASE_URL"):
        Settings()
    clean_env.setenv("IOC_DATABASE_URL", "postgresql://ioc:other@db/ioc")
    with pytest.raises(ValueError, match="IOC_DATABASE_URL holds a password"):
        Settings()
