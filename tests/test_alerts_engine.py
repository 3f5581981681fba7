"""The alert engine end to end: real broker, real ingester, real database, injected time.

Devices (simulated, or their messages published as a device would) → broker → ingester →
status_events / telemetry → engine → alerts, transitions → outbox → MQTT topic and webhook.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from devices.endpoint import MqttEndpoint
from devices.kinds import Kind
from simulators.clock import SimClock
from simulators.device import SimulatedDevice
from store.alerts import (
    AlertFilter,
    SilenceRequest,
    acknowledge,
    end_silence,
    list_alerts,
    resolve,
    silence,
    transitions,
)
from store.db import connect
from store.scope import NATIONAL
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.polling import wait_until


def _alerts(url: str, rule: str | None = None) -> list[tuple[Any, ...]]:
    sql = "SELECT alert_id, rule, subject, severity, state, summary FROM alerts"
    if rule:
        return rows(url, sql + " WHERE rule = %s ORDER BY alert_id", rule)
    return rows(url, sql + " ORDER BY alert_id")


async def test_a_towers_will_opens_one_alert_delivered_on_mqtt_and_webhook_and_resolves_once(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    tower = scenario_devices(Kind.BTS, district=551)[0]
    hook, subscriber, topics = world.hook, world.subscriber, world.topics
    endpoint = MqttEndpoint.parse(world.mqtt_url, protocol=world.protocol)

    def device() -> SimulatedDevice:
        return SimulatedDevice(tower, endpoint, topics=topics, clock=SimClock(speed=60))

    async def state_is(state: str) -> bool:
        got = rows(database_url, "SELECT state FROM devices WHERE device_id = %s", tower.device_id)
        return got == [(state,)]

    async with world.listening(), world.engine(ops_hook=True) as engine:
        first = device()
        first.start()
        await wait_until(lambda: state_is("online"), timeout_s=30)
        await first.kill()  # no DISCONNECT: the broker publishes the will
        await wait_until(lambda: state_is("offline"), timeout_s=30)
        key = ("bts_offline", tower.device_id)

        async def raised() -> bool:
            t = engine.trackers.get(key)
            return t is not None and t.raised

        await wait_until(raised)
        await ticks(engine)
        assert _alerts(database_url) == []  # for_s (60 s) has not passed
        clock.advance(61)

        async def delivered(n: int) -> bool:
            return len(hook.received) >= n and len(subscriber.events()) >= n

        await wait_until(lambda: delivered(1))
        [(alert_id, _, subject, severity, state, summary)] = _alerts(database_url)
        assert (subject, severity, state) == (tower.device_id, "major", "open")
        assert tower.meta["name"] in summary and "will" in summary and "Vân Canh" in summary
        topic, payload, _ = subscriber.messages[0]
        assert topic == topics.alert("major", "bts_offline", tower.device_id)
        assert payload is not None and payload["event"] == "opened"
        retained = await world.retained()
        assert [(t, p["state"]) for t, p in retained.items()] == [(topic, "open")]
        assert hook.received[0]["alert_id"] == alert_id
        assert hook.received[0]["details"]["operator"] == tower.meta["operator"]

        second = device()  # the tower comes back
        second.start()
        await wait_until(lambda: state_is("online"), timeout_s=30)
        await wait_until(lambda: raised_is(engine, key, False))
        clock.advance(31)  # keep_firing_s
        await wait_until(lambda: delivered(2))
        clock.advance(600)
        await ticks(engine, 10)
        await second.stop()
    assert hook.events() == [(alert_id, "opened"), (alert_id, "resolved")]
    assert subscriber.events() == [("bts_offline", "opened"), ("bts_offline", "resolved")]
    assert subscriber.messages[-1][1] is None  # the retained copy was cleared
    assert await world.retained() == {}
    assert [a[4] for a in _alerts(database_url)] == ["resolved"]


def is_raised(engine: Any, key: tuple[str, str], value: bool) -> bool:
    t = engine.trackers.get(key)
    return t is not None and t.raised is value


async def raised_is(engine: Any, key: tuple[str, str], value: bool) -> bool:
    return is_raised(engine, key, value)


async def test_a_flapping_tower_gives_one_alert_and_one_flapping_notice(world: AlertWorld) -> None:
    database_url, clock = world.database_url, world.clock
    tower = scenario_devices(Kind.BTS, district=546)[0]
    hook = world.hook
    async with world.field() as field, world.engine(ops_hook=True) as engine:
        await field.birth(tower)
        key = ("bts_offline", tower.device_id)
        for i in range(12):  # offline/online every 3 s for 36 s
            state = "offline" if i % 2 == 0 else "online"
            await field.status(tower, state)
            await wait_until(partial(raised_is, engine, key, state == "offline"))
            clock.advance(3)
        await ticks(engine)

        async def told(n: int) -> bool:
            return len(hook.received) >= n

        await wait_until(lambda: told(2))
        [(alert_id, *_)] = _alerts(database_url)
        with connect(database_url) as conn:
            assert [t.event for t in transitions(conn, alert_id, scope=NATIONAL)] == [
                "opened",
                "flapping",
            ]
            [alert] = list_alerts(conn, scope=NATIONAL)
            assert alert.flapping
        clock.advance(296)  # the last change was 3 s ago: 299 s of the 300 s quiet period
        await ticks(engine)
        assert len(hook.received) == 2
        clock.advance(2)
        await wait_until(lambda: told(3))
        clock.advance(900)
        await ticks(engine, 10)
    assert hook.events() == [(alert_id, "opened"), (alert_id, "flapping"), (alert_id, "resolved")]
    assert len(_alerts(database_url)) == 1


async def test_a_district_power_cut_is_one_grouped_alert_not_one_per_tower(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    towers = scenario_devices(Kind.BTS, district=551)  # Vân Canh: 43 towers
    async with world.field() as field, world.engine() as engine:
        for t in towers:
            await field.birth(t)
            await field.status(t, "online")

        async def all_online() -> bool:
            got = rows(database_url, "SELECT count(*) FROM devices WHERE district_code = 551"
                       " AND kind = 'bts' AND state = 'online'")  # fmt: skip
            return got == [(len(towers),)]

        await wait_until(all_online)
        for i, t in enumerate(towers):  # all of them within 43 s
            await field.status(t, "offline", "will")
            if i % 4 == 3:
                await wait_until(partial(raised_is, engine, ("bts_offline", t.device_id), True))
                clock.advance(4)
        await wait_until(lambda: raised_is(engine, ("bts_offline", towers[-1].device_id), True))
        clock.advance(61)  # every tower is past bts_offline's for_s
        await ticks(engine, 5)
        clock.advance(300)
        await ticks(engine, 5)
        opened = _alerts(database_url)
        assert [(a[1], a[2], a[3]) for a in opened] == [("district_power_cut", "551", "critical")]
        assert f"{len(towers)} of {len(towers)} towers offline" in opened[0][5]
        assert "Vân Canh" in opened[0][5]

        for t in towers:  # power is back
            await field.status(t, "online")
        await wait_until(
            lambda: raised_is(engine, ("district_power_cut", "551"), False), timeout_s=30
        )
        clock.advance(61)
        await ticks(engine, 5)
    assert [(a[1], a[4]) for a in _alerts(database_url)] == [("district_power_cut", "resolved")]


async def test_telemetry_faults_name_what_matters_and_clear_with_hysteresis(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    bts = scenario_devices(Kind.BTS, district=540)[:3]
    camera = scenario_devices(Kind.CAMERA)[0]
    olt = next(d for d in scenario_devices(Kind.BROADBAND) if len(d.meta["communes_served"]) > 1)
    healthy_bts = {"power_source": "mains", "battery_pct": 100.0, "sectors_up": [True] * 3,
                   "backhaul_up": True}  # fmt: skip
    async with world.field() as field, world.engine() as engine:
        for d in [*bts, camera, olt]:
            await field.birth(d)
        await field.reading(bts[0], **{**healthy_bts, "power_source": "battery",
                                       "battery_pct": 22.0})  # fmt: skip
        await field.reading(bts[1], **{**healthy_bts, "sectors_up": [True, False, True]})
        await field.reading(bts[2], **{**healthy_bts, "backhaul_up": False})
        await field.reading(camera, online=True, recording=False, tamper=True)
        await field.reading(olt, uplink_up=False, optical_rx_dbm=-50.0)
        expected = {
            ("bts_battery_low", bts[0].device_id), ("bts_sector_down", bts[1].device_id),
            ("bts_backhaul_down", bts[2].device_id), ("camera_tamper", camera.device_id),
            ("camera_not_recording", camera.device_id),
            ("broadband_uplink_down", olt.device_id),
        }  # fmt: skip

        async def all_raised() -> bool:
            return all(is_raised(engine, k, True) for k in expected)

        await wait_until(all_raised)
        clock.advance(121)
        await ticks(engine, 5)
        got = {(a[1], a[2]): a for a in _alerts(database_url)}
        assert set(got) == expected
        assert "22 %" in got[("bts_battery_low", bts[0].device_id)][5]
        assert "sectors down 2" in got[("bts_sector_down", bts[1].device_id)][5]
        olt_summary = got[("broadband_uplink_down", olt.device_id)][5]
        assert str(olt.meta["households_passed"]) in olt_summary
        communes = rows(database_url, "SELECT name FROM communes WHERE code = ANY(%s)",
                        olt.meta["communes_served"])  # fmt: skip
        assert communes and all(name in olt_summary for (name,) in communes)

        # Inside the hysteresis band nothing clears; a healthy reading then does, after a hold.
        await field.reading(bts[0], **{**healthy_bts, "power_source": "battery",
                                       "battery_pct": 35.0})  # fmt: skip
        await wait_until(lambda: _seen(engine, bts[0].device_id, "battery_pct", 35.0))
        assert is_raised(engine, ("bts_battery_low", bts[0].device_id), True)
        for d in bts:
            await field.reading(d, **healthy_bts)
        await field.reading(camera, online=True, recording=True, tamper=False)
        await field.reading(olt, uplink_up=True, optical_rx_dbm=-20.0)

        async def all_clear() -> bool:
            return all(is_raised(engine, k, False) for k in expected)

        await wait_until(all_clear)
        clock.advance(121)
        await ticks(engine, 5)
    assert {a[4] for a in _alerts(database_url)} == {"resolved"}
    assert len(_alerts(database_url)) == len(expected)


async def _seen(engine: Any, device_id: str, name: str, value: Any) -> bool:
    return any(
        t.subject == device_id and t.facts.get(name) == value for t in engine.trackers.values()
    )


async def test_silence_hides_news_until_it_ends_and_operators_ack_and_resolve(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    cameras = scenario_devices(Kind.CAMERA)[:2]
    hook = world.hook
    with connect(database_url) as conn:
        quiet = silence(conn, SilenceRequest("camera_tamper", cameras[0].device_id,
                                             clock() + timedelta(hours=2), "planner",
                                             "lens cleaning", clock()))  # fmt: skip
    async with world.field() as field, world.engine(ops_hook=True) as engine:
        await field.tampered(*cameras)

        async def told(n: int) -> bool:
            return len(hook.received) >= n

        await wait_until(lambda: told(1))  # the second camera's alert
        await ticks(engine, 5)
        assert [p["subject"] for p in hook.received] == [cameras[1].device_id]
        by_subject = {a[2]: a[0] for a in _alerts(database_url)}
        with connect(database_url) as conn:
            hidden = [
                t for t in transitions(conn, by_subject[cameras[0].device_id], scope=NATIONAL)
            ]
            assert [(t.event, t.suppressed) for t in hidden] == [("opened", True)]
            acknowledge(conn, by_subject[cameras[1].device_id], "lan", "on my way",
                        now=clock())  # fmt: skip
            end_silence(conn, quiet.silence_id, now=clock())
        clock.advance(1)
        await wait_until(lambda: told(3))
        with connect(database_url) as conn:
            resolve(conn, by_subject[cameras[1].device_id], "lan", "lens wiped",
                    now=clock())  # fmt: skip
        await wait_until(lambda: told(4))
        clock.advance(600)  # still tampered: a hand-resolved alert waits for a clear
        await ticks(engine, 10)
    events = sorted((p["subject"], p["event"], p.get("actor")) for p in hook.received)
    assert events == sorted([
        (cameras[1].device_id, "opened", "engine"),
        (cameras[1].device_id, "acknowledged", "lan"),
        (cameras[0].device_id, "unsilenced", "engine"),
        (cameras[1].device_id, "resolved", "lan"),
    ])  # fmt: skip
    with connect(database_url) as conn:
        still_open = list_alerts(conn, AlertFilter(states=("open", "acknowledged")), scope=NATIONAL)
    assert [a.subject for a in still_open] == [cameras[0].device_id]


async def test_the_engine_restarted_keeps_open_alerts_and_does_not_duplicate_them(
    world: AlertWorld,
) -> None:
    database_url, clock = world.database_url, world.clock
    camera = scenario_devices(Kind.CAMERA)[0]
    async with world.field() as field:
        await field.tampered(camera)
        async with world.engine() as engine:

            async def opened() -> bool:
                return len(_alerts(database_url)) == 1

            await wait_until(opened)
        for _ in range(2):  # restarted twice, the tamper still there
            async with world.engine() as engine:
                await field.reading(camera, online=True, recording=True, tamper=True)
                await wait_until(lambda: _seen(engine, camera.device_id, "tamper", True))
                clock.advance(60)
                await ticks(engine, 5)
        assert [a[4] for a in _alerts(database_url)] == ["open"]
        async with world.engine() as engine:
            await field.reading(camera, online=True, recording=True, tamper=False)
            await wait_until(lambda: raised_is(engine, ("camera_tamper", camera.device_id), False))
            clock.advance(121)
            await ticks(engine, 5)
    assert [a[4] for a in _alerts(database_url)] == ["resolved"]
