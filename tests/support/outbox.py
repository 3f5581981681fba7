"""Helpers for the outbox tests and bench/delivery.py: alerts queued straight into the outbox
(through the store's own fan-out, as the engine queues them), one channel's dispatcher running
alone, and a webhook server that drips its answer a byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from processing.alerts.config import AlertConfig
from processing.alerts.delivery import Channel, Dispatcher
from store.alert_outbox import fan_out
from store.db import aconnect
from tests.support.polling import wait_until
from tests.support.tasks import background


async def queue_alerts(
    database_url: str,
    channels: list[str],
    now: datetime,
    *,
    count: int = 1,
    severity: str = "major",
    transitions: int = 1,
    subject: str = "CAM-TEST",
) -> list[int]:
    """``count`` open alerts (subjects ``{subject}-{i}``, or ``subject`` for one), each with
    ``transitions`` transitions (seq 1…n), fanned out to ``channels`` at ``now`` by the
    store's own fan-out; returns their alert ids."""
    async with await aconnect(database_url) as conn, conn.transaction():
        cur = await conn.execute(
            "INSERT INTO alerts (rule, subject, subject_kind, severity, state, summary,"
            " summary_vi, opened_at, updated_at, last_seq)"
            " SELECT 'camera_tamper', CASE WHEN %(n)s = 1 THEN %(s)s ELSE %(s)s || '-' || i END,"
            " 'camera', %(sev)s, 'open', 'test', 'test', %(now)s, %(now)s, %(k)s"
            " FROM generate_series(1, %(n)s) i RETURNING alert_id",
            {"n": count, "s": subject, "sev": severity, "now": now, "k": transitions},
        )
        ids = [r[0] for r in await cur.fetchall()]
        await conn.execute(
            "INSERT INTO alert_transitions (alert_id, seq, ts, event, actor, payload)"
            " SELECT a.alert_id, g, %(now)s, e.event, 'test', jsonb_build_object('alert_id',"
            "  a.alert_id, 'rule', a.rule, 'subject', a.subject, 'severity', a.severity,"
            "  'state', a.state, 'seq', g, 'event', e.event)"
            " FROM alerts a, generate_series(1, %(k)s) g,"
            " LATERAL (SELECT CASE g WHEN 1 THEN 'opened' ELSE 'updated' END AS event) e"
            " WHERE a.alert_id = ANY (%(ids)s) ORDER BY a.alert_id, g",
            {"now": now, "k": transitions, "ids": ids},
        )
        while await fan_out(conn, channels, now, limit=5000):
            pass
    return ids


async def queue_alert(database_url: str, channels: list[str], now: datetime, *,
                      severity: str = "major", transitions: int = 1,
                      subject: str = "CAM-TEST") -> int:  # fmt: skip
    """One open alert, as ``queue_alerts``; returns its id."""
    [alert_id] = await queue_alerts(database_url, channels, now, severity=severity,
                                    transitions=transitions, subject=subject)  # fmt: skip
    return alert_id


@contextlib.asynccontextmanager
async def dispatching(
    channel: Channel, config: AlertConfig, clock: Callable[[], datetime]
) -> AsyncIterator[Dispatcher]:
    """``channel``'s dispatcher running (on its own connection) until the block ends."""
    dispatcher = Dispatcher(channel, config, clock, asyncio.Event())
    async with background(dispatcher.run()):
        yield dispatcher


async def rounds(dispatcher: Dispatcher, n: int = 3) -> None:
    """Let the dispatcher look at the outbox ``n`` more times."""
    target = dispatcher.stats.rounds + n
    await wait_until(lambda: dispatcher.stats.rounds >= target, timeout_s=10)


def outbox_rows(database_url: str, channel: str) -> list[tuple[int, int, int, bool, bool, str]]:
    """(alert, seq, attempts, delivered, dead, last error) of a channel's rows."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT alert_id, seq, attempts, delivered_at IS NOT NULL, dead_at IS NOT NULL,"
            " coalesce(last_error, '') FROM alert_outbox WHERE channel = %s"
            " ORDER BY alert_id, seq",
            (channel,),
        ).fetchall()
    return [(a, s, n, d, x, e) for a, s, n, d, x, e in found]


@dataclass
class DripServer:
    """An HTTP server on loopback that reads a request whole, then sends its 200 answer one
    byte every ``every_s``: each read comes soon, the answer takes long."""

    every_s: float = 0.2
    body: bytes = b'{"ok": true, "padding": "................"}'
    requests: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    @property
    def answer(self) -> bytes:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "Content-Type: application/json\r\n\r\n").encode() + self.body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            await reader.readexactly(length)
            self.requests += 1
            for i in range(len(self.answer)):
                writer.write(self.answer[i : i + 1])
                await writer.drain()
                await asyncio.sleep(self.every_s)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: what the test wants
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DripServer]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self.server.close()
            # Connections still dripping are abandoned: the server is gone with the test.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self.server.wait_closed()
