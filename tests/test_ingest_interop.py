"""The ingester's own MQTT wire code (ingest/wire.py) against two broker implementations,
Mosquitto (C) and amqtt (Python), on MQTT 3.1.1 and 5, over plain TCP and TLS: a session's
readings are stored, and those published while it is offline are handed back on resume."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from devices import Channel, Kind, Topics, encode
from devices.endpoint import MqttEndpoint
from ingest import Ingester
from ioc.brokers import MOSQUITTO_CONF, free_port, wait_for_port
from ioc.certs import CertFiles, make_dev_ca
from ioc.configs import ingest_config
from store.db import connect
from store.migrate import upgrade
from tests.support.polling import wait_until


@dataclass(frozen=True)
class Case:
    broker: str  # "mosquitto" or "amqtt"
    protocol: int  # 5, or 4 = MQTT 3.1.1
    tls: bool


CASES = [
    Case("mosquitto", 5, False), Case("mosquitto", 4, False),
    Case("mosquitto", 5, True), Case("mosquitto", 4, True),
    Case("amqtt", 4, False), Case("amqtt", 4, True),
]  # fmt: skip


@dataclass
class Broker:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _mosquitto(folder: Path, port: int, certs: CertFiles | None) -> list[str]:
    lines = [MOSQUITTO_CONF.read_text(encoding="utf-8"), f"listener {port} 127.0.0.1",
             "allow_anonymous true", "persistence false"]  # fmt: skip
    if certs is not None:
        lines += [f"cafile {certs.ca_cert}", f"certfile {certs.server_cert}",
                  f"keyfile {certs.server_key}"]  # fmt: skip
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mosquitto = shutil.which("mosquitto")
    if mosquitto is None:
        pytest.skip("no mosquitto on PATH")
    return [mosquitto, "-c", str(conf)]


@pytest.fixture(params=CASES, ids=lambda c: f"{c.broker}-{'5' if c.protocol == 5 else '3.1.1'}"
                f"-{'tls' if c.tls else 'tcp'}")  # fmt: skip
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[Case, Broker]]:
    case: Case = request.param
    with tempfile.TemporaryDirectory(prefix="ioc-interop-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # Mosquitto started as root reads its files as its own user
        certs = make_dev_ca(folder / "certs", ("127.0.0.1",), days=1) if case.tls else None
        if certs is not None and os.geteuid() == 0 and case.broker == "mosquitto":
            shutil.chown(certs.server_key, "mosquitto")
        port = free_port()
        if case.broker == "mosquitto":
            cmd = _mosquitto(folder, port, certs)
        else:
            # Named clients: amqtt keeps no queue for an anonymous session.
            cmd = [sys.executable, "-m", "ioc.amqtt_broker", str(port), "--named"]
            cmd += ["--tls", str(certs.server_cert), str(certs.server_key)] if certs else []
        log = folder / "broker.log"
        process = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            wait_for_port(port, proc=process)
            scheme = "mqtts" if certs else "mqtt"
            query = f"?ca_file={certs.ca_cert}" if certs else ""
            url = f"{scheme}://interop:interop@127.0.0.1:{port}{query}"
            yield case, Broker(url, process, log)
        finally:
            process.terminate()
            process.wait(10)


async def _publish(url: str, protocol: int, messages: list[tuple[str, bytes]]) -> None:
    endpoint = MqttEndpoint.parse(url, protocol=protocol)
    async with aiomqtt.Client(endpoint.host, endpoint.port, protocol=endpoint.protocol_version,
                              username="publisher", password=endpoint.password,
                              tls_params=endpoint.tls_parameters()) as client:  # fmt: skip
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


def _stored(database_url: str) -> int:
    with connect(database_url) as conn:
        row = conn.execute("SELECT count(DISTINCT seq), count(*) FROM telemetry_bts").fetchone()
    assert row is not None and row[0] == row[1], "a reading stored twice"
    return int(row[0])


async def test_the_wire_code_keeps_a_session_on_each_broker_protocol_and_transport(
    broker: tuple[Case, Broker], database_url: str, topics: Topics
) -> None:
    case, running = broker
    with connect(database_url) as conn:
        upgrade(conn)
    dev = "BTS-I-0001"
    config = ingest_config(database_url=database_url, mqtt_url=running.url,
                           topic_root=topics.root, client_id=f"interop-{topics.root[:11]}",
                           protocol=case.protocol, batch_size=20, batch_age_s=0.05,
                           self_register=True)  # fmt: skip
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def readings(seqs: range) -> list[tuple[str, bytes]]:
        topic = topics.device(Kind.BTS, dev, Channel.TELEMETRY)
        return [(topic, encode({"device_id": dev, "seq": s, "battery_pct": 80.0,
                                "ts": (t0 + timedelta(seconds=s)).isoformat()}))
                for s in seqs]  # fmt: skip

    birth = encode({"device_id": dev, "name": dev, "lat": 14.0, "lon": 109.0})
    status = encode({"device_id": dev, "state": "online", "ts": t0.isoformat()})
    first = Ingester(config)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.subscribed.wait(), 20)
    await _publish(running.url, case.protocol, [
        (topics.device(Kind.BTS, dev, Channel.META), birth),
        (topics.device(Kind.BTS, dev, Channel.STATUS), status), *readings(range(30)),
    ])  # fmt: skip
    await wait_until(lambda: asyncio.sleep(0, _stored(database_url) == 30))
    first.request_stop()
    await asyncio.wait_for(task, 30)
    # Offline: the broker keeps these in the ingester's session.
    await _publish(running.url, case.protocol, readings(range(30, 50)))
    second = Ingester(config)
    task = asyncio.create_task(second.run())
    try:
        await wait_until(lambda: asyncio.sleep(0, _stored(database_url) == 50))
    finally:
        second.request_stop()
        await asyncio.wait_for(task, 30)
    assert second.stats.duplicates == 0 and sum(second.stats.rejected.values()) == 0
    with connect(database_url) as conn:
        state = conn.execute("SELECT state FROM devices WHERE device_id = %s", (dev,)).fetchone()
    assert state == ("online",)
