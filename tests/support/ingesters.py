"""An ingester in the test's own event loop, on the test's database, broker and topic root."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from devices.topics import Topics
from ingest import Ingester
from ingest.config import IngestConfig
from ioc.configs import ingest_config
from tests.support.tasks import background

IngesterStarter = Callable[..., contextlib.AbstractAsyncContextManager[Ingester]]
"""The ``start_ingester`` fixture: ``running_ingester`` on the test's own services."""


@contextlib.asynccontextmanager
async def serving(config: IngestConfig, *, drain: bool = False) -> AsyncIterator[Ingester]:
    """``config``'s ingester, subscribed. On leaving, ``drain`` stops it as production does
    (the last batches commit, the session keeps its acknowledgements); otherwise it is
    cancelled."""
    service = Ingester(config)
    async with background(service.run()) as task:
        await asyncio.wait_for(service.subscribed.wait(), 20)
        yield service
        if drain:
            service.request_stop()
            await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def running_ingester(
    database_url: str,
    mqtt_url: str,
    protocol: int,
    topics: Topics,
    *,
    self_register: bool,
    name: str = "ingest",
    drain: bool = False,
    **options: Any,
) -> AsyncIterator[Ingester]:
    """Small batches and a short age, so a test sees its readings at once; ``options``
    override any of the configuration. With ``self_register`` off (production), a device
    registered after the start reaches the ingester only through its meta message."""
    config = ingest_config(
        database_url=database_url,
        mqtt_url=mqtt_url,
        topic_root=topics.root,
        client_id=f"{name}-{topics.root.split('/')[0]}",
        protocol=protocol,
        self_register=self_register,
        **({"batch_size": 50, "batch_age_s": 0.05} | options),
    )
    async with serving(config, drain=drain) as service:
        yield service
