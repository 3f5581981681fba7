"""The compose file as a document: pinned images, health checks, restart policies, named
volumes, production mode, an MQTT account and a database login per service, each service given
exactly the secrets it reads (derived from the file itself), and ``docker-compose config``
where it exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ioc.secrets import DB_SERVICES, db_secret, deployment_secrets
from tests.support.compose import (
    APP_SERVICES,
    COMPOSE,
    ROOT,
    SECRET_PATH,
    SECRETS,
    SERVICES,
    VARIABLE,
)
from tests.support.environment import inherited_environ

OWNER_PASSWORD = "postgres_password"


def test_every_service_is_pinned_healthy_restarting_and_on_named_volumes() -> None:
    assert set(APP_SERVICES) | {"timescaledb", "mosquitto", "proxy"} <= set(SERVICES)
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"
        assert service["restart"] in ("unless-stopped", "no"), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./ioc/"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith("./deploy/"):  # deploy/: made by ioc secrets, certs…
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


def _database_login(service: dict[str, Any]) -> str | None:
    url = service.get("environment", {}).get("IOC_DATABASE_URL")
    return urlsplit(url).username if url else None


def test_each_service_logs_in_to_the_database_as_its_own_role() -> None:
    """Only migrate is the owner (it makes the others' logins); the rest are ioc_SERVICE_svc,
    members of their group role (migration 0013), never a superuser."""
    logins = {name: _database_login(SERVICES[name]) for name in APP_SERVICES}
    assert logins.pop("migrate") == "ioc" == SERVICES["timescaledb"]["environment"]["POSTGRES_USER"]
    service_of = {"ingest-1": "ingest", "ingest-2": "ingest"}
    for name, login in logins.items():
        assert login == f"ioc_{service_of.get(name, name)}_svc", name
    assert set(logins.values()) == {f"ioc_{s}_svc" for s in DB_SERVICES}
    # migrate makes each of them, from that service's own secret.
    assert _secrets_read(SERVICES["migrate"]) == {OWNER_PASSWORD} | {
        db_secret(s) for s in DB_SERVICES
    }


def test_every_mqtt_connection_logs_in_with_an_account_of_its_own() -> None:
    """The broker makes the username the client id, so two connections on one account would
    end each other's (README, Security)."""
    users = {}
    for name, service in SERVICES.items():
        url = service.get("environment", {}).get("IOC_MQTT_URL")
        if url:
            users[name] = urlsplit(url).username
    check = re.search(r" -u (\S+) ", SERVICES["mosquitto"]["healthcheck"]["test"][-1])
    assert check, "the broker's health check logs in with no account"
    users["mosquitto (health check)"] = check[1]
    assert len(set(users.values())) == len(users), users
    for name in ("ingest-1", "ingest-2"):  # the client id it presents is its account's name
        command = SERVICES[name]["command"]
        assert command[command.index("--client-id") + 1] == users[name]


def _secrets_read(service: dict[str, Any]) -> set[str]:
    """The secrets a service's own text reads from /run/secrets: its environment, command,
    entrypoint and health check (migrate's loop reads db_${s}_password for each service)."""
    parts = ("environment", "command", "entrypoint", "healthcheck")
    text = yaml.safe_dump({k: service.get(k) for k in parts}, width=1000)
    found = set(SECRET_PATH.findall(text)) - {"db_"}
    if "/run/secrets/db_$${s}_password" in text:
        loop = re.search(r"for s in ([\w ]+);", text)
        assert loop, "migrate's loop over services is not where this test reads it"
        found |= {db_secret(s) for s in loop[1].split()}
    return found


def test_each_service_receives_exactly_the_secrets_it_reads() -> None:
    """No shared env file: a secret reaches a container only through its own ``secrets:``
    list, and a service listing one it never reads fails here (the dashboard gets no owner
    password, no broker password, no other service's login)."""
    for name, service in SERVICES.items():
        assert "env_file" not in service, f"{name} reads a shared env file"
        given = set(service.get("secrets", []))
        if name == "proxy":  # Caddy reads its key where the Caddyfile says
            caddyfile = (ROOT / "ioc/config/Caddyfile").read_text(encoding="utf-8")
            assert given == set(SECRET_PATH.findall(caddyfile)) == {"dashboard_tls_key"}
            continue
        assert given == _secrets_read(service), name
        for key, value in service.get("environment", {}).items():
            if key.endswith("_FILE"):  # IOC_X_FILE, POSTGRES_PASSWORD_FILE: a secret it has
                assert SECRET_PATH.fullmatch(str(value)), f"{name}: {key}"
                assert str(value).rsplit("/", 1)[1] in given, f"{name}: {key}"
    holders = {n for n, s in SERVICES.items() if OWNER_PASSWORD in s.get("secrets", [])}
    assert holders == {"timescaledb", "migrate"}
    assert SERVICES["dashboard"]["secrets"] == ["db_dashboard_password"]
    # Nothing secret is interpolated from the host's environment into the file either.
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    secret_like = re.compile("PASSWORD|SECRET|TOKEN|KEY|GROUP")
    assert not [m[0] for m in VARIABLE.findall(text) if secret_like.search(m[0])]


def test_every_secret_is_a_file_that_ioc_secrets_init_or_ioc_certs_makes() -> None:
    made = {s.name for s in deployment_secrets()}
    for name, secret in SECRETS.items():
        if name == "dashboard_tls_key":
            assert secret["file"] == "./deploy/proxy/dashboard.key"  # ioc certs dashboard
        else:
            assert name in made and secret["file"] == f"./deploy/secrets/{name}", name
    used = set().union(*(s.get("secrets", []) for s in SERVICES.values()))
    assert used == set(SECRETS), "a secret is declared that no service receives, or the reverse"


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
    document = dict(COMPOSE)
    if drop_name:
        document.pop("name")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    for secret in SECRETS.values():  # what ioc secrets init and ioc certs would have made
        path = tmp_path / secret["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x" * 43)
    done = subprocess.run([*command, "config", "--quiet"], cwd=tmp_path, env=inherited_environ(),
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
