"""The `ioc` command as a user meets it: clear one-line errors, idempotent upgrade."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg

from tests.support.environment import clean_environ
from tests.support.polling import wait_until


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = clean_environ()
    return subprocess.run(
        [sys.executable, "-m", "ioc", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unreachable_database_is_one_line_naming_the_setting() -> None:
    done = ioc("db", "upgrade", IOC_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2
    assert done.stderr.startswith("ioc: IOC_DATABASE_URL: cannot connect to the database")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_and_malformed_settings_are_named() -> None:
    done = ioc("db", "upgrade")
    assert done.returncode == 2 and "IOC_DATABASE_URL is not set" in done.stderr
    done = ioc("db", "upgrade", IOC_INGEST_BATCH_SIZE="many", IOC_DATABASE_URL="postgresql://x")
    assert done.returncode == 2 and done.stderr.startswith("ioc: IOC_INGEST_BATCH_SIZE:")
    assert "Traceback" not in done.stderr


def test_db_upgrade_twice_applies_then_does_nothing(database_url: str) -> None:
    first = ioc("db", "upgrade", IOC_DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    assert "0001_core" in first.stdout and "(plain)" in first.stdout
    second = ioc("db", "upgrade", IOC_DATABASE_URL=database_url)
    assert second.returncode == 0 and "nothing to apply" in second.stdout


def test_ioc_up_on_a_taken_port_says_so_before_starting_anything() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = ioc("up", "--port", str(port))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"ioc: IOC_DASHBOARD_PORT: port {port} is taken")
    )
    assert "Traceback" not in done.stderr


async def test_ioc_up_runs_the_slice_and_stops_everything_on_sigterm(
    database_url: str, mqtt_url: str, mqtt_protocol: int, tmp_path: Path
) -> None:
    clean = clean_environ()
    env = {
        **clean,
        "IOC_DATABASE_URL": database_url,
        "IOC_MQTT_URL": mqtt_url,
        "IOC_MQTT_PROTOCOL": str(mqtt_protocol),
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ioc",
            "up",
            "--limit",
            "30",
            "--speed",
            "60",
            "--port",
            str(port),
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:

        async def devices_online() -> bool:
            with psycopg.connect(database_url) as conn:
                ready = conn.execute("SELECT to_regclass('devices') IS NOT NULL").fetchone()
                if not ready or not ready[0]:  # ioc up has not migrated yet
                    return False
                row = conn.execute("SELECT count(*) FROM devices WHERE state = 'online'").fetchone()
            return row is not None and row[0] == 30

        await wait_until(devices_online, timeout_s=90)
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 4  # ingest, processing, fleet, dashboard
        up.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(up.wait(), 60)
    finally:
        if up.returncode is None:
            up.kill()
    output = log.read_text()
    assert returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output
    assert "no dashboard users yet: ioc users add NAME --role admin" in output
    assert "export IOC_DATABASE_URL" not in output  # only a throwaway database's URL is news
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_ioc_up_on_its_throwaway_database_prints_a_login_that_works(database_url: str) -> None:
    from ioc.up import _first_login
    from store import users
    from store.migrate import upgrade

    with psycopg.connect(database_url) as conn:
        upgrade(conn)
        line = _first_login(conn, throwaway=True)
        assert line.startswith("log in as admin, password ")
        password = line.split("password ", 1)[1].split(" ", 1)[0]
        session = users.login(conn, "admin", password)
        assert session is not None and session.user.role == "admin"
        assert _first_login(conn, throwaway=True) == ""  # it has a user now: nothing is made
