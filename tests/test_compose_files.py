"""The compose file as a document: pinned images, health checks, restart policies, named
volumes, production mode, an MQTT account per connection, every secret in .env.example, and
``docker-compose config`` where it exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ioc.production import secret_problem
from ioc.provision import read_env
from tests.support.compose import (
    APP_SERVICES,
    COMPOSE,
    ESCAPED,
    ROOT,
    SERVICES,
    VARIABLE,
    interpolate,
)
from tests.support.environment import inherited_environ


def test_every_service_is_pinned_healthy_restarting_and_on_named_volumes() -> None:
    assert set(APP_SERVICES) | {"timescaledb", "mosquitto", "prometheus"} == set(SERVICES)
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"
        assert service["restart"] in ("unless-stopped", "no"), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./ioc/"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith("./deploy/"):  # deploy/: made by ioc devices provision
                assert source in COMPOSE["volumes"], f"{name}: {source} is not a named volume"
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    tsdb = SERVICES["timescaledb"]["image"]
    assert tsdb.startswith("timescale/timescaledb:") and int(tsdb.rsplit("-pg", 1)[1]) >= 16
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2.")
    for name in ("timescaledb", "mosquitto", "ingest-1", "ingest-2", "dashboard"):
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no health check"
    assert SERVICES["migrate"]["restart"] == "no"


def test_two_ingesters_share_the_subscription_and_every_app_is_in_production_mode() -> None:
    ids = set()
    for name in ("ingest-1", "ingest-2"):
        command = SERVICES[name]["command"]
        assert "--shared" in command
        ids.add(command[command.index("--client-id") + 1])
    assert len(ids) == 2
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"]["IOC_MODE"] == "production", name
    # The dashboard logs in as its read-only role, never as the owner.
    assert SERVICES["dashboard"]["environment"]["IOC_DATABASE_URL"].startswith(
        "postgresql://ioc_dashboard_web:"
    )


def test_every_mqtt_connection_logs_in_with_an_account_of_its_own() -> None:
    """The broker makes the username the client id, so two connections on one account would
    end each other's (README, Security)."""
    env = {k: "x" * 16 for k in read_env(ROOT / ".env.example")}
    users = {}
    for name, service in SERVICES.items():
        url = service.get("environment", {}).get("IOC_MQTT_URL")
        if url:
            users[name] = urlsplit(interpolate(url, env)).username
    check = re.search(r" -u (\S+) ", SERVICES["mosquitto"]["healthcheck"]["test"][-1])
    assert check, "the broker's health check logs in with no account"
    users["mosquitto (health check)"] = check[1]
    assert len(set(users.values())) == len(users), users
    for name in ("ingest-1", "ingest-2"):  # the client id it presents is its account's name
        command = SERVICES[name]["command"]
        assert command[command.index("--client-id") + 1] == users[name]


def test_env_example_names_every_secret_and_none_of_its_values_would_start() -> None:
    example = read_env(ROOT / ".env.example")
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    needed = {m[0] for m in VARIABLE.findall(text)}
    needed |= set(ESCAPED.findall(text))  # read in the container, from env_file: .env
    assert needed == set(example), "compose and .env.example disagree"
    for name, value in example.items():
        assert secret_problem(value), f"{name}={value} would pass as a real secret"


def _compose_validator() -> tuple[list[str], bool] | None:
    """``docker compose`` (v2), else Debian's ``docker-compose`` 1.29 (v1, which predates the
    top-level ``name`` key, so it is shown the file without it); None where neither is here."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:  # fmt: skip
        return [docker, "compose"], False
    legacy = shutil.which("docker-compose")
    return ([legacy], True) if legacy else None


def test_docker_compose_config_accepts_it_where_docker_compose_exists(tmp_path: Path) -> None:
    validator = _compose_validator()
    if validator is None:
        pytest.skip(
            "no `docker compose` or `docker-compose` here; the document tests above stand in for it"
        )
    command, drop_name = validator
    env = inherited_environ(**{k: "x" * 16 for k in read_env(ROOT / ".env.example")})
    # env_file: .env must exist; a copy of the example beside a copy of the compose file.
    document = dict(COMPOSE)
    if drop_name:
        document.pop("name")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    done = subprocess.run([*command, "config", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
