"""Delivery through the outbox: retries with backoff (and jitter), independence of webhooks,
order per alert, and an engine killed (SIGKILL) between the state change and the delivery."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from devices.kinds import Kind
from processing.alerts.engine import AlertEngine
from store.alerts import acknowledge
from store.db import connect
from tests.support.alerting import AlertWorld, FakeClock, WebhookServer, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.environment import clean_environ
from tests.support.polling import wait_until


def _outbox(url: str, channel: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT alert_id, seq, attempts, last_attempt_at, next_attempt_at,"
                " delivered_at IS NOT NULL FROM alert_outbox WHERE channel = %s"
                " ORDER BY alert_id, seq", channel)  # fmt: skip


async def _rounds(engine: AlertEngine, channel: str, n: int = 3) -> None:
    [d] = [d for d in engine.dispatchers if d.channel.name == channel]
    target = d.stats.rounds + n

    async def done() -> bool:
        return d.stats.rounds >= target

    await wait_until(done)


async def test_failing_and_hanging_webhooks_retry_with_backoff_and_delay_nobody_else(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    cameras = scenario_devices(Kind.CAMERA)[:3]
    good, failing, hanging = world.hook, WebhookServer(status=500), WebhookServer(delay_s=3)
    with failing.running(), hanging.running():
        hooks = {"good": good.url, "failing": failing.url, "hanging": hanging.url}
        async with (
            world.field() as field,
            world.engine(retry_first_s=2.0, webhook_timeout_s=0.3, webhooks=hooks) as engine,
        ):
            await field.tampered(*cameras)

            async def first_round_done() -> bool:
                return (
                    len(good.received) == 3
                    and len(failing.attempts) == 3
                    and all(r[2] == 1 for r in _outbox(database_url, "webhook:hanging"))
                )

            await wait_until(first_round_done)
            failed = _outbox(database_url, "webhook:failing")
            assert [r[2] for r in failed] == [1, 1, 1] and not any(r[5] for r in failed)
            # The first backoff, with full jitter: anywhere below retry_first_s.
            assert all(timedelta(0) <= r[4] - r[3] <= timedelta(seconds=2) for r in failed)
            with connect(database_url) as conn:  # a second transition queued behind the first
                acknowledge(conn, failed[0][0], "lan", now=clock())
            await _rounds(engine, "webhook:failing")
            assert len(failing.attempts) == 3  # nothing retried before its time

            clock.advance(2)
            await wait_until(lambda: _attempts(failing, 6))
            await _rounds(engine, "webhook:failing")
            again = [r for r in _outbox(database_url, "webhook:failing") if r[1] == 1]
            assert all(r[2] == 2 and r[4] - r[3] <= timedelta(seconds=4) for r in again)
            assert good.events()[-1] == (failed[0][0], "acknowledged")  # good stays on time

            failing.status, hanging.delay_s = 200, 0
            clock.advance(4)

            async def all_delivered() -> bool:
                return all(r[5] for ch in ("failing", "hanging")
                           for r in _outbox(database_url, f"webhook:{ch}"))  # fmt: skip

            await wait_until(all_delivered)
    for hook in (good, failing):
        assert sorted(hook.events()) == sorted(good.events())
    # A receiver that answers after the sender gave up has acted on the request, and sees it
    # again on the retry: at least once, with the Idempotency-Key header to tell them apart.
    assert set(hanging.events()) == set(good.events())
    mine = [e for e in failing.events() if e[0] == failed[0][0]]
    assert mine == [(failed[0][0], "opened"), (failed[0][0], "acknowledged")]  # in order


async def _attempts(hook: WebhookServer, n: int) -> bool:
    return len(hook.attempts) >= n


async def test_an_engine_killed_before_delivery_delivers_once_after_restart(
    world: AlertWorld, tmp_path: Path
) -> None:
    database_url, hook, subscriber = world.database_url, world.hook, world.subscriber
    camera = scenario_devices(Kind.CAMERA)[0]
    clean = clean_environ()
    env = {**clean, "IOC_DATABASE_URL": database_url, "IOC_MQTT_URL": world.mqtt_url,
           "IOC_MQTT_PROTOCOL": str(world.protocol), "IOC_TOPIC_ROOT": world.topics.root,
           "IOC_ALERT_WEBHOOKS": json.dumps({"ops": hook.url})}  # fmt: skip
    log = (tmp_path / "engine.log").open("w")
    # Only the evaluation runs: the process dies with its transitions committed and
    # queued in the outbox, none of them sent (the moment between state and delivery).
    engine_proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ioc", "alerts", "run", "--no-deliver",
        env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        async with world.listening(), world.field() as field:
            await field.tampered(camera)

            async def queued() -> bool:
                return len(rows(database_url, "SELECT 1 FROM alert_outbox")) == 2

            await wait_until(queued)
            engine_proc.send_signal(signal.SIGKILL)
            await engine_proc.wait()
            assert hook.received == [] and subscriber.messages == []

            # The engine's time starts now, after the killed engine queued its transitions.
            world.clock = FakeClock()
            async with world.engine(ops_hook=True) as engine:

                async def delivered() -> bool:
                    return len(hook.received) == 1 and len(subscriber.events()) == 1

                await wait_until(delivered)
                await _rounds(engine, "webhook:ops", 5)
                await _rounds(engine, "mqtt", 5)
                await ticks(engine, 5)
            async with world.engine(ops_hook=True) as engine:  # and once more
                await _rounds(engine, "webhook:ops", 5)
                await _rounds(engine, "mqtt", 5)
    finally:
        if engine_proc.returncode is None:
            engine_proc.kill()
            await engine_proc.wait()
    assert hook.events() == [(hook.received[0]["alert_id"], "opened")]
    assert subscriber.events() == [("camera_tamper", "opened")]
    assert [r[5] for r in _outbox(database_url, "mqtt") + _outbox(database_url, "webhook:ops")] == [
        True,
        True,
    ]
    assert isinstance(hook.received[0]["transition_id"], int)
    assert datetime.fromisoformat(hook.received[0]["ts"])
