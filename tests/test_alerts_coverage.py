"""Coverage alerts end to end: a tower's will → the coverage service's village events → one
coverage-lost alert per stranded village on MQTT, told at a webhook (alone: one alert is fewer
than an incident's min_alerts), resolved once when the tower returns; then a district power
cut: one grouped alert plus the village alerts, none per tower.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from typing import Any

from devices.endpoint import MqttEndpoint
from devices.kinds import Kind
from ioc.configs import coverage_service_config
from processing.coverage.service import CoverageService
from processing.coverage.serving import Why
from simulators.clock import SimClock
from simulators.device import SimulatedDevice
from simulators.runner import run_plan
from simulators.scenarios import load_plan
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.polling import wait_until
from tests.support.simulated import SCENARIOS


def _alerts(url: str, rule: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT alert_id, subject, severity, state, summary, details FROM alerts"
                " WHERE rule = %s ORDER BY subject", rule)  # fmt: skip


def _lost_villages(url: str, after: int = 0) -> set[str]:
    return {r[0] for r in rows(url, "SELECT village_id FROM coverage_events WHERE kind = 'lost'"
                                    " AND id > %s", after)}  # fmt: skip


async def _state_is(url: str, device_id: str, state: str) -> bool:
    return rows(url, "SELECT state FROM devices WHERE device_id = %s", device_id) == [(state,)]


@contextlib.asynccontextmanager
async def _coverage(world: AlertWorld) -> AsyncIterator[CoverageService]:
    """The coverage service on the world's database and clock, ready (its picture built)."""
    config = coverage_service_config(database_url=world.database_url)
    coverage = CoverageService(config, clock=world.clock)
    coverage_task = asyncio.create_task(coverage.run())
    try:
        await asyncio.wait_for(coverage.ready.wait(), 240)
        yield coverage
    finally:
        coverage_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await coverage_task


async def test_coverage_loss_from_a_will_and_from_a_district_power_cut(
    world: AlertWorld,
) -> None:
    database_url, clock, topics = world.database_url, world.clock, world.topics
    hook, subscriber = world.hook, world.subscriber
    async with _coverage(world) as coverage:
        # The one tower whose loss alone leaves a village without any signal (N-1 table). In
        # the scenario it strands that village and costs nothing else: one alert, fewer than
        # an incident's min_alerts, so it is told alone (incidents: the power cut below).
        stranding = rows(
            database_url,
            "SELECT device_id FROM critical_towers"
            " WHERE villages_all = 1 ORDER BY population_all DESC LIMIT 1",
        )
        assert stranding, "the scenario has a tower whose loss strands a village"
        victim = next(d for d in scenario_devices(Kind.BTS) if d.device_id == stranding[0][0])
        endpoint = MqttEndpoint.parse(world.mqtt_url, protocol=world.protocol)
        async with world.listening(), world.engine(ops_hook=True) as engine:
            # speed 1: its birth record matches the registry, so no full recompute.
            tower = SimulatedDevice(victim, endpoint, topics=topics, clock=SimClock(speed=1))
            tower.start()
            await wait_until(partial(_state_is, database_url, victim.device_id, "online"))
            await tower.kill()

            async def lost_told() -> bool:
                return ("coverage_lost", "opened") in subscriber.events()

            await wait_until(lost_told, timeout_s=60)
            await ticks(engine, 5)
            clock.advance(31)  # group_wait_s: what would gather into an incident, then is told
            await ticks(engine, 5)

            async def told() -> bool:
                return any(p["rule"] == "coverage_lost" for p in hook.received)

            await wait_until(told, timeout_s=60)
            [village] = _lost_villages(database_url)
            [(alert_id, subject, severity, state, summary, details)] = _alerts(
                database_url, "coverage_lost"
            )
            name, population = rows(
                database_url, "SELECT name, population FROM villages WHERE village_id = %s",
                village,
            )[0]  # fmt: skip
            assert (subject, state) == (village, "open")
            assert severity == ("critical" if population > 1000 else "major")
            assert name in summary and f"{population:,}" in summary
            assert victim.meta["operator"] in details["operators_lost"]
            assert victim.device_id in details["towers"]
            [said] = hook.received
            assert said["rule"] == "coverage_lost"
            assert name in said["summary"] and f"{population:,}" in said["summary"]
            assert rows(database_url, "SELECT count(*) FROM incidents") == [(0,)]

            back = SimulatedDevice(victim, endpoint, topics=topics, clock=SimClock(speed=1))
            back.start()
            await wait_until(partial(_state_is, database_url, victim.device_id, "online"))

            async def restored() -> bool:
                t = engine.trackers.get(("coverage_lost", village))
                return t is not None and not t.raised

            await wait_until(restored, timeout_s=60)
            clock.advance(31)  # keep_firing_s; less than bts_offline's 60 s
            await ticks(engine, 10)
            # The webhook hears of the village, opened and resolved; the tower is no alert.
            await wait_until(lambda: len(hook.received) >= 2)
            assert hook.events() == [(alert_id, "opened"), (alert_id, "resolved")]
            assert [e for e in subscriber.events() if e[0] == "coverage_lost"] == [
                ("coverage_lost", "opened"), ("coverage_lost", "resolved"),
            ]  # fmt: skip
            assert _alerts(database_url, "bts_offline") == []

            await _power_cut(engine, coverage, world)
        await back.stop()


async def _power_cut(engine: Any, coverage: Any, world: AlertWorld) -> None:
    """All of Vân Canh's towers go off within a minute."""
    url, clock = world.database_url, world.clock
    towers = scenario_devices(Kind.BTS, district=551)
    before = rows(url, "SELECT coalesce(max(id), 0) FROM coverage_events")[0][0]
    async with world.field() as field:
        for t in towers:
            await field.birth(t)  # the registry's own record: no rebuild
            await field.status(t, "online")
        for t in towers:
            await wait_until(partial(_state_is, url, t.device_id, "online"))
        for i, t in enumerate(towers):
            await field.status(t, "offline", "will")
            if i % 10 == 9:
                clock.advance(10)
        for t in towers:
            await wait_until(partial(_state_is, url, t.device_id, "offline"))

    async def coverage_caught_up() -> bool:  # its events for every tower's loss are stored
        return all(coverage.verdicts[t.device_id].why is Why.OFFLINE for t in towers)

    await wait_until(coverage_caught_up, timeout_s=30)
    lost = set()

    async def villages_alerted() -> bool:
        nonlocal lost
        lost = _lost_villages(url, before)
        alerted = {a[1] for a in _alerts(url, "coverage_lost") if a[3] == "open"}
        return bool(lost) and alerted == lost

    await wait_until(villages_alerted, timeout_s=60)
    clock.advance(61)  # past bts_offline's for_s: still held by the group
    await ticks(engine, 10)
    groups = _alerts(url, "district_power_cut")
    assert [(g[1], g[2], g[3]) for g in groups] == [("551", "critical", "open")]
    assert groups[0][5]["offline"] == len(towers) == len(groups[0][5]["members"])
    assert _alerts(url, "bts_offline") == []  # not one per tower
    open_lost = [a for a in _alerts(url, "coverage_lost") if a[3] == "open"]
    assert len(open_lost) == len(lost)  # one per village, and every village


async def test_the_mountain_fibre_cut_scenario_raises_village_coverage_alerts(
    world: AlertWorld,
) -> None:
    """The shipped scenario's fibre cut, played by its own fleet: the towers behind Vĩnh
    Thạnh's broadband nodes stop serving, and the villages that hung on them alone are alerted
    by name and population (the first wave raised only backhaul and OLT alerts)."""
    database_url, topics = world.database_url, world.topics
    plan = load_plan(SCENARIOS / "mountain_fibre_cut.yaml")
    speed = 180.0  # the cut comes 10 s after the fleet has connected: every tower heard from
    cut = next(a for a in plan.actions if a.event == "fibre_cut")
    plan = replace(plan, actions=(cut,), interval_s=2 * speed, duration_s=24 * 3600.0)
    behind = set(cut.device_ids)
    stop = asyncio.Event()
    try:
        async with _coverage(world) as coverage, world.listening(), world.engine():
            endpoint = MqttEndpoint.parse(world.mqtt_url, protocol=world.protocol)
            played = asyncio.create_task(run_plan(plan, endpoint, topics=topics, speed=speed,
                                                  only_involved=True, stop_event=stop))  # fmt: skip

            async def cut_taken() -> bool:  # every tower behind the cut judged, events stored
                judged = [v.why for d, v in coverage.verdicts.items() if d in behind]
                cut = {Why.BACKHAUL_DOWN, Why.UPLINK_DOWN}
                return bool(judged) and all(why in cut for why in judged)

            await wait_until(cut_taken, timeout_s=90)

            async def alerted() -> bool:
                lost = _lost_villages(database_url)
                open_ = {a[1] for a in _alerts(database_url, "coverage_lost") if a[3] == "open"}
                return bool(lost) and open_ == lost

            await wait_until(alerted, timeout_s=90)
            stop.set()
            await asyncio.wait_for(played, 60)
        events = rows(database_url, "SELECT village_id, towers, population FROM coverage_events"
                      " WHERE kind = 'lost'")  # fmt: skip
        assert all(towers and set(towers) <= behind for _, towers, _ in events), events
        for _, subject, _, _, summary, details in _alerts(database_url, "coverage_lost"):
            name, population, district = rows(
                database_url, "SELECT v.name, v.population, d.name FROM villages v"
                " JOIN districts d ON d.code = v.district_code WHERE v.village_id = %s", subject,
            )[0]  # fmt: skip
            assert name in summary and f"{population:,}" in summary and district in summary
            assert set(details["towers"]) <= behind
        print(f"fibre cut: {len(events)} villages lost, "
              f"{sum(p for *_, p in events)} people")  # fmt: skip
    finally:
        stop.set()
