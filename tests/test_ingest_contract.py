"""Every message kind and every bad input, sent by a raw MQTT client, through a real broker to a
real database: what is good is stored (with its own timestamps), what is bad is a reject with
its reason and raw bytes, and the counters say so on /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devices import Channel, Kind, Topics, encode
from ingest import Ingester
from ioc.brokers import free_port
from tests.support.clients import mqtt_client
from tests.support.databases import rows
from tests.support.ingesters import IngesterStarter
from tests.support.polling import wait_until

NOW = datetime.now(UTC)


def _reading(device_id: str, seq: int, ts: datetime = NOW, **metrics: object) -> dict[str, Any]:
    return {"device_id": device_id, "ts": ts.isoformat(), "seq": seq, **metrics}


def _meta(device_id: str, **extra: object) -> bytes:
    return encode(
        {
            "device_id": device_id,
            "lat": 14.1,
            "lon": 108.9,
            "name": device_id,
            "operator": "viettel",
            "interval_s": 60,
            **extra,
        }
    )


@pytest.fixture
async def observed(start_ingester: IngesterStarter) -> AsyncIterator[Ingester]:
    """An ingester with its /metrics and /health served."""
    async with start_ingester(
        self_register=True, name="obs", metrics_port=free_port(), drain=True
    ) as service:
        yield service


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


async def test_every_bad_input_is_a_reject_with_reason_and_bytes_and_good_ones_around_it_land(
    observed: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    dev = "BTS-C-0001"
    telemetry = topics.device(Kind.BTS, dev, Channel.TELEMETRY)
    bad: list[tuple[str, str, bytes]] = [
        ("malformed_json", telemetry, b"{not json"),
        ("schema", telemetry, encode(_reading(dev, 900, battery_pct="full"))),
        ("out_of_range", telemetry, encode(_reading(dev, 901, battery_pct=140.0))),
        ("unknown_kind", f"{topics.root}/drone/{dev}/telemetry", encode(_reading(dev, 902))),
        ("bad_topic", f"{topics.root}/bts/{dev}/video", encode(_reading(dev, 903))),
        # Outside the grammar, under a device's own tree: seen (the subscription is root/#).
        ("bad_topic", f"{telemetry}/extra", encode(_reading(dev, 908))),
        ("bad_topic", f"{telemetry}/{'x' * 60_000}", encode(_reading(dev, 909))),
        (
            "unknown_device",
            topics.device(Kind.BTS, "NOBODY", Channel.TELEMETRY),
            encode(_reading("NOBODY", 904)),
        ),
        ("identity_mismatch", telemetry, encode(_reading("OTHER", 905))),
        ("oversize", telemetry, b"[" + b" " * 300_000 + b"]"),
        ("future_timestamp", telemetry, encode(_reading(dev, 906, NOW + timedelta(hours=2)))),
        ("stale_timestamp", telemetry, encode(_reading(dev, 907, NOW - timedelta(days=20 * 365)))),
    ]
    # A birth record PostgreSQL cannot store (NUL in text): refused by the database itself.
    refused = _meta("CAM-C-0009", name="cam\u0000era")
    good = [_reading(dev, i, NOW - timedelta(seconds=i), battery_pct=90.0) for i in range(60)]
    good[7]["firmware_build"] = "extra field, not in the contract"
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        await client.publish(topics.device(Kind.BTS, dev, Channel.META), _meta(dev), qos=1)
        for i, reading in enumerate(good):
            await client.publish(telemetry, encode(reading), qos=1)
            if i == 30:  # the bad in the middle of the good
                for _, topic, payload in bad:
                    await client.publish(topic, payload, qos=1)
                await client.publish(
                    topics.device(Kind.CAMERA, "CAM-C-0009", Channel.META), refused, qos=1
                )
        # The service's own topics under the root are passed by: no reject, no row.
        await client.publish(topics.alert("critical", "bts_offline", dev), b"{}", qos=1)
        await client.publish(f"{topics.commands(Kind.BTS, dev)[:-2]}/reboot", b"{}", qos=1)

    sent = 1 + len(good) + len(bad) + 1 + 2

    async def all_there() -> bool:
        # The ingester's own count too: a commit is visible here a moment before the
        # ingester, on this same event loop, has counted it.
        readings = int(rows(database_url, "SELECT count(*) FROM telemetry_bts")[0][0])
        rejects = int(rows(database_url, "SELECT count(*) FROM rejects")[0][0])
        return readings >= len(good) and rejects >= len(bad) + 1 and observed.stats.received >= sent

    await wait_until(all_there)
    assert rows(database_url, "SELECT count(*), count(DISTINCT seq) FROM telemetry_bts") == [
        (60, 60)
    ]
    stored = rows(
        database_url,
        "SELECT reason, topic, payload, payload_size, payload_sha256"
        " FROM rejects WHERE reason <> 'schema'"
        " OR detail NOT LIKE 'database refused%%'",
    )
    assert sorted(r[0] for r in stored) == sorted(reason for reason, _, _ in bad)
    # Each row identifies its payload (prefix, size, hash) and holds at most 1 KiB of it.
    by_hash = {bytes(r[4]): r for r in stored}
    for reason, topic, payload in bad:
        row = by_hash[hashlib.sha256(payload).digest()]
        assert row[0] == reason and row[3] == len(payload)
        assert bytes(row[2]) == payload[:1024] and row[1] == topic[:512] + "…" * (len(topic) > 512)
    (db_refused,) = rows(
        database_url, "SELECT payload, detail FROM rejects WHERE detail LIKE 'database refused%%'"
    )
    assert bytes(db_refused[0]) == refused
    assert observed.stats.outbound == 2
    # The counters agree with the table.
    assert observed.stats.rejected == {**Counter(reason for reason, _, _ in bad), "schema": 2}
    status, body = _get(observed.config.metrics_port or 0, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'ioc_ingest_rejected_total{reason="oversize"} 1.0' in text
    assert "ioc_ingest_stored_rows_total 60.0" in text
    assert "ioc_ingest_commit_seconds_count" in text
    status, body = _get(observed.config.metrics_port or 0, "/health")
    health = json.loads(body)
    assert status == 200 and health["keeping_up"] and health["stored"] == 60


async def test_every_message_kind_lands_with_its_own_timestamps_and_meta_history(
    observed: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    bts, probe = "BTS-K-0001", "PRB-K-0001"
    sector = {
        "sector": 1,
        "azimuth_deg": 120.0,
        "tilt_deg": 4.0,
        "band_mhz": 1800.0,
        "technology": "4G",
        "tx_power_dbm": 43.0,
        "beamwidth_deg": 65.0,
    }
    late = NOW - timedelta(hours=3)
    async with mqtt_client(mqtt_url, mqtt_protocol) as client:
        meta = topics.device(Kind.BTS, bts, Channel.META)
        await client.publish(meta, _meta(bts, sectors=[sector], seq=1), qos=1, retain=True)
        await client.publish(meta, _meta(bts, sectors=[sector], seq=2), qos=1)  # same device
        await client.publish(
            topics.device(Kind.PROBE, probe, Channel.META), _meta(probe, model="drive-test"), qos=1
        )
        status = topics.device(Kind.BTS, bts, Channel.STATUS)
        await client.publish(status, b"online", qos=1, retain=True)
        telemetry = topics.device(Kind.BTS, bts, Channel.TELEMETRY)
        # An array of readings, then one late and out of order.
        await client.publish(
            telemetry,
            encode(
                [
                    _reading(bts, s, NOW - timedelta(seconds=10 - s), battery_pct=80.0 + s)
                    for s in (10, 11, 12)
                ]
            ),
            qos=1,
        )
        await client.publish(telemetry, encode(_reading(bts, 3, late, battery_pct=99.0)), qos=1)
        await client.publish(
            topics.device(Kind.PROBE, probe, Channel.MEASUREMENTS),
            encode(
                _reading(
                    probe,
                    1,
                    lat=14.2,
                    lon=109.0,
                    operator="viettel",
                    technology="4G",
                    rsrp_dbm=-101.5,
                )
            ),
            qos=1,
        )
        # The device moved (a re-survey, 330 m): a real change of the birth record.
        await client.publish(meta, _meta(bts, sectors=[sector], lat=14.103), qos=1, retain=True)
        await client.publish(
            status,
            encode({"device_id": bts, "state": "offline", "reason": "maintenance"}),
            qos=1,
            retain=True,
        )

    async def settled() -> bool:
        events = rows(database_url, "SELECT count(*) FROM status_events")[0][0]
        moved = rows(database_url, "SELECT lat FROM devices WHERE device_id = %s", bts)
        return events == 2 and moved == [(14.103,)]

    await wait_until(settled)
    assert rows(database_url, "SELECT seq, ts, battery_pct FROM telemetry_bts ORDER BY seq") == [
        (3, late, 99.0),
        *[(s, NOW - timedelta(seconds=10 - s), 80.0 + s) for s in (10, 11, 12)],
    ]
    assert rows(database_url, "SELECT device_id, rsrp_dbm, technology FROM measurements_probe") == [
        (probe, -101.5, "4G")
    ]
    # Two different documents (the repeated birth record is not a change), one row each.
    history = rows(
        database_url,
        "SELECT meta->>'lat' FROM device_meta_history WHERE device_id = %s ORDER BY changed_at",
        bts,
    )
    assert history == [("14.1",), ("14.103",)]
    ((operator, meta_sectors),) = rows(
        database_url, "SELECT operator, meta->'sectors' FROM devices WHERE device_id = %s", bts
    )
    assert operator == "viettel" and meta_sectors[0]["azimuth_deg"] == 120.0
    assert sorted(rows(database_url, "SELECT state, reason FROM status_events")) == [
        ("offline", "maintenance"),
        ("online", "reported"),
    ]
    assert rows(database_url, "SELECT state FROM devices WHERE device_id = %s", bts) == [
        ("offline",)
    ]
    assert rows(database_url, "SELECT count(*) FROM rejects") == [(0,)]


async def test_mqtt_3_1_1_session_stores_and_acknowledges_everything(
    start_ingester: IngesterStarter, database_url: str, mqtt_url: str, topics: Topics
) -> None:
    """The same ingester on MQTT 3.1.1 (clean session off, no properties on the wire)."""

    def v311() -> contextlib.AbstractAsyncContextManager[Ingester]:
        return start_ingester(protocol=4, self_register=True, name="v311", batch_size=20,
                              drain=True)  # fmt: skip

    dev = "OLT-V-0001"
    async with v311():
        async with mqtt_client(mqtt_url, 4) as client:
            await client.publish(
                topics.device(Kind.BROADBAND, dev, Channel.META), _meta(dev), qos=1
            )
            for seq in range(100):
                await client.publish(
                    topics.device(Kind.BROADBAND, dev, Channel.TELEMETRY),
                    encode(_reading(dev, seq, uplink_up=True)),
                    qos=1,
                )

        async def stored() -> bool:
            return rows(database_url, "SELECT count(*) FROM telemetry_broadband") == [(100,)]

        await wait_until(stored)
    # Every PUBACK reached the broker: the resumed session redelivers nothing.
    async with v311() as second:
        async with mqtt_client(mqtt_url, 4) as client:
            await client.publish(
                topics.device(Kind.BROADBAND, dev, Channel.TELEMETRY),
                encode(_reading(dev, 100, uplink_up=False)),
                qos=1,
            )
        await wait_until(lambda: asyncio.sleep(0, second.stats.received >= 1))
    assert (second.stats.received, second.stats.duplicates) == (1, 0)
    assert rows(database_url, "SELECT count(*) FROM telemetry_broadband") == [(101,)]


async def test_a_status_batch_waits_for_the_batches_before_it_even_with_a_writer_free(
    start_ingester: IngesterStarter,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    """Batch N (a meta and an `offline`) is held up on a lock; batch N+1 (`online`) has a free
    writer but must not commit first: that would make N's earlier `offline` stale, and the
    device's outage would vanish from its history."""
    flapper, blocked = "BTS-O-0001", "BTS-O-0002"
    async with start_ingester(self_register=True, name="order", batch_size=2, batch_age_s=30,
                              writers=2, drain=True) as service:  # fmt: skip
        async with mqtt_client(mqtt_url, mqtt_protocol) as client:
            for dev in (flapper, blocked):
                await client.publish(topics.device(Kind.BTS, dev, Channel.META), _meta(dev), qos=1)
        await wait_until(lambda: asyncio.sleep(0, service.stats.received == 2))

        def status(state: str, minutes: int) -> bytes:
            ts = NOW - timedelta(minutes=minutes)
            return encode({"device_id": flapper, "state": state, "ts": ts.isoformat()})

        with psycopg.connect(database_url) as locker:
            locker.execute("SELECT 1 FROM devices WHERE device_id = %s FOR UPDATE", (blocked,))
            async with mqtt_client(mqtt_url, mqtt_protocol) as client:
                status_topic = topics.device(Kind.BTS, flapper, Channel.STATUS)
                await client.publish(
                    topics.device(Kind.BTS, blocked, Channel.META),
                    _meta(blocked, name="renamed"),
                    qos=1,
                )
                await client.publish(status_topic, status("offline", 10), qos=1)
                await client.publish(status_topic, status("online", 5), qos=1)
                await client.publish(
                    topics.device(Kind.BTS, flapper, Channel.TELEMETRY),
                    encode(_reading(flapper, 1)),
                    qos=1,
                )
            # Both batches are with the ingester: the second one waits its turn, or it committed.
            await wait_until(
                lambda: asyncio.sleep(
                    0, service.in_hand + service.receiver.held == 4 or service.stats.received > 2
                )
            )
            locker.rollback()
        await wait_until(lambda: asyncio.sleep(0, service.stats.received == 6))
    states = rows(
        database_url, "SELECT state FROM status_events WHERE device_id = %s ORDER BY ts", flapper
    )
    assert states == [("offline",), ("online",)]
