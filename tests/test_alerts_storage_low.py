"""camera_storage_low: the rule as shipped (threshold and hysteresis), then end to end: a camera's
reading through the broker and the ingester opens the alert, and a freed card resolves it."""

from __future__ import annotations

from typing import Any

from devices.kinds import Kind
from processing.alerts.rules import Severity, Source, load_rules
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.polling import wait_until

RULE = "camera_storage_low"


def test_the_rule_fires_below_ten_percent_and_clears_at_fifteen() -> None:
    rule = load_rules().by_name(RULE)
    assert rule.source is Source.TELEMETRY and rule.severity is Severity.MINOR
    assert rule.raised({"storage_free_pct": 8.0}) is True
    assert rule.raised({"storage_free_pct": 12.0}) is None  # hysteresis: neither fires nor clears
    assert rule.raised({"storage_free_pct": 15.0}) is False
    assert rule.raised({}) is None  # a reading without the metric says nothing


def _raised(engine: Any, key: tuple[str, str], value: bool) -> bool:
    tracker = engine.trackers.get(key)
    return tracker is not None and tracker.raised is value


async def test_a_filling_card_opens_the_alert_and_a_freed_one_resolves_it(
    world: AlertWorld,
) -> None:
    camera = scenario_devices(Kind.CAMERA)[0]
    key = (RULE, camera.device_id)
    healthy = {"online": True, "recording": True, "tamper": False}
    query = "SELECT state, summary, summary_vi FROM alerts WHERE rule = %s AND subject = %s"
    async with world.field() as field, world.engine() as engine:
        await field.birth(camera)
        await field.reading(camera, **healthy, storage_free_pct=6.4)
        await wait_until(lambda: _raised(engine, key, True))
        world.clock.advance(61)  # for_s
        await ticks(engine, 5)
        [(state, summary, summary_vi)] = rows(world.database_url, query, *key)
        assert state == "open"
        assert "storage 6 % free" in summary and "còn trống 6 %" in summary_vi
        # Inside the band (10-15 %) it stays open; at 15 % it clears, after keep_firing_s.
        await field.reading(camera, **healthy, storage_free_pct=12.0)
        await wait_until(lambda: _seen(engine, key, 12.0))
        assert _raised(engine, key, True)
        await field.reading(camera, **healthy, storage_free_pct=80.0)
        await wait_until(lambda: _raised(engine, key, False))
        world.clock.advance(121)
        await ticks(engine, 5)
    assert [r[0] for r in rows(world.database_url, query, *key)] == ["resolved"]


def _seen(engine: Any, key: tuple[str, str], free_pct: float) -> bool:
    tracker = engine.trackers.get(key)
    return tracker is not None and tracker.facts.get("storage_free_pct") == free_pct
