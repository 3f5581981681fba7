"""A device that presents the ingester's client id (public in docker-compose.yml) with its own
broker credential, on the broker ``ioc devices provision`` configures. Real processes: the
ingester (``python -m ioc ingest``), Mosquitto's own C clients as the devices and the hijacker.

The broker makes the username the client id (``use_username_as_clientid``), so the hijacker
gets its own account's session: it neither resumes the ingester's (and the readings queued in
it) nor ends the ingester's connection. Without that line in mosquitto.secure.conf this fails.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.provision import Service
from store.migrate import upgrade
from tests.faults.harness import audit
from tests.faults.secure import SecureBroker, start_secure_broker
from tests.support.databases import stored_readings
from tests.support.flood import reading
from tests.support.polling import wait_until
from tests.support.procs import IngesterProcess, register_devices

TOPICS = Topics()
DEVICES = ["BTS-H-0001", "BTS-H-0002", "BTS-H-0003"]
PER_DEVICE = 10
INGESTER = Service.ingest(1)
KICKED = "already connected, closing old connection"  # Mosquitto's log on a session takeover


@pytest.fixture
def secure() -> Iterator[SecureBroker]:
    # Not under pytest's 0700 tmp: the broker's own user must reach the files.
    with tempfile.TemporaryDirectory(prefix="ioc-fault-identity-") as tmp:
        broker = start_secure_broker(Path(tmp), [(Kind.BTS, d) for d in DEVICES], TOPICS)
        yield broker
        broker.stop()


def tls_args(secure: SecureBroker, username: str) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(secure.port), "--cafile", str(secure.certs.ca_cert),
            "-u", username, "-P", secure.password(username), "-V", "mqttv5"]  # fmt: skip


def publish(secure: SecureBroker, device_id: str, seqs: range) -> set[tuple[str, int]]:
    """QoS 1 readings from ``mosquitto_pub``: it exits 0 once the broker PUBACKed each."""
    topic = TOPICS.device(Kind.BTS, device_id, Channel.TELEMETRY)
    lines = "".join(json.dumps(reading(device_id, s)) + "\n" for s in seqs)
    subprocess.run(["mosquitto_pub", *tls_args(secure, device_id), "-q", "1", "-t", topic, "-l"],
                   input=lines.encode(), check=True, timeout=60)  # fmt: skip
    return {(device_id, s) for s in seqs}


def hijack(secure: SecureBroker, device_id: str, *, persistent: bool) -> str:
    """``mosquitto_sub`` on ``device_id``'s own account presenting the ingester's client id;
    it exits once subscribed. Returns what it received."""
    keep = ["-c", "-x", "86400"] if persistent else []
    done = subprocess.run(
        ["mosquitto_sub", *tls_args(secure, device_id), "-i", INGESTER, *keep, "-q", "1",
         "-t", TOPICS.everything(), "-v", "-E"],
        capture_output=True, check=True, timeout=60, text=True,
    )  # fmt: skip
    return done.stdout


def broker_log(secure: SecureBroker) -> str:
    return secure.log.read_text(errors="replace")


def ingester(secure: SecureBroker, database_url: str, tmp_path: Path) -> IngesterProcess:
    return IngesterProcess(database_url=database_url, mqtt_url=secure.url(INGESTER),
                           topic_root=TOPICS.root, client_id=INGESTER, log_dir=tmp_path,
                           shared=True)  # fmt: skip


async def test_a_device_presenting_the_ingesters_client_id_takes_nothing(
    secure: SecureBroker, database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, DEVICES)
    first = ingester(secure, database_url, tmp_path).start()
    again = ingester(secure, database_url, tmp_path)
    published: set[tuple[str, int]] = set()
    stolen, kicked = "", 0
    try:
        await wait_until(first.subscribed, state=first.log_tail)
        assert first.terminate() == 0  # offline; its persistent session stays on the broker
        for device_id in DEVICES:
            published |= publish(secure, device_id, range(1, PER_DEVICE + 1))
        stolen = hijack(secure, DEVICES[0], persistent=True)  # while the queue waits
        again.start()
        await wait_until(again.subscribed, state=again.log_tail)
        kicked = -broker_log(secure).count(KICKED)
        stolen += hijack(secure, DEVICES[1], persistent=False)  # while it is connected
        # A fence: once it is stored, whatever the hijack did to the session has happened.
        published |= publish(secure, DEVICES[2], range(PER_DEVICE + 1, PER_DEVICE + 2))
        with contextlib.suppress(AssertionError):  # a loss is counted and asserted below
            await wait_until(lambda: stored_readings(database_url) >= len(published), timeout_s=30)
        kicked += broker_log(secure).count(KICKED)
    finally:
        first.close()
        again.close()
    figures = audit("client-id takeover by a device", database_url, published,
                    note=f"device as {INGESTER}: offline, then online")  # fmt: skip
    assert figures.lost == 0, f"{figures.lost} PUBACKed readings never stored"
    assert figures.duplicated == 0
    assert stolen == "", f"the hijacker received: {stolen[:500]}"
    assert kicked == 0, "the hijacker ended the ingester's connection"
