"""The compose file, checked twice: as a document (pinned images, health checks, restart
policies, named volumes, production mode, every secret in .env.example), and as a running
stack — this machine kind has no container engine, so every service of docker-compose.yml runs
here as a plain process from the same file: its command, its environment, the files it mounts,
with only host names, ports and mount points translated."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiomqtt
import msgspec
import psycopg
import pytest
import yaml

from devices.endpoint import MqttEndpoint
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.brokers import free_port, wait_for_port
from ioc.production import secret_problem
from ioc.provision import read_env
from store.audit import reading_count
from store.db import connect
from tests.procs import eventually

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RUNNING = ("ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard")
APP_SERVICES = ("migrate", "ingest-1", "ingest-2", "processing", "coverage", "alerts",
                "dashboard")
VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
ESCAPED = re.compile(r"\$\$\{?(\w+)")  # compose's $$NAME: the container's shell expands it


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:?error}``, ``${VAR:-default}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise AssertionError(f"{name} unset: {arg}")
        return arg or ""

    return VARIABLE.sub(one, value).replace("$$", "$")


# -- the document ---------------------------------------------------------------------------


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
        pytest.skip("no `docker compose` or `docker-compose` here; the document tests above "
                    "stand in for it")
    command, drop_name = validator
    env = {**os.environ, **{k: "x" * 16 for k in read_env(ROOT / ".env.example")}}
    # env_file: .env must exist; a copy of the example beside a copy of the compose file.
    document = dict(COMPOSE)
    if drop_name:
        document.pop("name")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    done = subprocess.run([*command, "config", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


# -- the same services as processes -----------------------------------------------------------


class Stack:
    """Translates a compose service into a process on this machine."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.env_file = {k: secrets.token_urlsafe(18) for k in read_env(ROOT / ".env.example")}
        self.mqtt_port = free_port()
        self.database = psycopg.conninfo.conninfo_to_dict(database_url)
        # Roles are the server's: a name of this run's own, everywhere the file names it.
        self.dashboard_login = f"ioc_dashboard_web_{uuid.uuid4().hex[:8]}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def host_path(self, source: str) -> str:
        relative = source.removeprefix("./")
        base = self.folder if relative.startswith("deploy/") else ROOT
        return str(base / relative)

    def mounts(self, service: dict[str, Any]) -> dict[str, str]:
        found = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                found[target] = self.host_path(source)
        return found

    def translate_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "postgresql":
            user = "postgres" if parts.username == "ioc" else parts.username  # image superuser
            user = self.dashboard_login if user == "ioc_dashboard_web" else user
            host = f"{self.database.get('host', '127.0.0.1')}:{self.database.get('port', 5432)}"
            netloc = f"{user}:{parts.password}@{host}"
            return urlunsplit((parts.scheme, netloc, f"/{self.database['dbname']}", "", ""))
        netloc = parts.netloc.replace("@mosquitto:8883", f"@127.0.0.1:{self.mqtt_port}")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def environment(self, name: str) -> dict[str, str]:
        service = SERVICES[name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
        env.update(self.env_file)
        mounts = self.mounts(service)
        for key, value in service.get("environment", {}).items():
            value = interpolate(str(value), self.env_file)
            if "://" in value:
                value = self.translate_url(value)
            for target, source in mounts.items():
                value = value.replace(target, source)
            env[key] = value
        if "IOC_INGEST_METRICS_PORT" in env:
            self.ports[name] = free_port()
            env["IOC_INGEST_METRICS_PORT"] = str(self.ports[name])
            env["IOC_INGEST_METRICS_ADDRESS"] = "127.0.0.1"
        # `ioc` and the interpreter of this test, as the image's PATH has them.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def command(self, name: str) -> list[str]:
        service = SERVICES[name]
        if "entrypoint" in service:
            entry = [part.replace("ioc_dashboard_web", self.dashboard_login)
                     for part in service["entrypoint"]]  # fmt: skip
            return entry
        command = [str(part) for part in service["command"]]
        if "--port" in command:
            self.ports[name] = free_port()
            command[command.index("--port") + 1] = str(self.ports[name])
        return [sys.executable, "-m", "ioc", *[c.replace("0.0.0.0", "127.0.0.1") for c in command]]

    def run(self, name: str, *, wait: bool = False) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(self.command(name), env=self.environment(name), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.processes[name] = process
        if wait:
            process.wait(300)
            assert process.returncode == 0, f"{name} failed: {self.log(name)}"
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def start_broker(self) -> None:
        """The mosquitto service: its command on the generated config, mounts translated."""
        service = SERVICES["mosquitto"]
        mounts = self.mounts(service)
        config_in_container = service["command"][-1]
        config_dir = os.path.dirname(config_in_container)
        data = self.folder / "mosquitto-data"
        data.mkdir()
        text = Path(mounts[config_dir], "mosquitto.conf").read_text(encoding="utf-8")
        text = text.replace(config_dir, mounts[config_dir]).replace("/mosquitto/data", str(data))
        text = text.replace("listener 8883\n", f"listener {self.mqtt_port} 127.0.0.1\n")
        assert f"listener {self.mqtt_port}" in text
        local = self.folder / "mosquitto.local.conf"
        local.write_text(text, encoding="utf-8")
        if os.geteuid() == 0:
            shutil.chown(data, "mosquitto")
        log = (self.folder / "mosquitto.log").open("ab")
        mosquitto = shutil.which("mosquitto")
        assert mosquitto
        self.processes["mosquitto"] = subprocess.Popen(
            [mosquitto, "-c", str(local)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.mqtt_port, proc=self.processes["mosquitto"])

    def broker_healthcheck(self) -> int:
        """The mosquitto service's health check, run here: its exit code."""
        command = SERVICES["mosquitto"]["healthcheck"]["test"][-1]
        for target, source in self.mounts(SERVICES["mosquitto"]).items():
            command = command.replace(target, source)
        command = command.replace("-h localhost -p 8883", f"-h 127.0.0.1 -p {self.mqtt_port}")
        env = {**os.environ, **self.env_file}
        done = subprocess.run(["sh", "-c", command.replace("$$", "$")], env=env,
                              capture_output=True, timeout=30, check=False)  # fmt: skip
        return done.returncode

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def ioc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ioc", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture
def stack(database_url: str, pg_server_url: str) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="ioc-compose-") as tmp:
        os.chmod(tmp, 0o755)  # the broker drops root for its own user
        running = Stack(Path(tmp), database_url)
        try:
            yield running
        finally:
            running.stop()
            # Its database goes with the fixture; the login role is the server's.
            with psycopg.connect(pg_server_url, autocommit=True) as admin:
                drop = psycopg.sql.SQL("DROP ROLE IF EXISTS {}")
                admin.execute(drop.format(psycopg.sql.Identifier(running.dashboard_login)))


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=3) as response:
        return dict(msgspec.json.decode(response.read()))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False


async def _publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    e = MqttEndpoint.parse(url)
    async with aiomqtt.Client(e.host, e.port, username=e.username, password=e.password,
                              tls_params=e.tls_parameters(), protocol=e.protocol_version) as c:
        for topic, payload in messages:
            await c.publish(topic, payload, qos=1)


def _reading(device_id: str, seq: int, **metrics: Any) -> bytes:
    ts = datetime.now(UTC).isoformat()
    return msgspec.json.encode({"device_id": device_id, "ts": ts, "seq": seq, **metrics})


async def test_the_compose_services_run_as_processes_from_the_same_files(stack: Stack) -> None:
    # The setup steps the compose file's header gives, with the .env the operator made.
    env = {**os.environ, **stack.env_file}
    certs = stack.folder / "deploy" / "mosquitto" / "certs"
    owner = ["--owner", "mosquitto"] if os.geteuid() == 0 else []
    done = ioc("certs", "dev", "--out", str(certs), *owner, env=env)
    assert done.returncode == 0, done.stderr
    done = ioc("devices", "provision", "--out", str(certs.parent), "--mount",
               "/mosquitto/config", *owner, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    stack.start_broker()
    assert stack.broker_healthcheck() == 0, stack.log("mosquitto")
    stack.run("migrate", wait=True)
    for name in RUNNING:
        stack.run(name)

    health = {n: f"http://127.0.0.1:{stack.ports[n]}/health" for n in ("ingest-1", "ingest-2")}
    try:
        await eventually(lambda: all(_http_ok(u) for u in health.values()), timeout_s=90)
    except AssertionError:
        raise AssertionError(stack.log("ingest-1") + stack.log("ingest-2")) from None

    # Three devices publish over TLS with their own provisioned accounts.
    with (certs.parent / "credentials.csv").open(encoding="utf-8", newline="") as f:
        bts = [r for r in csv.DictReader(f) if r["kind"] == "bts"][:3]
    topics = Topics()
    url = "mqtts://{u}:{p}@127.0.0.1:" + f"{stack.mqtt_port}?ca_file={certs / 'ca.crt'}"
    per_device = 20
    for row in bts:
        topic = topics.device(Kind.BTS, row["username"], Channel.TELEMETRY)
        await _publish(url.format(u=row["username"], p=row["password"]),
                       [(topic, _reading(row["username"], seq, power_source="mains"))
                        for seq in range(1, per_device + 1)])  # fmt: skip
    owner_url = stack.environment("processing")["IOC_DATABASE_URL"]

    def stored() -> int:
        with connect(owner_url) as conn:
            return reading_count(conn, Kind.BTS).distinct

    await eventually(lambda: stored() >= 3 * per_device, timeout_s=60)
    with connect(owner_url) as conn:
        count = reading_count(conn, Kind.BTS)
    assert (count.rows, count.duplicated) == (3 * per_device, 0)
    # The shared subscription split the work between the two ingesters (their counts can
    # trail the rows by the batch just committed, so wait for them as for the rows).
    await eventually(lambda: sum(_get_json(u)["stored"] for u in health.values()) >= 3 * per_device,
                     timeout_s=30)
    for name, health_url in health.items():
        answer = await asyncio.to_thread(_get_json, health_url)
        assert answer["stored"] > 0, f"{name} stored nothing: {answer}"

    # The alert engine (its own broker account, TLS) publishes a low-battery alert, seen on
    # the monitor's account: on an ingester's, the watcher would take over its session.
    monitor = read_env(certs.parent / "services.env")["IOC_MQTT_MONITOR_PASSWORD"]
    watcher = MqttEndpoint.parse(url.format(u="ioc-monitor", p=monitor))
    async with aiomqtt.Client(watcher.host, watcher.port, username=watcher.username,
                              password=watcher.password, tls_params=watcher.tls_parameters(),
                              protocol=watcher.protocol_version) as client:  # fmt: skip
        await client.subscribe(topics.all_alerts(), qos=1)
        device = bts[0]["username"]
        await _publish(url.format(u=device, p=bts[0]["password"]), [(
            topics.device(Kind.BTS, device, Channel.TELEMETRY),
            _reading(device, per_device + 1, power_source="battery", battery_pct=12.0),
        )])

        async def first_alert() -> str:
            async for message in client.messages:
                return str(message.topic)
            raise AssertionError("no alert")

        try:
            topic = await asyncio.wait_for(first_alert(), 90)
        except TimeoutError:
            raise AssertionError(stack.log("alerts")) from None
    assert "bts_battery_low" in topic and device in topic

    # The dashboard serves, logged in to the database as its read-only role.
    try:
        await eventually(lambda: _http_ok(
            f"http://127.0.0.1:{stack.ports['dashboard']}/_stcore/health"), timeout_s=90)
    except AssertionError:
        raise AssertionError(stack.log("dashboard")) from None
    # The coverage engine judged every village of the scenario on the towers' states.
    def judged() -> int:
        with connect(owner_url) as conn:
            row = conn.execute("SELECT count(*) FROM coverage_places").fetchone()
        return row[0] if row else 0

    try:
        await eventually(lambda: judged() > 0, timeout_s=120)
    except AssertionError:
        raise AssertionError(stack.log("coverage")) from None
    for name in RUNNING:
        assert stack.processes[name].poll() is None, f"{name} died: {stack.log(name)}"


def test_a_service_refuses_the_example_secrets_in_one_line(database_url: str) -> None:
    example = read_env(ROOT / ".env.example")
    stack = Stack(Path(tempfile.gettempdir()), database_url)
    stack.env_file = example
    env = stack.environment("processing")
    done = subprocess.run(stack.command("processing"), env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "IOC_DATABASE_URL" in lines[0] and "example value" in lines[0]
