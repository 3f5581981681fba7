"""Device identity on a real Mosquitto started from the config ``ioc devices provision`` writes:
a device publishes only under its own id, wrong or missing passwords and plain TCP are refused,
oversize payloads never get through."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import paho.mqtt.client as mqtt
import pytest

from devices.endpoint import MqttEndpoint
from devices.kinds import Channel, Kind
from devices.topics import SHARED_GROUP, Topics
from ingest import Ingester
from ioc.certs import make_dev_ca
from ioc.configs import ingest_config
from ioc.provision import (
    Service,
)
from store.audit import reading_keys, reject_reasons
from store.db import connect as connect_db
from store.migrate import upgrade
from tests.faults.secure import SecureBroker, start_secure_broker
from tests.support.clients import mqtt_client
from tests.support.ingesters import serving
from tests.support.polling import wait_until
from tests.support.procs import register_devices

TOPICS = Topics()
DEVICES = [(Kind.BTS, "BTS-A"), (Kind.BTS, "BTS-B"), (Kind.CAMERA, "CAM-1")]
WAIT_S = 15.0


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureBroker]:
    # Not under pytest's 0700 tmp: the broker's own user must reach the files.
    with tempfile.TemporaryDirectory(prefix="ioc-secure-") as tmp:
        broker = start_secure_broker(Path(tmp), DEVICES, TOPICS)
        yield broker
        broker.stop()


class Client:
    """A paho MQTT 5 client over TLS that records what happens to it."""

    def __init__(self, broker: SecureBroker, username: str | None, password: str | None,
                 *, ca_file: Path | None = None, client_id: str = "") -> None:  # fmt: skip
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.reconnect_delay_set(30, 60)  # no quick retries hiding a refusal
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.tls_set(ca_certs=str(ca_file or broker.certs.ca_cert))
        self.connack: Any = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.received: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.pubacks: dict[int, Any] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.connect_async("127.0.0.1", broker.port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.received.append((msg.topic, bytes(msg.payload)))
            self.arrived.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self.arrived:
            self.pubacks[mid] = reason
            self.arrived.notify_all()

    def wait_connack(self) -> Any:
        assert self.connected.wait(WAIT_S), "no CONNACK"
        return self.connack

    def subscribe(self, topic_filter: str) -> None:
        self.wait_connack()
        self.subscribed.clear()
        self.client.subscribe(topic_filter, qos=1)
        assert self.subscribed.wait(WAIT_S), f"no SUBACK for {topic_filter}"

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self.client.publish(topic, payload, qos=1).mid)

    def wait_puback(self, mid: int) -> Any:
        with self.arrived:
            assert self.arrived.wait_for(lambda: mid in self.pubacks, WAIT_S), "no PUBACK"
            return self.pubacks[mid]

    def wait_for(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including ``payload`` (a fence)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: any(p == payload for _, p in self.received), WAIT_S)
            assert ok, f"{payload!r} never arrived; got {self.received}"
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(secure: SecureBroker) -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def connect(secure: SecureBroker, made: list[Client], username: str | None,
            password: str | None = None, **kw: Any) -> Client:  # fmt: skip
    if username is not None and password is None:
        password = secure.password(username)
    client = Client(secure, username, password, **kw)
    made.append(client)
    return client


def telemetry(kind: Kind, device_id: str) -> str:
    return TOPICS.device(kind, device_id, Channel.TELEMETRY)


@pytest.mark.parametrize(
    ("kind", "device_id"),
    [(Kind.BTS, "BTS-B"), (Kind.CAMERA, "BTS-A"), (Kind.CAMERA, "CAM-1")],
    ids=["another-id", "another-kind", "another-device-and-kind"],
)
def test_a_device_cannot_publish_under_another_identity(
    secure: SecureBroker, clients: list[Client], kind: Kind, device_id: str
) -> None:
    ingest = connect(secure, clients, Service.ingest(1))
    ingest.subscribe(TOPICS.shared_everything())
    spoofer = connect(secure, clients, "BTS-A")
    assert not spoofer.wait_connack().is_failure
    spoof = spoofer.publish(telemetry(kind, device_id), b"spoofed")
    assert spoofer.wait_puback(spoof).getName() == "Not authorized"
    # Mosquitto also closes the connection (allowed by MQTT-3.3.5-2).
    assert spoofer.disconnected.wait(WAIT_S)
    # The refusal came before the PUBACK, so a message published now is a fence: once it is
    # in, the spoofed one would have been too.
    honest = connect(secure, clients, "BTS-A")
    honest.wait_connack()
    honest.publish(telemetry(Kind.BTS, "BTS-A"), b"own")
    assert ingest.wait_for(b"own") == [(telemetry(Kind.BTS, "BTS-A"), b"own")]


def test_a_device_reads_only_its_own_commands(secure: SecureBroker, clients: list[Client]) -> None:
    device = connect(secure, clients, "BTS-A")
    device.subscribe(TOPICS.everything())  # granted, but filtered on delivery by the ACL
    fleet = connect(secure, clients, Service.SIMULATOR)
    fleet.wait_connack()
    command = TOPICS.commands(Kind.BTS, "BTS-A").replace("#", "reboot")
    fleet.publish(telemetry(Kind.BTS, "BTS-B"), b"not-for-A")
    fleet.publish(TOPICS.commands(Kind.BTS, "BTS-B").replace("#", "reboot"), b"B-command")
    fleet.publish(command, b"A-command")
    assert device.wait_for(b"A-command") == [(command, b"A-command")]


def test_a_device_presenting_a_services_client_id_gets_only_its_own_session(
    secure: SecureBroker, clients: list[Client]
) -> None:
    """The ids of the services are public (docker-compose.yml); the broker replaces the id a
    client presents with its username, so the service keeps its connection and its queue."""
    monitor = connect(secure, clients, Service.MONITOR, client_id=Service.MONITOR)
    monitor.subscribe(TOPICS.everything())
    hijacker = connect(secure, clients, "BTS-A", client_id=Service.MONITOR)
    assert not hijacker.wait_connack().is_failure
    hijacker.publish(telemetry(Kind.BTS, "BTS-A"), b"after-takeover-attempt")
    monitor.wait_for(b"after-takeover-attempt")
    assert not monitor.disconnected.is_set(), "a device's login ended a service's connection"
    assert hijacker.received == []


def test_a_second_connection_on_an_account_ends_the_first(
    secure: SecureBroker, clients: list[Client]
) -> None:
    """The consequence an operator must know: one account, one connection."""
    first = connect(secure, clients, "BTS-B", client_id="one")
    assert not first.wait_connack().is_failure
    second = connect(secure, clients, "BTS-B", client_id="another")
    assert not second.wait_connack().is_failure
    assert first.disconnected.wait(WAIT_S), "two connections shared one account's session"


def test_wrong_password_and_anonymous_are_refused(
    secure: SecureBroker, clients: list[Client]
) -> None:
    wrong = connect(secure, clients, "BTS-A", "not-the-password")
    assert wrong.wait_connack().is_failure
    other = connect(secure, clients, "BTS-A", secure.password("BTS-B"))
    assert other.wait_connack().is_failure
    anonymous = connect(secure, clients, None)
    assert anonymous.wait_connack().is_failure
    assert connect(secure, clients, "BTS-B").wait_connack().is_failure is False


def _mqtt_connect_packet() -> bytes:
    """A minimal MQTT 3.1.1 CONNECT, client id "plain", no credentials."""
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + b"\x00\x05plain"
    return bytes([0x10, len(body)]) + body


def test_plain_tcp_is_refused_on_the_tls_listener(secure: SecureBroker) -> None:
    with socket.create_connection(("127.0.0.1", secure.port), timeout=WAIT_S) as sock:
        sock.sendall(_mqtt_connect_packet())
        answer = b""
        try:
            while chunk := sock.recv(1024):
                answer += chunk
        except ConnectionResetError:
            pass  # refused outright
    assert not answer.startswith(b"\x20"), "the broker answered CONNACK over plain TCP"
    # And there is no plain listener to fall back to.
    config = secure.provisioned.config.read_text()
    assert [line for line in config.splitlines() if line.startswith("listener")] == [
        f"listener {secure.port} 127.0.0.1"
    ]


def test_a_broker_certificate_from_another_ca_is_refused(
    secure: SecureBroker, tmp_path: Path
) -> None:
    stranger = make_dev_ca(tmp_path / "other", ("127.0.0.1",))
    context = ssl.create_default_context(cafile=str(stranger.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", secure.port), timeout=WAIT_S) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_an_oversize_payload_is_cut_by_the_broker(
    secure: SecureBroker, clients: list[Client]
) -> None:
    ingest = connect(secure, clients, Service.ingest(1))
    ingest.subscribe(TOPICS.everything())
    big = connect(secure, clients, "BTS-A")
    big.wait_connack()
    big.publish(telemetry(Kind.BTS, "BTS-A"), b"x" * (2 * 1024 * 1024))  # limit: 1 MiB
    assert big.disconnected.wait(WAIT_S), "the broker kept a client that sent 2 MiB"
    # The broker dropped it before disconnecting; anything published now comes after.
    fence = connect(secure, clients, "BTS-B")
    fence.wait_connack()
    fence.publish(telemetry(Kind.BTS, "BTS-B"), b"fence")
    got = ingest.wait_for(b"fence")
    assert all(len(payload) < 1024 * 1024 for _, payload in got)


async def test_one_url_carries_account_tls_and_ca_for_aiomqtt(secure: SecureBroker) -> None:
    endpoint = MqttEndpoint.parse(secure.url("BTS-A"))
    assert endpoint.tls and endpoint.ca_file == str(secure.certs.ca_cert)
    async with mqtt_client(secure.url("BTS-A")) as client:
        await client.publish(telemetry(Kind.BTS, "BTS-A"), b"{}", qos=1)


@contextlib.asynccontextmanager
async def _secure_ingester(
    secure: SecureBroker, database_url: str, *, share_group: str
) -> AsyncIterator[Ingester]:
    """An ingester on its own account, over TLS, in the shared group ``share_group``."""
    config = ingest_config(database_url=database_url, mqtt_url=secure.url(Service.ingest(1)),
                           topic_root=TOPICS.root, client_id="secure-ingest",
                           shared_subscription=True, share_group=share_group, batch_size=10,
                           batch_age_s=0.05, self_register=False)  # fmt: skip
    async with serving(config) as service:
        yield service


async def test_the_chain_account_topic_payload_holds_end_to_end(
    secure: SecureBroker, database_url: str
) -> None:
    """Mosquitto does not tell subscribers who published, so identity is a chain: the account
    is the device id, the ACL binds the topic to it, and the ingester rejects a payload whose
    device id differs from the topic's (``identity_mismatch``)."""
    with connect_db(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, ["BTS-A", "BTS-B"])
    async with _secure_ingester(secure, database_url, share_group=SHARED_GROUP) as service:
        now = datetime.now(UTC).isoformat()
        honest = msgspec.json.encode({"device_id": "BTS-A", "ts": now, "seq": 1})
        lying = msgspec.json.encode({"device_id": "BTS-B", "ts": now, "seq": 2})
        endpoint = MqttEndpoint.parse(secure.url("BTS-A"))
        async with aiomqtt.Client(
            endpoint.host, endpoint.port, username=endpoint.username,
            password=endpoint.password, tls_params=endpoint.tls_parameters(),
        ) as client:  # fmt: skip
            await client.publish(telemetry(Kind.BTS, "BTS-A"), honest, qos=1)
            await client.publish(telemetry(Kind.BTS, "BTS-A"), lying, qos=1)

        async def settled() -> bool:
            return service.stats.received >= 2

        await wait_until(settled, timeout_s=20)
    with connect_db(database_url) as conn:
        assert reading_keys(conn) == [("BTS-A", 1)]
        assert reject_reasons(conn) == {"identity_mismatch": 1}


async def test_a_device_that_joins_the_public_share_group_takes_no_readings(
    secure: SecureBroker, clients: list[Client], database_url: str
) -> None:
    """Mosquitto 2.0 lets any account subscribe to ``$share/…``; a share routed to a device is
    refused by its ACL on delivery and dropped. With the ingesters on a secret group, a device
    joining the public default (or any guess) is a group of its own and takes nothing."""
    with connect_db(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, ["BTS-A", "BTS-B"])
    thief = connect(secure, clients, "BTS-A")
    for group in (SHARED_GROUP, "ingest", "ioc"):
        thief.subscribe(TOPICS.shared_everything(group))
    secret = secrets.token_urlsafe(16)
    async with _secure_ingester(secure, database_url, share_group=secret) as service:
        publisher = connect(secure, clients, "BTS-B")
        start = datetime.now(UTC)
        for seq in range(20):
            ts = (start + timedelta(milliseconds=seq)).isoformat()
            body = msgspec.json.encode({"device_id": "BTS-B", "ts": ts, "seq": seq})
            publisher.wait_puback(publisher.publish(telemetry(Kind.BTS, "BTS-B"), body))

        async def settled() -> bool:
            return service.stats.received >= 20

        await wait_until(settled, timeout_s=20)
    with connect_db(database_url) as conn:
        assert sorted(reading_keys(conn)) == [("BTS-B", seq) for seq in range(20)]
    assert thief.received == []
