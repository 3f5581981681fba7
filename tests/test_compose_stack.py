"""The compose stack running: this machine kind has no container engine, so every service of
docker-compose.yml runs here as a plain process from the same file (tests/support/compose.py):
its command, its environment, the files and secrets it mounts, with only host names, ports,
mount points and login names translated. Each service logs in to the database as its own
role, made by migrate from the secret files `ioc secrets init` wrote."""

from __future__ import annotations

import asyncio
import csv
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.secrets import write_secret
from store.audit import reading_count
from store.db import connect
from tests.support.clients import mqtt_client
from tests.support.compose import RUNNING, Stack, caddy_binary
from tests.support.environment import inherited_environ
from tests.support.polling import wait_until


def ioc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ioc", *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="ioc-compose-") as tmp:
        os.chmod(tmp, 0o755)  # the broker drops root for its own user
        running = Stack(Path(tmp), database_url)
        try:
            yield running
        finally:
            running.stop()
            # Its database goes with the fixture; the login roles are the server's, and may
            # hold privileges in it until dropped there.
            with psycopg.connect(database_url, autocommit=True) as admin:
                for login in running.logins():
                    name = psycopg.sql.Identifier(login)
                    if admin.execute(
                        "SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)
                    ).fetchone():
                        admin.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(name))
                        admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(name))


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
    async with mqtt_client(url) as c:
        for topic, payload in messages:
            await c.publish(topic, payload, qos=1)


def _reading(device_id: str, seq: int, **metrics: Any) -> bytes:
    ts = datetime.now(UTC).isoformat()
    return msgspec.json.encode({"device_id": device_id, "ts": ts, "seq": seq, **metrics})


async def test_the_compose_services_run_as_processes_from_the_same_files(stack: Stack) -> None:
    # The setup steps the compose file's header gives.
    env = inherited_environ()
    certs = stack.folder / "deploy" / "mosquitto" / "certs"
    owner = ["--owner", "mosquitto"] if os.geteuid() == 0 else []
    for step in (
        ["secrets", "init", str(stack.secrets)],
        ["certs", "dev", "--out", str(certs), *owner],
        ["certs", "dashboard", "--ca", str(certs), "--out", str(stack.folder / "deploy/proxy")],
        ["devices", "provision", "--out", str(certs.parent), "--mount", "/mosquitto/config",
         "--secrets", str(stack.secrets), *owner],
    ):  # fmt: skip
        done = ioc(*step, env=env)
        assert done.returncode == 0, done.stderr
    stack.start_broker()
    assert stack.broker_healthcheck() == 0, stack.log("mosquitto")
    stack.run("migrate", wait=True)
    for name in RUNNING:
        stack.run(name)

    health = {n: f"http://127.0.0.1:{port}/health" for n, port in stack.metrics_ports.items()}
    assert {"ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard"} <= set(health)
    try:
        await wait_until(lambda: all(_http_ok(u) for u in health.values()), timeout_s=90)
    except AssertionError:
        down = [n for n, u in health.items() if not _http_ok(u)]
        raise AssertionError("".join(stack.log(n) for n in down)) from None

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
    owner_url = stack.environment("migrate")["IOC_DATABASE_URL"]

    def stored() -> int:
        with connect(owner_url) as conn:
            return reading_count(conn, Kind.BTS).distinct

    await wait_until(lambda: stored() >= 3 * per_device, timeout_s=60)
    with connect(owner_url) as conn:
        count = reading_count(conn, Kind.BTS)
    assert (count.rows, count.duplicated) == (3 * per_device, 0)
    # The shared subscription split the work between the two ingesters (their counts can
    # trail the rows by the batch just committed, so wait for them as for the rows).
    ingesters = {n: health[n] for n in ("ingest-1", "ingest-2")}
    await wait_until(
        lambda: sum(_get_json(u)["stored"] for u in ingesters.values()) >= 3 * per_device,
        timeout_s=30,
    )
    for name, health_url in ingesters.items():
        answer = await asyncio.to_thread(_get_json, health_url)
        assert answer["stored"] > 0, f"{name} stored nothing: {answer}"

    # The alert engine (its own broker account, TLS) publishes a low-battery alert, seen on
    # the monitor's account: on an ingester's, the watcher would take over its session.
    monitor = (stack.secrets / "mqtt_monitor_password").read_text()
    async with mqtt_client(url.format(u="ioc-monitor", p=monitor)) as client:
        await client.subscribe(topics.all_alerts(), qos=1)
        device = bts[0]["username"]
        await _publish(
            url.format(u=device, p=bts[0]["password"]),
            [
                (
                    topics.device(Kind.BTS, device, Channel.TELEMETRY),
                    _reading(device, per_device + 1, power_source="battery", battery_pct=12.0),
                )
            ],
        )

        async def first_alert() -> str:
            async for message in client.messages:
                return str(message.topic)
            raise AssertionError("no alert")

        try:
            topic = await asyncio.wait_for(first_alert(), 90)
        except TimeoutError:
            raise AssertionError(stack.log("alerts")) from None
    assert "bts_battery_low" in topic and device in topic

    # The dashboard serves, logged in to the database as its own role; where Caddy is here,
    # through the proxy over TLS, as browsers reach it.
    dashboard = f"http://127.0.0.1:{stack.ports['dashboard']}/_stcore/health"
    try:
        await wait_until(lambda: _http_ok(dashboard), timeout_s=90)
    except AssertionError:
        raise AssertionError(stack.log("dashboard")) from None
    if caddy_binary():
        https, _ = stack.start_proxy(stack.ports["dashboard"])
        trust = ssl.create_default_context(cafile=certs / "ca.crt")
        async with httpx.AsyncClient(verify=trust) as browser:
            through_proxy = await browser.get(f"https://localhost:{https}/_stcore/health")
        assert (through_proxy.status_code, through_proxy.text) == (200, "ok"), stack.log("proxy")
    # Every service is connected as its own login, none as a superuser (the owner is this
    # test's connection only: migrate has finished).
    with connect(owner_url) as conn:
        rows = conn.execute(
            "SELECT usename, usesuper FROM pg_stat_activity JOIN pg_user USING (usename)"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    connected = {user for user, _ in rows}
    assert connected <= set(stack.logins()) and not any(superuser for _, superuser in rows)
    assert {login.split("_svc_")[0] for login in connected} >= {
        "ioc_ingest", "ioc_processing", "ioc_coverage", "ioc_alerts"
    }  # fmt: skip

    # The coverage engine judged every village of the scenario on the towers' states.
    def judged() -> int:
        with connect(owner_url) as conn:
            row = conn.execute("SELECT count(*) FROM coverage_places").fetchone()
        return row[0] if row else 0

    try:
        await wait_until(lambda: judged() > 0, timeout_s=120)
    except AssertionError:
        raise AssertionError(stack.log("coverage")) from None
    for name in RUNNING:
        assert stack.processes[name].poll() is None, f"{name} died: {stack.log(name)}"


def test_a_service_refuses_an_example_secret_in_one_line(database_url: str, tmp_path: Path) -> None:
    stack = Stack(tmp_path, database_url)
    write_secret(stack.secrets, "db_processing_password", "change-me\n")
    env = stack.environment("processing")
    done = subprocess.run(stack.command("processing"), env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "IOC_DATABASE_URL" in lines[0] and "example value" in lines[0]
