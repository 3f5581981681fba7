"""docker-compose.yml read as this machine kind runs it (no container engine): the document,
compose's variable interpolation, and ``Stack``, which runs each service of the file as a plain
process from the same command, environment and mounted files, translating only host names,
ports and mount points. Used by tests/test_compose_files.py and tests/test_compose_stack.py."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml

from ioc.brokers import free_port, wait_for_port
from ioc.provision import read_env
from tests.support.environment import clean_environ, inherited_environ

ROOT = Path(__file__).resolve().parents[2]  # the repository
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RUNNING = ("ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard")
APP_SERVICES = ("migrate", "ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard")
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
        env = clean_environ()
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
            [mosquitto, "-c", str(local)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.mqtt_port, proc=self.processes["mosquitto"])

    def broker_healthcheck(self) -> int:
        """The mosquitto service's health check, run here: its exit code."""
        command = SERVICES["mosquitto"]["healthcheck"]["test"][-1]
        for target, source in self.mounts(SERVICES["mosquitto"]).items():
            command = command.replace(target, source)
        command = command.replace("-h localhost -p 8883", f"-h 127.0.0.1 -p {self.mqtt_port}")
        env = inherited_environ(**self.env_file)
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
