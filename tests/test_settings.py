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
from ioc.settings import Settings, broker_passwords

ROOT = Path(__file__).parent.parent
# Names that are not settings of the tree: tests' own, a benchmark's, the config file's name,
# and the broker accounts' passwords that provisioning reads (IOC_MQTT_{ACCOUNT}_PASSWORD).
NOT_SETTINGS = re.compile(r"^IOC_(TEST_|BENCH_|FAULTS_|CONFIG$|MQTT_\w+_PASSWORD$)")
UNSET_BY_DEFAULT = {
    "IOC_DATABASE_URL", "IOC_MQTT_URL", "IOC_DASHBOARD_TILE_URL", "IOC_ALERT_RULES",
    "IOC_INGEST_SELF_REGISTER", "IOC_SIMULATE_PASSWORD",
}  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No IOC_* from the shell running the tests, and no ioc.toml of the working directory."""
    for name in [k for k in os.environ if k.startswith("IOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IOC_CONFIG", str(tmp_path / "absent.toml"))
    return monkeypatch


def documented_names() -> set[str]:
    texts = [ROOT / "README.md", ROOT / "docker-compose.yml", ROOT / ".env.example"]
    found = set().union(*(re.findall(r"\bIOC_[A-Z0-9_]*[A-Z0-9]\b", p.read_text()) for p in texts))
    return {n for n in found if not NOT_SETTINGS.match(n)}


def test_every_documented_variable_is_a_setting_of_the_tree() -> None:
    declared = set(Settings.defaults().as_env()) | UNSET_BY_DEFAULT
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
    assert broker_passwords() == {"IOC_MQTT_INGEST_1_PASSWORD": "not-a-setting-of-the-mqtt-section"}


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
