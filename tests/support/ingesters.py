"""An ingester in the test's own event loop, on the test's database, broker and topic root."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from devices.topics import Topics
from ingest import Ingester
from ioc.configs import ingest_config


@contextlib.asynccontextmanager
async def running_ingester(
    database_url: str,
    mqtt_url: str,
    protocol: int,
    topics: Topics,
    *,
    self_register: bool,
    name: str = "ingest",
) -> AsyncIterator[Ingester]:
    """Small batches and a short age, so a test sees its readings at once. With
    ``self_register`` off (production), a device registered after the start reaches the
    ingester only through its meta message."""
    config = ingest_config(
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_root=topics.root,
        client_id=f"{name}-{topics.root.split('/')[0]}",
        batch_size=50,
        batch_age_s=0.05,
        protocol=protocol,
        self_register=self_register,
    )
    service = Ingester(config)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.subscribed.wait(), 20)
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
