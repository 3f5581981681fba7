"""Scale-out: ingesters on the MQTT 5 shared subscription split the load and, together, store
every reading exactly once, whether started N times or as ``ioc ingest --instances N``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devices.topics import Topics
from store.audit import reading_keys
from store.migrate import upgrade
from tests.support.databases import stored_readings
from tests.support.flood import device_ids, expected
from tests.support.polling import wait_until
from tests.support.procs import (
    IngesterProcess,
    RestartableBroker,
    finish_flood,
    register_devices,
    start_flood,
)

N = 10_000
PUBLISHERS = 2
DEVICES = 40
ROOT = Topics.under("share").root


@pytest.fixture
def broker() -> Iterator[RestartableBroker]:
    running = RestartableBroker()
    yield running
    running.cleanup()


async def flood_and_check(database_url: str, mqtt_url: str) -> None:
    running = [
        start_flood(mqtt_url, ROOT, publisher=p, devices=DEVICES, messages=N // PUBLISHERS)
        for p in range(PUBLISHERS)
    ]
    for flood in running:
        await finish_flood(flood)
    await wait_until(
        lambda: stored_readings(database_url) >= N,
        timeout_s=120,
        state=lambda: stored_readings(database_url),
    )
    published = {k for p in range(PUBLISHERS) for k in expected(p, DEVICES, N // PUBLISHERS)}
    with psycopg.connect(database_url) as conn:
        keys = reading_keys(conn)
    assert len(keys) == len(set(keys)) == N  # nothing twice
    assert set(keys) == published  # nothing lost


@pytest.mark.parametrize("instances", [2, 3])
async def test_ingesters_on_the_shared_subscription_store_the_union_once(
    instances: int, database_url: str, broker: RestartableBroker, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    group = [
        IngesterProcess(
            database_url=database_url,
            mqtt_url=broker.url,
            topic_root=ROOT,
            client_id=f"share-{i}",
            log_dir=tmp_path,
            shared=True,
        ).start()
        for i in range(instances)
    ]
    try:
        for ing in group:
            await wait_until(ing.subscribed)
        # Registered after they started: each must find the others' devices in the registry.
        register_devices(
            database_url, [d for p in range(PUBLISHERS) for d in device_ids(p, DEVICES)]
        )
        await flood_and_check(database_url, broker.url)
        received = []
        for ing in group:
            h = ing.health()
            assert h is not None and h["rejected"] == {}
            received.append(h["received"])
        assert sum(received) == N
        assert all(n > 0 for n in received), f"the load was not split: {received}"
        for ing in group:
            assert ing.terminate() == 0
    finally:
        for ing in group:
            ing.close()


async def test_ioc_ingest_instances_runs_a_group_and_stats_says_it_keeps_up(
    database_url: str, broker: RestartableBroker, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, [d for p in range(PUBLISHERS) for d in device_ids(p, DEVICES)])
    group = IngesterProcess(
        database_url=database_url,
        mqtt_url=broker.url,
        topic_root=ROOT,
        client_id="multi",
        log_dir=tmp_path,
        instances=2,
    ).start()
    try:
        await wait_until(lambda: group.subscribed(0) and group.subscribed(1), state=group.log_tail)
        await flood_and_check(database_url, broker.url)
        shares = [h["received"] for i in range(2) if (h := group.health(i)) is not None]
        assert len(shares) == 2 and sum(shares) == N and min(shares) > 0
        stats = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "ioc",
                "ingest",
                "--stats",
                "--instances",
                "2",
                "--metrics-port",
                str(group.metrics_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0, stats.stderr
        lines = stats.stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["multi-1", "multi-2"]
        assert all(" keeping up: " in line for line in lines)
        assert group.terminate() == 0  # SIGTERM reaches both; each drains and exits 0
    finally:
        group.close()


def test_stats_without_a_running_ingester_says_so_in_one_line(tmp_path: Path) -> None:
    from ioc.brokers import free_port

    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "ioc", "ingest", "--stats", "--metrics-port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ioc: --metrics-port {port}: no ingester answers "
        f"(<urlopen error [Errno 111] Connection refused>)"
    ]
