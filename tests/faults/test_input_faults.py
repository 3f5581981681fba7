"""Faults from the outside world: device clocks that are wrong, payloads that are too big, and a
burst of ten times the province's normal rate at a running ingester."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import msgspec
import psycopg
import pytest

from devices.kinds import Channel, Kind
from devices.topics import Topics
from seeds import load_scenario
from store.fault_audit import reading_times
from store.migrate import upgrade
from tests.faults.harness import audit
from tests.support.clients import mqtt_client
from tests.support.databases import stored_readings
from tests.support.flood import device_ids, expected
from tests.support.ingesters import running_ingester
from tests.support.polling import wait_until
from tests.support.procs import IngesterProcess, finish_flood, register_devices, start_flood


def _reading(device_id: str, seq: int, ts: datetime) -> bytes:
    return msgspec.json.encode({"device_id": device_id, "ts": ts.isoformat(), "seq": seq,
                                "power_source": "mains", "backhaul_up": True})  # fmt: skip


async def _publish(mqtt_url: str, protocol: int, messages: list[tuple[str, bytes]]) -> None:
    async with mqtt_client(mqtt_url, protocol) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def _stored(database_url: str, at_least: int, rejected_at_least: int = 0) -> None:
    def done() -> bool:
        with psycopg.connect(database_url) as conn:
            rejects = conn.execute("SELECT count(*) FROM rejects").fetchone()
        enough = stored_readings(database_url) >= at_least
        return enough and bool(rejects and rejects[0] >= rejected_at_least)

    try:
        await wait_until(done, timeout_s=60)
    except AssertionError:
        with psycopg.connect(database_url) as conn:
            found = conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
        raise AssertionError(f"{stored_readings(database_url)} stored, rejects {found}") from None


def _prepare(database_url: str, device_ids: list[str]) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, device_ids)


async def test_device_clock_skew_keeps_their_timestamps_and_rejects_the_far_future(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    skews = {"SKEW-LATE": timedelta(days=-3),  # a device back from days without power
             "SKEW-AHEAD": timedelta(seconds=120),  # within max_future_s (300 s)
             "SKEW-FAR": timedelta(hours=2)}  # fmt: skip
    _prepare(database_url, list(skews))
    now = datetime.now(UTC)
    sent: dict[tuple[str, int], datetime] = {}
    messages = []
    for device, skew in skews.items():
        for seq in range(1, 51):
            sent[(device, seq)] = ts = now + skew + timedelta(seconds=seq)
            messages.append((topics.device(Kind.BTS, device, Channel.TELEMETRY),
                             _reading(device, seq, ts)))  # fmt: skip
    accepted = {k for k in sent if k[0] != "SKEW-FAR"}
    async with running_ingester(
        database_url, mqtt_url, mqtt_protocol, topics, self_register=False, name="fault"
    ):
        await _publish(mqtt_url, mqtt_protocol, messages)
        await _stored(database_url, len(accepted), rejected_at_least=50)
    figures = audit("device clock skew (-3 d, +2 min, +2 h)", database_url, accepted,
                    sent=len(messages), note="+2 h rejected as future_timestamp")  # fmt: skip
    with psycopg.connect(database_url) as conn:
        stored = reading_times(conn)
        reasons = conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
    assert all(stored[k] == sent[k] for k in accepted), "a reading lost its own timestamp"
    assert dict(reasons) == {"future_timestamp": 50}
    assert (figures.lost, figures.duplicated, figures.rejected) == (0, 0, 50)


async def test_oversize_payloads_are_cut_by_the_broker_or_rejected_by_the_ingester(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, broker: object
) -> None:
    if broker is None:
        pytest.skip("an external broker: its size limit is not the project's")
    device = "OVERSIZE-1"
    _prepare(database_url, [device])
    topic = topics.device(Kind.BTS, device, Channel.TELEMETRY)
    now = datetime.now(UTC)
    big = b"[" + b" " * 300_000 + b"]"  # > the ingester's 256 KiB, < the broker's 1 MiB
    messages = []
    for seq in range(1, 101):
        messages.append((topic, _reading(device, seq, now + timedelta(seconds=seq))))
        if seq % 25 == 0:
            messages.append((topic, big))
    cut = 0
    accepted = {(device, seq) for seq in range(1, 101)}
    async with running_ingester(
        database_url, mqtt_url, mqtt_protocol, topics, self_register=False, name="fault"
    ):
        await _publish(mqtt_url, mqtt_protocol, messages)
        try:  # 2 MiB: past the broker's message_size_limit, which drops the connection
            await _publish(mqtt_url, mqtt_protocol, [(topic, b"x" * (2 << 20))])
        except aiomqtt.MqttError:
            cut = 1
        await _stored(database_url, len(accepted), rejected_at_least=4)
    figures = audit("oversize payloads (300 KB x4, 2 MiB x1)", database_url, accepted,
                    sent=len(messages) + 1, cut=cut,
                    note="300 KB: ingester rejects; 2 MiB: broker cuts")  # fmt: skip
    with psycopg.connect(database_url) as conn:
        reasons = conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
    assert dict(reasons) == {"oversize": 4} and cut == 1
    assert (figures.lost, figures.duplicated) == (0, 0)


async def test_a_burst_of_ten_times_the_normal_rate_is_absorbed(
    database_url: str, mqtt_url: str, topics: Topics, tmp_path: Path
) -> None:
    devices = load_scenario().devices()
    normal_per_s = sum(1 / d.meta["interval_s"] for d in devices)  # the province, 1 a minute
    publishers, per_publisher, per_device = 2, 10_000, 50
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, [d for p in range(publishers)
                                    for d in device_ids(p, per_device)])  # fmt: skip
    published = {k for p in range(publishers) for k in expected(p, per_device, per_publisher)}
    ing = IngesterProcess(database_url=database_url, mqtt_url=mqtt_url, topic_root=topics.root,
                          client_id="fault-burst", log_dir=tmp_path).start()  # fmt: skip
    try:
        await wait_until(ing.subscribed)
        running = [start_flood(mqtt_url, topics.root, publisher=p, devices=per_device,
                               messages=per_publisher) for p in range(publishers)]  # fmt: skip
        peak_lag = peak_held = 0.0

        def drained() -> bool:
            nonlocal peak_lag, peak_held
            if h := ing.health():
                peak_lag, peak_held = max(peak_lag, h["lag_s"]), max(peak_held, h["held"])
            return stored_readings(database_url) >= len(published)

        async def watch() -> None:  # the ingester's lag while the burst is on
            while True:
                drained()
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        try:
            results = [await finish_flood(p) for p in running]
            await wait_until(drained, timeout_s=120)
        finally:
            watcher.cancel()
        assert ing.alive(), ing.log_tail()
    finally:
        ing.close()
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    burst = len(published) / seconds / normal_per_s
    figures = audit(f"burst at {burst:.0f}x the province's normal rate", database_url,
                    published, note=f"normal {normal_per_s:.0f} msg/s; peak lag "
                    f"{peak_lag:.1f} s, {peak_held:.0f} held")  # fmt: skip
    assert burst >= 10, f"the publishers managed only {burst:.1f}x the normal rate"
    assert (figures.lost, figures.duplicated) == (0, 0)


async def test_long_topics_and_extra_levels_are_rejected_without_holding_memory(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    """Under its own tree a device's credential may publish any topic: 1,000 with a 60 KB
    level and 100 with an extra level, among 100 good readings."""
    device = "LONGTOPIC-1"
    _prepare(database_url, [device])
    topic = topics.device(Kind.BTS, device, Channel.TELEMETRY)
    now = datetime.now(UTC)
    messages = [(topic, _reading(device, seq, now - timedelta(seconds=seq)))
                for seq in range(1, 101)]  # fmt: skip
    hostile = [(f"{topic}/{i:04d}{'x' * 60_000}", b"{}") for i in range(1000)]
    hostile += [(f"{topic}/extra", _reading(device, 1000 + i, now)) for i in range(100)]
    accepted = {(device, seq) for seq in range(1, 101)}
    async with running_ingester(
        database_url, mqtt_url, mqtt_protocol, topics, self_register=False, name="fault"
    ) as ingester:
        await _publish(mqtt_url, mqtt_protocol, messages[:50] + hostile + messages[50:])
        await _stored(database_url, len(accepted), rejected_at_least=len(hostile))
        cached, bytes_max = ingester.codec.cached_topics, ingester.receiver.bytes_max
    figures = audit("long topics (60 KB x1,000) and extra levels", database_url, accepted,
                    sent=len(messages) + len(hostile),
                    note=f"bad_topic each; {cached} topic cached, at most "
                         f"{bytes_max / 2**20:.1f} MB held")  # fmt: skip
    with psycopg.connect(database_url) as conn:
        reasons = conn.execute("SELECT reason, count(*), max(length(topic)) FROM rejects"
                               " GROUP BY reason").fetchall()  # fmt: skip
    assert reasons == [("bad_topic", len(hostile), 513)]  # cut at 512 characters and "…"
    assert cached == 1 and bytes_max <= ingester.config.window_bytes + 64 * 1024
    assert (figures.lost, figures.duplicated, figures.rejected) == (0, 0, len(hostile))


async def test_one_message_of_many_bad_readings_is_one_small_reject_row(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    """Amplification: 20 messages, each an array of 2,000 future-dated readings (~190 KB),
    once became 2,000 reject rows each holding the whole payload."""
    device = "AMPLIFY-1"
    _prepare(database_url, [device])
    topic = topics.device(Kind.BTS, device, Channel.TELEMETRY)
    now = datetime.now(UTC)
    good = [(topic, _reading(device, seq, now - timedelta(seconds=seq))) for seq in range(1, 101)]
    ahead = now + timedelta(days=2)
    arrays = [(topic, msgspec.json.encode([msgspec.json.decode(_reading(device, 10_000 * m + i,
                                                                        ahead))
                                           for i in range(2000)]))
              for m in range(1, 21)]  # fmt: skip
    accepted = {(device, seq) for seq in range(1, 101)}
    async with running_ingester(
        database_url, mqtt_url, mqtt_protocol, topics, self_register=False, name="fault"
    ):
        await _publish(mqtt_url, mqtt_protocol, good[:50] + arrays + good[50:])
        await _stored(database_url, len(accepted), rejected_at_least=len(arrays))
    sent_bytes = sum(len(p) for _, p in arrays)
    with psycopg.connect(database_url) as conn:
        (n, kept, sizes) = conn.execute(
            "SELECT count(*), sum(length(payload)), sum(payload_size) FROM rejects"
        ).fetchone()  # type: ignore[misc]
    figures = audit("amplification: 20 arrays of 2,000 future readings", database_url, accepted,
                    sent=len(good) + len(arrays),
                    note=f"{n} reject rows keep {kept / 1024:.0f} KiB of "
                         f"{sent_bytes / 2**20:.1f} MB sent")  # fmt: skip
    assert (n, kept, sizes) == (len(arrays), 1024 * len(arrays), sent_bytes)
    assert (figures.lost, figures.duplicated, figures.rejected) == (0, 0, len(arrays))
