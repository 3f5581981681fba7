"""Alert rules, conditions and the lifecycle state machine, without services (time is a value)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.topics import Topics
from processing.alerts.conditions import ConditionError, Unknown, compile_condition
from processing.alerts.grouping import group_facts
from processing.alerts.lifecycle import Act, Tracker
from processing.alerts.rules import RulesError, Severity, Source, load_rules

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_conditions_evaluate_facts_and_say_nothing_when_a_fact_is_missing() -> None:
    c = compile_condition(
        "power_source == 'battery' and battery_pct < 30", {"power_source", "battery_pct"}
    )
    assert c({"power_source": "battery", "battery_pct": 20})
    assert not c({"power_source": "mains", "battery_pct": 20})
    with pytest.raises(Unknown):
        c({"power_source": "battery"})
    sectors = compile_condition("not all(sectors_up)", {"sectors_up"})
    assert sectors({"sectors_up": [True, False, True]})
    assert not sectors({"sectors_up": [True, True]})
    either = compile_condition("a or b", {"a", "b"})
    assert either({"a": True})  # one side holding is enough, even if the other is unknown


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",  # calls outside the whitelist
        "battery_pct.__class__",  # attribute access
        "[x for x in sectors_up]",  # comprehensions
        "voltage < 3",  # a name the source does not have
        "battery_pct <",  # not an expression
    ],
)
def test_conditions_refuse_anything_outside_the_small_language(source: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(source, {"battery_pct", "sectors_up"})


def test_shipped_rules_cover_the_issue_and_make_valid_topics() -> None:
    rules = load_rules()
    names = {r.name for r in rules.rules}
    assert {
        "coverage_lost", "coverage_degraded", "district_power_cut", "bts_offline",
        "bts_battery_low", "bts_sector_down", "bts_backhaul_down", "camera_offline",
        "camera_tamper", "camera_not_recording", "broadband_uplink_down", "broadband_optical_low",
    } <= names  # fmt: skip
    for rule in rules.rules:
        assert rule.en and rule.vi
        Topics().alert(rule.severity.value, rule.name, "BTS-VTL-0001")
    lost = rules.by_name("coverage_lost")
    assert lost.severity_for({"population": 1500}) is Severity.CRITICAL
    assert lost.severity_for({"population": 300}) is Severity.MAJOR
    battery = rules.by_name("bts_battery_low")
    assert battery.raised({"power_source": "battery", "battery_pct": 25}) is True
    assert battery.raised({"power_source": "battery", "battery_pct": 35}) is None  # hysteresis
    assert battery.raised({"power_source": "mains", "battery_pct": 35}) is False


def test_an_override_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "[defaults]\ncritical_population = 50\n"
        '[[rules]]\nname = "bts_offline"\nfor_s = 5\n'
        '[[rules]]\nname = "camera_tamper"\nenabled = false\n'
    )
    rules = load_rules(path)
    offline = rules.by_name("bts_offline")
    assert offline.for_s == 5 and offline.severity is Severity.MAJOR
    assert "camera_tamper" not in {r.name for r in rules.rules}
    assert rules.by_name("coverage_lost").severity_for({"population": 60}) is Severity.CRITICAL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\nname = "bts_offline"\nwhen = "voltage < 3"\n', "rule 'bts_offline': when"),
        ('[[rules]]\nname = "bts_offline"\nseverity = "urgent"\n', "'urgent' is not a valid"),
        ('[[rules]]\nname = "bts_offline"\nfor_s = -1\n', "for_s must be a number"),
        ('[[rules]]\nname = "new_rule"\nsource = "status"\n', "rule 'new_rule': en is missing"),
        ('[[rules]]\nname = "a/b"\n', "topic level"),
        ("[rules\n", "not valid TOML"),
    ],
)
def test_a_bad_override_names_the_file_rule_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="IOC_ALERT_RULES: no rules file"):
        load_rules(tmp_path / "nope.toml")


def _offline(rule_name: str = "bts_offline") -> Tracker:
    return Tracker(load_rules().by_name(rule_name), "BTS-VTL-0001")


def test_for_duration_then_hysteresis_then_one_resolution() -> None:
    t = _offline()  # for_s 60, keep_firing_s 30
    t.observe(True, {"state": "offline"}, at(0))
    assert t.step(at(59), "s") == []
    [opened] = t.step(at(60), "s")
    assert opened.act is Act.OPEN and opened.severity is Severity.MAJOR
    t.alert_id = 1
    t.observe(False, {"state": "online"}, at(70))
    assert t.step(at(99), "s") == []  # clear must hold keep_firing_s
    t.observe(True, {"state": "offline"}, at(99))
    t.observe(False, {"state": "online"}, at(100))
    assert t.step(at(129), "s") == []  # the blip restarted the hold
    [resolved] = t.step(at(130), "s")
    assert resolved.act is Act.RESOLVE
    t.alert_id = None
    assert t.step(at(500), "s") == []


def test_a_short_blip_never_opens_an_alert() -> None:
    t = _offline()
    t.observe(True, {"state": "offline"}, at(0))
    t.observe(False, {"state": "online"}, at(20))
    assert all(t.step(at(s), "s") == [] for s in (30, 61, 120))


def test_flapping_is_one_alert_and_one_notice_then_resolves_once_when_stable() -> None:
    t = _offline()
    acts: list[Act] = []
    for i in range(20):  # offline/online every 3 s for a minute
        t.observe(i % 2 == 0, {}, at(3 * i))
        for action in t.step(at(3 * i), "s"):
            acts.append(action.act)
            if action.act is Act.OPEN:
                t.alert_id = 7
    assert acts == [Act.OPEN, Act.FLAPPING]
    assert t.flapping
    assert t.step(at(57 + 299), "s") == []  # the last change was at 57 s: still quiet period
    [done] = t.step(at(57 + 300), "s")
    assert done.act is Act.RESOLVE and done.comment == "stable after flapping"


def test_an_operator_resolution_holds_until_the_condition_clears() -> None:
    t = _offline()
    t.observe(True, {}, at(0))
    t.step(at(60), "s")
    t.alert_id = None
    t.closed_by_operator = True  # resolved by hand while still offline
    assert t.step(at(200), "s") == []
    t.observe(False, {}, at(300))
    t.observe(True, {}, at(400))
    assert [a.act for a in t.step(at(460), "s")] == [Act.OPEN]


def test_event_alerts_update_when_what_they_say_changes_at_most_so_often() -> None:
    t = Tracker(load_rules().by_name("coverage_lost"), "21790-08")
    t.observe(True, {"kind": "lost", "towers": ["A"]}, at(0))
    [opened] = t.step(at(0), "towers A")
    t.alert_id = 3
    t.sent("towers A", at(0))
    assert t.step(at(5), "towers A") == []
    assert t.step(at(10), "towers A, B") == []  # update_min_s 30
    [update] = t.step(at(31), "towers A, B")
    assert opened.act is Act.OPEN and update.act is Act.UPDATE


def test_group_facts_count_recent_members_per_district() -> None:
    rule = load_rules().by_name("district_power_cut")
    members = []
    for i in range(6):
        t = Tracker(load_rules().by_name("bts_offline"), f"BTS-{i}")
        t.observe(True, {}, at(i * 10 if i < 5 else -1000))
        members.append(t)
    facts = group_facts(rule, members, lambda t: 551, lambda d: 20, at(60))
    assert facts[551]["offline"] == 6 and facts[551]["recent"] == 5
    assert rule.raised(facts[551]) is True  # 5 recent, 25 % of 20
    assert rule.source is Source.GROUP
    few = group_facts(rule, members[:2], lambda t: 551, lambda d: 20, at(60))
    assert rule.raised(few[551]) is False
