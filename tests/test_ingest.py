"""Ingest end to end against a real broker and database: rows, rejects, status and the will."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiomqtt
import psycopg
import pytest

from devices import Channel, Kind, Topics, encode
from ingest import Ingester
from ioc.configs import liveness_config
from processing.liveness import run_liveness
from store.db import aconnect
from store.liveness import apply_liveness
from tests.support.clients import mqtt_client
from tests.support.polling import wait_until


def _count(url: str, sql: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


def _meta(device_id: str) -> bytes:
    return encode(
        {
            "device_id": device_id,
            "lat": 14.0,
            "lon": 108.9,
            "name": device_id,
            "interval_s": 1,
            "operator": "viettel",
        }
    )


async def test_readings_status_and_every_reject_land_in_the_database(
    ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    now = datetime.now(UTC)
    dev = "BTS-T-0001"
    good = [
        {
            "device_id": dev,
            "ts": (now - timedelta(seconds=i)).isoformat(),
            "seq": i,
            "battery_pct": 90.0,
            "power_source": "mains",
        }
        for i in range(120)
    ]
    bad = {
        "malformed_json": (topics.device(Kind.BTS, dev, Channel.TELEMETRY), b"{not json"),
        "out_of_range": (
            topics.device(Kind.BTS, dev, Channel.TELEMETRY),
            encode({**good[0], "seq": 1000, "battery_pct": 140}),
        ),
        "unknown_device": (topics.device(Kind.BTS, "NOBODY", Channel.TELEMETRY), encode(good[0])),
        "identity_mismatch": (
            topics.device(Kind.BTS, dev, Channel.TELEMETRY),
            encode({**good[0], "device_id": "OTHER"}),
        ),
        "unknown_kind": (f"{topics.root}/drone/{dev}/telemetry", encode(good[0])),
        "oversize": (topics.device(Kind.BTS, dev, Channel.TELEMETRY), b"[" + b" " * 300_000 + b"]"),
        "future_timestamp": (
            topics.device(Kind.BTS, dev, Channel.TELEMETRY),
            encode({**good[0], "seq": 2000, "ts": (now + timedelta(hours=2)).isoformat()}),
        ),
    }
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        await client.publish(
            topics.device(Kind.BTS, dev, Channel.META), _meta(dev), qos=1, retain=True
        )
        await client.publish(
            topics.device(Kind.BTS, dev, Channel.STATUS), b"online", qos=1, retain=True
        )
        for i, reading in enumerate(good):
            await client.publish(
                topics.device(Kind.BTS, dev, Channel.TELEMETRY), encode(reading), qos=1
            )
            if i == 60:  # bad input in the middle of good input
                for topic, payload in bad.values():
                    await client.publish(topic, payload, qos=1)
        # The last 20 again as one array: a redelivered batch must not duplicate rows.
        await client.publish(
            topics.device(Kind.BTS, dev, Channel.TELEMETRY), encode(good[-20:]), qos=1
        )

    async def all_there() -> bool:
        return _count(database_url, "SELECT count(*) FROM telemetry_bts") >= 120 and _count(
            database_url, "SELECT count(*) FROM rejects"
        ) >= len(bad)

    await wait_until(all_there)
    assert _count(database_url, "SELECT count(DISTINCT seq) FROM telemetry_bts") == 120
    assert _count(database_url, "SELECT count(*) FROM telemetry_bts") == 120
    with psycopg.connect(database_url) as conn:
        reasons: dict[str, int] = dict(
            conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
        )
        raw = conn.execute("SELECT payload FROM rejects WHERE reason = 'malformed_json'").fetchone()
        state = conn.execute("SELECT state FROM devices WHERE device_id = %s", (dev,)).fetchone()
    assert reasons == dict.fromkeys(bad, 1)
    assert raw == (b"{not json",)
    assert state == ("online",)
    await wait_until(lambda: asyncio.sleep(0, ingester.stats.duplicates == 20))


async def test_a_device_killed_without_disconnect_goes_offline_by_its_will(
    ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    dev = "CAM-T-0001"
    status = topics.device(Kind.CAMERA, dev, Channel.STATUS)
    will = aiomqtt.Will(
        status, encode({"device_id": dev, "state": "offline", "reason": "will"}), qos=1, retain=True
    )
    device = mqtt_client(mqtt_url, mqtt_protocol, will=will, keepalive=5)
    await device.__aenter__()
    await device.publish(
        topics.device(Kind.CAMERA, dev, Channel.META), _meta(dev), qos=1, retain=True
    )
    await device.publish(status, encode({"device_id": dev, "state": "online"}), qos=1, retain=True)

    def state() -> str | None:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT state FROM devices WHERE device_id = %s", (dev,)).fetchone()
        return row[0] if row else None

    await wait_until(lambda: asyncio.sleep(0, state() == "online"))
    sock = device._client.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT: the broker must publish the will
    await wait_until(lambda: asyncio.sleep(0, state() == "offline"))
    with psycopg.connect(database_url) as conn:
        events = conn.execute(
            "SELECT state, reason FROM status_events WHERE device_id = %s ORDER BY ts", (dev,)
        ).fetchall()
    assert events == [("online", "reported"), ("offline", "will")]
    with pytest.raises(aiomqtt.MqttError):
        await device.__aexit__(None, None, None)


async def test_silence_past_missed_intervals_marks_offline_then_resumes(
    ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    dev = "OLT-T-0001"
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        await client.publish(topics.device(Kind.BROADBAND, dev, Channel.META), _meta(dev), qos=1)
        await client.publish(topics.device(Kind.BROADBAND, dev, Channel.STATUS), b"online", qos=1)
    await wait_until(
        lambda: asyncio.sleep(
            0,
            _count(
                database_url,
                "SELECT count(*) FROM devices WHERE device_id = %s AND state = 'online'",
                dev,
            )
            == 1,
        )
    )

    silent_sql = (
        "SELECT count(*) FROM status_events WHERE device_id = %s AND reason = 'missed_intervals'"
    )
    # Ten seconds of silence is past 3 intervals of 1 s but inside the 30 s floor: still online.
    config = liveness_config(database_url=database_url, missed_intervals=3, check_every_s=0.05)
    async with await aconnect(database_url) as conn:
        soon = datetime.now(UTC) + timedelta(seconds=10)
        assert await apply_liveness(conn, soon, config.missed_intervals, 30.0) == ([], [])

    # Injected clock: "now" is one minute ahead, far past 3 intervals of 1 s and the floor.
    later = datetime.now(UTC) + timedelta(minutes=1)
    stop = asyncio.Event()
    job = asyncio.create_task(
        run_liveness(
            config,
            clock=lambda: later,
            stop=stop,
        )
    )
    await wait_until(lambda: asyncio.sleep(0, _count(database_url, silent_sql, dev) == 1))
    stop.set()
    await job
    assert _count(database_url, "SELECT count(*) FROM devices WHERE state = 'offline'") == 1
