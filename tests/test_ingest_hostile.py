"""What one broken or hostile device can send, and what it must not cost: a replayed status,
a partial or unregistered birth, payloads that would hold memory, a broker that stalls or
goes away. An in-process ingester against a real broker and a real database."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devices import Channel, Codec, Kind, RejectReason, Topics, encode
from ingest import IngestConfig, Ingester
from ioc.configs import ingest_config
from store.db import connect
from store.migrate import upgrade
from tests.support.clients import mqtt_client
from tests.support.databases import rows
from tests.support.polling import wait_until
from tests.support.procs import RestartableBroker, register_devices

SECTOR = {"sector": 1, "azimuth_deg": 120.0, "tilt_deg": 4.0, "band_mhz": 1800.0,
          "technology": "4G", "tx_power_dbm": 43.0, "beamwidth_deg": 65.0}  # fmt: skip


def _config(database_url: str, mqtt_url: str, topics: Topics, name: str,
            **kwargs: Any) -> IngestConfig:  # fmt: skip
    kwargs = {"batch_size": 50, "batch_age_s": 0.05, "self_register": False, **kwargs}
    return ingest_config(database_url=database_url, mqtt_url=mqtt_url, topic_root=topics.root,
                         client_id=f"{name}-{topics.root.split('/')[0]}", **kwargs)  # fmt: skip


@pytest.fixture
async def run() -> AsyncIterator[Any]:
    """Start ingesters; each is stopped (drained) at the end of the test."""
    running: list[tuple[Ingester, asyncio.Task[None]]] = []

    async def start(config: IngestConfig) -> Ingester:
        service = Ingester(config)
        running.append((service, asyncio.create_task(service.run())))
        await asyncio.wait_for(service.subscribed.wait(), 20)
        return service

    yield start
    for service, task in running:
        service.request_stop()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def migrated(database_url: str) -> str:
    with connect(database_url) as conn:
        upgrade(conn)
    return database_url


async def test_a_replayed_retained_status_never_overrides_a_newer_state(
    migrated: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, run: Any
) -> None:
    """A bare retained `online` (no time of its own) is replayed by the broker to every new
    subscription; liveness has since marked the device offline. The replay must not bring it
    back online, and a late dated status is history, not the current state."""
    dev = "BTS-R-0001"
    register_devices(migrated, [dev])
    status_topic = topics.device(Kind.BTS, dev, Channel.STATUS)
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        await client.publish(status_topic, b"online", qos=1, retain=True)
    first = await run(_config(migrated, mqtt_url, topics, "first", protocol=mqtt_protocol))

    def state() -> list[tuple[Any, ...]]:
        return rows(migrated, "SELECT state FROM devices WHERE device_id = %s", dev)

    await wait_until(lambda: asyncio.sleep(0, state() == [("online",)]))
    assert first.stats.received == 1
    # Liveness: silent past its missed intervals.
    with psycopg.connect(migrated) as conn:
        conn.execute(
            "UPDATE devices SET state = 'offline', state_since = now(),"
            " state_reason = 'missed 3 intervals' WHERE device_id = %s",
            (dev,),
        )
        conn.execute(
            "INSERT INTO status_events (ts, device_id, state, reason)"
            " VALUES (now(), %s, 'offline', 'missed 3 intervals')",
            (dev,),
        )
    first.request_stop()
    await wait_until(lambda: asyncio.sleep(0, not first.receiver.connected))
    # A new subscription (a new ingester, or a session that expired) gets the replay.
    second = await run(_config(migrated, mqtt_url, topics, "second", protocol=mqtt_protocol))
    await wait_until(lambda: asyncio.sleep(0, second.stats.received >= 1))
    assert state() == [("offline",)]
    # A dated status from before the offline is kept as history, once, and changes nothing.
    late = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    body = encode({"device_id": dev, "state": "online", "ts": late, "seq": 7})
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        for _ in range(2):
            await client.publish(status_topic, body, qos=1)
    await wait_until(lambda: asyncio.sleep(0, second.stats.received >= 3))
    assert state() == [("offline",)]
    events = rows(migrated, "SELECT state, reason FROM status_events WHERE device_id = %s"
                             " ORDER BY ts", dev)  # fmt: skip
    assert events == [("online", "reported (late)"), ("online", "reported"),
                      ("offline", "missed 3 intervals")], events  # fmt: skip
    assert sum(first.stats.rejected.values()) + sum(second.stats.rejected.values()) == 0


async def test_a_partial_birth_keeps_the_registered_operator_and_sectors(
    ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    dev = "BTS-P-0001"
    meta = topics.device(Kind.BTS, dev, Channel.META)
    full = {"device_id": dev, "name": dev, "lat": 14.0, "lon": 108.9, "operator": "viettel",
            "antenna_height_m": 30.0, "interval_s": 30, "sectors": [SECTOR]}  # fmt: skip
    partial = {"device_id": dev, "name": "renamed", "lat": 14.0001, "lon": 108.9}
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        await client.publish(meta, encode(full), qos=1)
        await client.publish(meta, encode(partial), qos=1)
        await client.publish(meta, encode({**partial, "sectors": []}), qos=1)
    await wait_until(lambda: asyncio.sleep(0, ingester.stats.received >= 3))
    ((name, operator, interval_s, doc),) = rows(
        database_url, "SELECT name, operator, interval_s, meta FROM devices WHERE device_id = %s",
        dev)  # fmt: skip
    assert (name, operator, interval_s) == ("renamed", "viettel", 30)
    assert [{k: v for k, v in s.items() if v is not None} for s in doc["sectors"]] == [SECTOR]
    assert doc["antenna_height_m"] == 30.0
    assert doc["lat"] == 14.0001
    # An explicit empty sector list is not a site: refused, not a wipe.
    assert dict(ingester.stats.rejected) == {"schema": 1}


async def test_a_birth_from_an_unregistered_id_is_refused_unless_self_registration_is_on(
    migrated: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, run: Any
) -> None:
    register_devices(migrated, ["BTS-U-0001"])
    service = await run(_config(migrated, mqtt_url, topics, "reg", protocol=mqtt_protocol))
    assert not service.config.self_register  # the default: production's rule
    doc = {"name": "x", "lat": 14.0, "lon": 109.0, "operator": "viettel"}
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        for dev in ("BTS-U-0001", "BTS-INVENTED"):
            await client.publish(topics.device(Kind.BTS, dev, Channel.META),
                                 encode({**doc, "device_id": dev}), qos=1)  # fmt: skip
    await wait_until(lambda: asyncio.sleep(0, service.stats.received >= 2))
    assert rows(migrated, "SELECT device_id, name FROM devices ORDER BY 1") == [("BTS-U-0001", "x")]
    assert rows(migrated, "SELECT reason, device_id FROM rejects") == [
        ("unknown_device", "BTS-INVENTED")
    ]


async def test_the_receive_window_is_bounded_in_bytes_while_the_database_waits(
    migrated: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, run: Any
) -> None:
    """60 messages of ~200 KB (12 MB) while commits are blocked: at most the byte window
    (plus one packet) is held, the rest waits with the broker; then all of it is stored."""
    if mqtt_protocol != 5:
        pytest.skip("the maximum packet size is an MQTT 5 property")
    dev = "BTS-W-0001"
    register_devices(migrated, [dev])
    window, packet = 2 * 1024 * 1024, 1024 * 1024
    service = await run(_config(migrated, mqtt_url, topics, "window", protocol=5,
                                window_bytes=window, max_packet_bytes=packet, writers=1,
                                batch_size=1000))  # fmt: skip
    t0 = datetime.now(UTC) - timedelta(hours=1)
    telemetry = topics.device(Kind.BTS, dev, Channel.TELEMETRY)
    blocker = psycopg.connect(migrated)
    blocker.execute("LOCK TABLE telemetry_bts IN ACCESS EXCLUSIVE MODE")
    try:
        async with mqtt_client(mqtt_url, 5) as client:
            for m in range(60):
                seqs = range(m * 2000, (m + 1) * 2000)
                readings = [{"device_id": dev, "seq": seq, "battery_pct": 50.0,
                             "ts": (t0 + timedelta(milliseconds=10 * seq)).isoformat()}
                            for seq in seqs]  # fmt: skip
                await client.publish(telemetry, encode(readings), qos=1)
        await wait_until(lambda: asyncio.sleep(0, service.receiver.paused))
        held_while_blocked = service.receiver.bytes_in_hand
    finally:
        blocker.rollback()
        blocker.close()
    await wait_until(lambda: asyncio.sleep(0, service.stats.stored == 60 * 2000), timeout_s=60)
    assert held_while_blocked <= window + packet
    assert service.receiver.bytes_max <= window + packet
    assert service.receiver.bytes_in_hand == 0


def test_one_message_of_many_bad_readings_is_one_reject_and_bad_topics_are_not_kept() -> None:
    topics = Topics.under("h")
    codec = Codec(topics)
    now = datetime.now(UTC)
    dev = "BTS-A-0001"

    def reading(seq: int, ts: datetime) -> dict[str, Any]:
        return {"device_id": dev, "ts": ts.isoformat(), "seq": seq}

    items = [reading(i, now + timedelta(days=1)) for i in range(3000)]
    items += [reading(3000 + i, now - timedelta(days=20 * 365)) for i in range(5)]
    items += [reading(4000 + i, now - timedelta(seconds=i)) for i in range(10)]
    decoded = codec.decode(topics.device(Kind.BTS, dev, Channel.TELEMETRY), encode(items), now)
    assert decoded.record is not None and len(decoded.record.items) == 10  # type: ignore[union-attr]
    reasons = [r.reason for r in decoded.rejections]
    assert reasons == [RejectReason.FUTURE_TIMESTAMP, RejectReason.STALE_TIMESTAMP]
    assert "3000 of 3015 readings" in decoded.rejections[0].detail
    for i in range(500):
        topic = f"{topics.device(Kind.BTS, dev, Channel.TELEMETRY)}/{i}{'x' * 60_000}"
        (rejection,) = codec.decode(topic, b"{}", now).rejections
        assert rejection.reason is RejectReason.BAD_TOPIC
    assert codec.cached_topics == 1  # the one valid topic, not the 500 hostile ones


@pytest.fixture
def own_broker() -> Iterator[RestartableBroker]:
    broker = RestartableBroker()
    yield broker
    if broker.running.process.poll() is None:
        os.kill(broker.running.process.pid, signal.SIGCONT)
    broker.cleanup()


async def test_backoff_starts_again_after_a_healthy_session(
    migrated: str, own_broker: RestartableBroker, topics: Topics, run: Any
) -> None:
    service = await run(_config(migrated, own_broker.url, topics, "backoff", keepalive_s=2,
                                stable_session_s=1.0))  # fmt: skip
    receiver = service.receiver
    own_broker.stop()
    await wait_until(lambda: asyncio.sleep(0, receiver.reconnects >= 4), timeout_s=30)
    grown = receiver.last_retry_s
    assert grown > 1.0  # 0.5, 1, 2, 4 s (each jittered down to half at most)
    own_broker.start()
    await wait_until(lambda: asyncio.sleep(0, receiver.session_age_s() > 1.5), timeout_s=60)
    attempts = receiver.reconnects
    own_broker.stop()
    await wait_until(lambda: asyncio.sleep(0, receiver.reconnects > attempts))
    assert 0.25 <= receiver.last_retry_s <= 0.5, "a new outage starts from the first backoff"
    own_broker.start()
    await wait_until(lambda: asyncio.sleep(0, receiver.subscribed.is_set()), timeout_s=60)


async def test_a_stalled_broker_is_detected_by_the_unanswered_ping(
    migrated: str, own_broker: RestartableBroker, topics: Topics, run: Any
) -> None:
    """SIGSTOP: the TCP connection stays open and nothing answers. The ingester sees the
    PINGREQ go unanswered and drops the connection (its held messages go back to the broker)."""
    service = await run(_config(migrated, own_broker.url, topics, "stall", keepalive_s=2))
    os.kill(own_broker.running.process.pid, signal.SIGSTOP)
    try:
        await wait_until(lambda: asyncio.sleep(0, not service.receiver.connected), timeout_s=20)
        assert "no PINGRESP" in service.receiver.last_error
    finally:
        os.kill(own_broker.running.process.pid, signal.SIGCONT)
    await wait_until(lambda: asyncio.sleep(0, service.receiver.subscribed.is_set()), timeout_s=60)
