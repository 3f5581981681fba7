"""Delivery that is fair and finite (issue 16): the critical alert goes first behind another
alert's backlog, a 4xx that cannot get better is dead at once while 503 and 429 are retried,
a row is dead after its last attempt, one deadline bounds a whole POST, and webhooks are
signed as the README tells receivers to verify."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Callable

import pytest

from ioc.configs import alert_config
from ioc.errors import SettingError
from ioc.settings import Settings
from processing.alerts.delivery import DeliveryError, WebhookChannel, channels_for
from store.alert_outbox import backlog, dead_letters
from store.db import connect
from store.scope import NATIONAL
from tests.support.alerting import AlertWorld, WebhookServer
from tests.support.environment import clean_environ
from tests.support.outbox import DripServer, dispatching, outbox_rows, queue_alert, rounds
from tests.support.polling import wait_until

OPS = "webhook:ops"


async def test_a_critical_alert_is_attempted_at_once_behind_another_alerts_backlog(
    world: AlertWorld,
) -> None:
    clock, hook = world.clock, world.hook
    hook.delay_s = 0.5  # a slow receiver: every slot of the channel stays busy
    backlog_id = await queue_alert(world.database_url, [OPS], clock(), transitions=2100)
    for i in range(20):  # and lesser alerts enough to fill every slot
        await queue_alert(world.database_url, [OPS], clock(), severity="minor", subject=f"M{i}")
    config = world.config(ops_hook=True)
    async with dispatching(WebhookChannel("ops", hook.url, 5.0), config, clock) as d:
        await wait_until(lambda: len(hook.attempts) >= 8)
        critical = await queue_alert(world.database_url, [OPS], clock(), severity="critical",
                                     subject="CAM-CRIT")  # fmt: skip
        queued = time.monotonic()
        d.wake.set()  # as the engine's fan-out does

        def attempted() -> bool:
            return any(body["alert_id"] == critical for _, body in hook.attempts)

        await wait_until(attempted, timeout_s=5)
        [at] = [t for t, body in hook.attempts if body["alert_id"] == critical]
        assert at - queued < 1.0
    # The backlog's alert went in order, one transition at a time.
    seqs = [b["seq"] for _, b in hook.attempts if b["alert_id"] == backlog_id]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_4xx_is_dead_at_once_while_503_and_429_are_retried(world: AlertWorld) -> None:
    clock = world.clock
    codes = {"gone": 410, "busy": 503, "slow_down": 429, "bad": 400}
    servers = {name: WebhookServer(status=code) for name, code in codes.items()}
    names = [f"webhook:{n}" for n in servers]
    alert_id = await queue_alert(world.database_url, names, clock(), transitions=2)
    config = world.config(retry_first_s=1.0, retry_max_s=1.0)
    with (servers["gone"].running(), servers["busy"].running(), servers["slow_down"].running(),
          servers["bad"].running()):  # fmt: skip
        channels = [WebhookChannel(n, s.url, 2.0) for n, s in servers.items()]
        async with (
            dispatching(channels[0], config, clock) as gone,
            dispatching(channels[1], config, clock) as busy,
            dispatching(channels[2], config, clock) as slow_down,
            dispatching(channels[3], config, clock) as bad,
        ):

            def failed(name: str, n: int) -> bool:  # n failures recorded for seq 1
                return outbox_rows(world.database_url, f"webhook:{name}")[0][2] >= n

            def given_up(name: str) -> bool:  # seq 1 dead, then seq 2 (the next head) too
                return all(r[4] for r in outbox_rows(world.database_url, f"webhook:{name}"))

            await wait_until(lambda: given_up("gone") and given_up("bad"))

            def retried(n: int) -> Callable[[], bool]:
                return lambda: failed("busy", n) and failed("slow_down", n)

            for n in (2, 3):  # the clock past the backoff: retried, each time
                await wait_until(retried(n - 1))
                clock.advance(5)
                await wait_until(retried(n))
            for d in (gone, busy, slow_down, bad):
                await rounds(d)
        assert len(servers["gone"].attempts) == 2 and len(servers["bad"].attempts) == 2
        for name, code in (("gone", 410), ("bad", 400)):
            assert outbox_rows(world.database_url, f"webhook:{name}") == [
                (alert_id, 1, 1, False, True, f"HTTP {code}"),
                (alert_id, 2, 1, False, True, f"HTTP {code}"),
            ]
        for name, code in (("busy", 503), ("slow_down", 429)):
            rows = outbox_rows(world.database_url, f"webhook:{name}")
            assert rows[0][2] >= 3 and not rows[0][4] and rows[0][5] == f"HTTP {code}"
            assert rows[1][2] == 0  # in order: seq 2 waits behind the failing seq 1
            assert {b["seq"] for _, b in servers[name].attempts} == {1}


async def test_a_row_is_dead_after_max_attempts_and_listed_as_a_dead_letter(
    world: AlertWorld,
) -> None:
    clock, failing = world.clock, WebhookServer(status=500)
    alert_id = await queue_alert(world.database_url, ["webhook:failing"], clock())
    config = world.config(retry_first_s=1.0, retry_max_s=2.0, max_attempts=3)
    with failing.running():
        channel = WebhookChannel("failing", failing.url, 2.0)
        async with dispatching(channel, config, clock) as d:

            def failed(n: int) -> Callable[[], bool]:  # n failures recorded
                return lambda: outbox_rows(world.database_url, "webhook:failing")[0][2] == n

            for n in (1, 2, 3):
                await wait_until(failed(n))
                clock.advance(2)  # the longest backoff: the next attempt is due
            for _ in range(3):
                clock.advance(60)
                await rounds(d)
            assert len(failing.attempts) == 3 and d.stats.dead == 1
    assert outbox_rows(world.database_url, "webhook:failing") == [
        (alert_id, 1, 3, False, True, "HTTP 500")
    ]
    with connect(world.database_url) as conn:
        [b] = backlog(conn, scope=NATIONAL)
        [dead] = dead_letters(conn, scope=NATIONAL)
    assert (b.channel, b.pending, b.dead) == ("webhook:failing", 0, 1)
    assert (dead.alert_id, dead.attempts, dead.last_error) == (alert_id, 3, "HTTP 500")
    env = clean_environ() | {"IOC_DATABASE_URL": world.database_url}
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ioc", "alerts", "outbox", env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, err
    shown = out.decode()
    assert "webhook:failing" in shown and "0 pending, 0 failing, 1 dead" in shown
    assert f"alert {alert_id} seq 1" in shown and "after 3 attempt(s): HTTP 500" in shown


async def test_a_slow_drip_answer_ends_at_the_deadline() -> None:
    drip = DripServer(every_s=0.1)  # ~13 s for the whole answer, each byte within 0.1 s
    async with drip.running():
        channel = WebhookChannel("drip", drip.url, 1.0)
        started = time.monotonic()
        try:
            with pytest.raises(DeliveryError, match="within 1 s") as failed:
                await channel.send({"transition_id": 1})
        finally:
            await channel.close()
        took = time.monotonic() - started
    assert drip.requests == 1 and not failed.value.permanent  # retried later
    assert 0.9 < took < 1.5


def verify(secret: bytes, headers: dict[str, str], body: bytes, now: float) -> bool:
    """The receiver's recipe, as the README gives it."""
    stamp = headers["x-ioc-timestamp"]
    mac = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs(now - int(stamp)) < 300
    return fresh and hmac.compare_digest(f"sha256={mac}", headers["x-ioc-signature-256"])


async def test_webhooks_are_signed_with_their_own_secret(world: AlertWorld) -> None:
    hook, secret = world.hook, "a-long-webhook-secret-0123"
    config = world.config(ops_hook=True, webhook_secrets={"ops": secret})
    [channel] = [c for c in channels_for(config, {}) if c.name == OPS]
    try:
        await channel.send({"transition_id": 7, "alert_id": 1, "event": "opened"})
    finally:
        await channel.close()
    [(headers, body)] = hook.signed
    assert verify(secret.encode(), headers, body, time.time())
    assert not verify(b"another-secret-of-someone", headers, body, time.time())
    assert not verify(secret.encode(), headers, body.replace(b"opened", b"closed"), time.time())
    assert not verify(secret.encode(), headers, body, time.time() + 3600)  # a replay, later


def test_production_refuses_a_webhook_without_a_good_secret() -> None:
    db = "postgresql://ioc:Long-and-Strong-db-pass-1@db.example/ioc"
    hooks = {"ops": "https://ops.example/hook"}
    for secrets, why in (({}, "is not set"), ({"ops": "secret"}, "is an example value")):
        s = Settings.defaults(mode="production", database_url=db,
                              alert={"webhooks": hooks, "webhook_secrets": secrets})  # fmt: skip
        with pytest.raises(SettingError, match=f"webhook 'ops' {why}"):
            alert_config(s)
    good = {"webhooks": hooks, "webhook_secrets": {"ops": "a-long-webhook-secret-0123"}}
    config = alert_config(Settings.defaults(mode="production", database_url=db, alert=good))
    assert config.webhook_secrets == {"ops": "a-long-webhook-secret-0123"}
    with pytest.raises(SettingError, match="IOC_ALERT_WEBHOOK_SECRETS"):
        alert_config(Settings.defaults(alert={"webhook_secrets": {"nobody": "x" * 20}}))


def test_production_refuses_a_plain_http_webhook_unless_allowed() -> None:
    db = "postgresql://ioc:Long-and-Strong-db-pass-1@db.example/ioc"
    plain = {"webhooks": {"ops": "http://10.0.0.5/hook"},
             "webhook_secrets": {"ops": "a-long-webhook-secret-0123"}}  # fmt: skip
    with pytest.raises(SettingError, match="ops is plain http://"):
        alert_config(Settings.defaults(mode="production", database_url=db, alert=plain))
    allowed = alert_config(
        Settings.defaults(
            mode="production", database_url=db, alert={**plain, "allow_http_webhooks": True}
        )
    )
    assert allowed.webhooks == {"ops": "http://10.0.0.5/hook"}
    # Development keeps plain http (a receiver on the same laptop).
    development = Settings.defaults(database_url=db, alert=plain)
    assert alert_config(development).webhooks == plain["webhooks"]
