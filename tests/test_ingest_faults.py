"""Kill -9, a database restart, a broker restart, SIGTERM: every reading stored exactly once.

Each test floods tens of thousands of readings with per-device sequence numbers (hundreds of
batches) at a real ``python -m ioc ingest`` process, breaks something mid-flood, and checks
every (device, seq) against what was published.
"""

from __future__ import annotations

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
    ThrowawayPostgres,
    finish_flood,
    register_devices,
    start_flood,
)

BATCH = 100  # IngesterProcess's default
N = 12_000  # per test: 120 batches
PUBLISHERS = 2
DEVICES = 50
ROOT = Topics.under("fault").root
ONE_READ_MESSAGES = 256 * 1024 // 250  # asyncio reads 256 KiB at a time; a message is ~260 B


def prepare(database_url: str) -> set[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, [d for p in range(PUBLISHERS) for d in device_ids(p, DEVICES)])
    per = N // PUBLISHERS
    return {key for p in range(PUBLISHERS) for key in expected(p, DEVICES, per)}


def assert_exactly_once(database_url: str, published: set[tuple[str, int]]) -> None:
    with psycopg.connect(database_url) as conn:
        keys = reading_keys(conn)
    stored = set(keys)
    assert len(published - stored) == 0, f"{len(published - stored)} readings lost"
    assert len(keys) - len(stored) == 0, f"{len(keys) - len(stored)} readings stored twice"
    assert stored == published


def floods(mqtt_url: str, rate: float | None = None) -> list:  # type: ignore[type-arg]
    return [
        start_flood(
            mqtt_url, ROOT, publisher=p, devices=DEVICES, messages=N // PUBLISHERS, rate=rate
        )
        for p in range(PUBLISHERS)
    ]


@pytest.fixture
def broker() -> Iterator[RestartableBroker]:
    running = RestartableBroker()
    yield running
    running.cleanup()


def ingester(
    database_url: str, broker: RestartableBroker, tmp_path: Path, name: str, **kwargs: object
) -> IngesterProcess:
    return IngesterProcess(
        database_url=database_url,
        mqtt_url=broker.url,
        topic_root=ROOT,
        client_id=name,
        log_dir=tmp_path,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_kill_9_mid_flood_then_restart_stores_every_reading_once(
    database_url: str, broker: RestartableBroker, tmp_path: Path
) -> None:
    published = prepare(database_url)
    first = ingester(database_url, broker, tmp_path, "ingest-k9").start()
    second = ingester(database_url, broker, tmp_path, "ingest-k9")
    try:
        await wait_until(first.subscribed)
        running = floods(broker.url)
        await wait_until(
            lambda: stored_readings(database_url) >= N // 4,
            state=lambda: stored_readings(database_url),
        )
        first.kill()
        at_kill = stored_readings(database_url)
        assert at_kill < N, "the flood was over before the kill: nothing was tested"
        for flood in running:
            await finish_flood(flood)  # every message is now with the broker
        second.start()  # the same client id: the broker resumes its session
        await wait_until(
            lambda: stored_readings(database_url) >= N,
            timeout_s=120,
            state=lambda: stored_readings(database_url),
        )
        assert_exactly_once(database_url, published)
    finally:
        first.close()
        second.close()


async def test_database_restarted_mid_flood_holds_a_bounded_window_then_drains(
    broker: RestartableBroker, tmp_path: Path
) -> None:
    pg = ThrowawayPostgres(tmp_path / "pg")  # never the shared server on 5432
    ing = ingester(pg.url, broker, tmp_path, "ingest-db")
    try:
        published = prepare(pg.url)
        ing.start()
        await wait_until(ing.subscribed)
        running = floods(broker.url)
        await wait_until(lambda: stored_readings(pg.url) >= N // 4, state=ing.health)
        pg.stop("immediate")

        def stalled() -> bool:
            h = ing.health()
            return bool(h and not h["database_up"] and h["inflight"] >= h["window"])

        # Nothing is acknowledged while the database is down; the ingester stops reading at
        # its window of held messages and TCP holds the broker back, which keeps the rest.
        await wait_until(stalled, state=ing.health)
        h = ing.health()
        assert h is not None and not h["keeping_up"]
        stalled_at = h["received"]
        # Held: the window, the batch being retried, and at most one socket read past them.
        bound = h["window"] + BATCH + ONE_READ_MESSAGES
        assert h["held_max"] <= bound
        for flood in running:
            await finish_flood(flood)
        h = ing.health()
        assert h is not None and h["held_max"] <= bound and h["received"] == stalled_at
        pg.start()
        await wait_until(lambda: stored_readings(pg.url) >= N, timeout_s=120, state=ing.health)
        assert_exactly_once(pg.url, published)
        await wait_until(lambda: bool((h := ing.health()) and h["keeping_up"]), state=ing.health)
    finally:
        ing.close()
        pg.cleanup()


async def test_broker_restarted_mid_flood_with_persistence_loses_and_doubles_nothing(
    database_url: str, broker: RestartableBroker, tmp_path: Path
) -> None:
    published = prepare(database_url)
    ing = ingester(database_url, broker, tmp_path, "ingest-br").start()
    try:
        await wait_until(ing.subscribed)
        # Devices publishing steadily (about 3 s of it), so the restart lands mid-flood; the
        # publishers reconnect and resend what the broker had not acknowledged.
        running = floods(broker.url, rate=2_000)
        await wait_until(
            lambda: stored_readings(database_url) >= N // 8,
            state=lambda: stored_readings(database_url),
        )
        broker.restart()
        assert stored_readings(database_url) < N, "the flood was over before the restart"
        results = [await finish_flood(flood) for flood in running]
        await wait_until(
            lambda: stored_readings(database_url) >= N,
            timeout_s=120,
            state=lambda: stored_readings(database_url),
        )
        assert_exactly_once(database_url, published)
        assert ing.alive()
        h = ing.health()
        assert h is not None and h["broker_connected"]
        # Publishers that lost the broker resent what it had not acknowledged: the broker may
        # have delivered some twice, and the writer stored them once.
        assert sum(r["reconnects"] for r in results) >= 1
    finally:
        ing.close()


async def test_sigterm_commits_and_acknowledges_what_is_held_then_exits_0(
    database_url: str, broker: RestartableBroker, tmp_path: Path
) -> None:
    held = 5_000
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, device_ids(0, DEVICES) + device_ids(1, DEVICES))
    # A batch that is never due during the test (it goes at a fifth of its size, 20,000, or
    # after an hour): everything stays held.
    slow = {"batch_size": 100_000, "batch_age_s": 3600}
    first = ingester(database_url, broker, tmp_path, "ingest-term", **slow).start()
    second = ingester(database_url, broker, tmp_path, "ingest-term")
    try:
        await wait_until(first.subscribed)
        await finish_flood(start_flood(broker.url, ROOT, devices=DEVICES, messages=held))
        await wait_until(lambda: bool((h := first.health()) and h["held"] == held))
        assert stored_readings(database_url) == 0
        assert first.terminate() == 0
        assert stored_readings(database_url) == held
        # Had the PUBACKs not reached the broker, it would redeliver those 5,000 now.
        second.start()
        await wait_until(second.subscribed)
        await finish_flood(start_flood(broker.url, ROOT, publisher=1, devices=DEVICES, messages=10))
        await wait_until(lambda: stored_readings(database_url) == held + 10)
        h = second.health()
        assert h is not None and (h["received"], h["duplicates"]) == (10, 0)
        assert second.terminate() == 0
    finally:
        first.close()
        second.close()
