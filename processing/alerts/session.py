"""The engine's hold on its database: the lock that makes it the one evaluating engine, and the
listening connection that wakes it when inputs arrive."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from store import alert_engine as q
from store.db import aconnect

log = logging.getLogger("ioc.alerts")

# A standby engine asks for the lock this often: it takes over within seconds of the active
# one's session ending, and one query every 2 s costs the database nothing.
LOCK_RETRY_S = 2.0


async def hold_engine_lock(conn: psycopg.AsyncConnection) -> None:
    """Return once this session holds the engine lock (held until the connection closes)."""
    waited = False
    while not await q.try_lock_engine(conn):
        if not waited:
            log.warning("another alert engine holds the lock on this database; waiting")
            waited = True
        await asyncio.sleep(LOCK_RETRY_S)


async def open_listener(database_url: str) -> psycopg.AsyncConnection:
    """A connection listening for new inputs; open it before the first read, so no change
    falls between what is read and what wakes the engine."""
    listener = await aconnect(database_url)
    try:
        await q.listen_inbox(listener)
    except BaseException:
        await listener.close()
        raise
    return listener


async def wake_on_notify(listener: psycopg.AsyncConnection, wake: asyncio.Event) -> None:
    async for _ in listener.notifies():
        wake.set()
