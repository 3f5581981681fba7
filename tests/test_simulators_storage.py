"""A scenario can fill a camera's recorder (storage_low) and empty it (storage_cleared): the
camera's next readings carry the level, camera_storage_low fires on them and clears after."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.kinds import Kind
from processing.alerts.rules import load_rules
from simulators.events import EVENTS, Context
from simulators.model import DeviceModel
from simulators.scenarios import ScenarioError, load_plan
from tests.support.simulated import make

HEAD = "name: storage\nfleet:\n  districts: [Quy Nhơn]\nevents:\n"
DAY = datetime(2026, 11, 24, tzinfo=UTC)


def test_a_scenario_fills_and_empties_a_cameras_recorder(tmp_path: Path) -> None:
    path = tmp_path / "storage.yaml"
    path.write_text(
        HEAD + "  - at: 10m\n    event: storage_low\n    device: CAM-0001\n    free_pct: 4\n"
        "  - at: 1h\n    event: storage_cleared\n    device: CAM-0001\n",
        encoding="utf-8",
    )
    full, cleared = load_plan(path).actions
    assert (full.event, full.params, full.device_ids) == ("storage_low", {"free_pct": 4.0},
                                                          ("CAM-0001",))  # fmt: skip
    assert cleared.params == {"free_pct": 95.0}  # the documented default
    model = DeviceModel(make(Kind.CAMERA, "CAM-0001"))
    rule = load_rules().by_name("camera_storage_low")
    context = Context(speed=1.0, rng=random.Random(1))
    before = model.values.reading(DAY)
    assert rule.raised(before) is False  # 40-90 % free when it starts
    EVENTS[full.event].effect(model, full.params, context)
    low = model.values.reading(DAY + timedelta(minutes=1))
    assert 3.9 < low["storage_free_pct"] <= 4.0 and low["recording"] is True
    assert rule.raised(low) is True
    EVENTS[cleared.event].effect(model, cleared.params, context)
    back = model.values.reading(DAY + timedelta(minutes=2))
    assert back["storage_free_pct"] > 94 and rule.raised(back) is False


def test_a_level_outside_0_100_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        HEAD + "  - at: 10m\n    event: storage_low\n    device: CAM-0001\n    free_pct: 140\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match="not a percentage"):
        load_plan(path)
