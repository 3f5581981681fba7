"""The engine's decide step in memory: no database, no broker, no clock but the one given.

Inputs are built by hand as the gather step would read them; the shipped rules decide. What a
write would record (the id of an opened alert) is recorded by ``_written`` below.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.kinds import Kind
from processing.alerts.decide import Decision, EngineState, Write, adopt, decide
from processing.alerts.facts import Directory
from processing.alerts.inputs import Intake, Startup
from processing.alerts.lifecycle import Act
from processing.alerts.rules import RuleSet, Severity, load_rules
from store.alert_engine import (
    INBOX_CHANNEL,
    CommuneInfo,
    CoverageEvent,
    DeviceInfo,
    LatestReading,
    StatusChange,
    SubjectDirectory,
    UnresolvedAlert,
    VillageInfo,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
VAN_CANH, AN_NHON = 551, 540
TOWERS = [f"bts-vc-{i}" for i in range(6)]  # every tower of Vân Canh


def _directory() -> Directory:
    devices = {
        d: DeviceInfo(d, "bts", f"Tower {d}", "Viettel", VAN_CANH, 55101, None, []) for d in TOWERS
    }
    devices["bts-an-0"] = DeviceInfo(
        "bts-an-0", "bts", "An Nhơn 0", "VNPT", AN_NHON, 54001, None, []
    )
    return Directory(
        SubjectDirectory(
            devices=devices,
            districts={VAN_CANH: "Vân Canh", AN_NHON: "An Nhơn"},
            communes={
                55101: CommuneInfo(55101, "Canh Liên", VAN_CANH),
                54001: CommuneInfo(54001, "Nhơn Hậu", AN_NHON),
            },
            villages={
                "v-big": VillageInfo("v-big", "Làng Hà Giao", 55101, VAN_CANH, 1500),
                "v-small": VillageInfo("v-small", "Làng Kà Bưng", 55101, VAN_CANH, 300),
            },
        )
    )


class Engine:
    """decide, driven tick by tick as the engine would, with what write would record."""

    def __init__(self) -> None:
        self.rules: RuleSet = load_rules()
        self.directory = _directory()
        self.state = EngineState()
        self.ids = itertools.count(1)

    def tick(self, seconds: float, intake: Intake | None = None) -> Decision:
        decision = decide(
            intake or Intake(),
            self.rules,
            self.directory,
            self.state,
            T0 + timedelta(seconds=seconds),
        )
        for w in decision.writes:
            self._written(w, T0 + timedelta(seconds=seconds))
        return decision

    def _written(self, w: Write, now: datetime) -> None:
        t = w.tracker
        if w.act is Act.OPEN:
            t.alert_id = next(self.ids)
            t.sent(w.summary, now)
        elif w.act is Act.RESOLVE:
            t.alert_id = None
        elif w.act is Act.UPDATE:
            t.sent(w.summary, now)


def _status(device_id: str, state: str, seconds: float, reason: str = "will") -> StatusChange:
    return StatusChange(0, T0 + timedelta(seconds=seconds), device_id, state, reason)


def _acts(decision: Decision) -> list[tuple[Act, str, str]]:
    return [(w.act, w.tracker.rule.name, w.tracker.subject) for w in decision.writes]


def test_a_status_change_opens_an_alert_after_for_s_and_resolves_after_keep_firing_s() -> None:
    e = Engine()
    tower = TOWERS[0]
    raised = e.tick(0, Intake(status_changes=[_status(tower, "offline", 0)]))
    assert raised.writes == [] and raised.status_changes == 1
    assert e.state.trackers[("bts_offline", tower)].raised
    assert e.tick(59).writes == []  # bts_offline's for_s is 60 s
    [opened] = e.tick(61).writes
    assert (opened.act, opened.severity, opened.district_code) == (
        Act.OPEN,
        Severity.MAJOR,
        VAN_CANH,
    )
    assert opened.summary == f"Tower {tower} (Viettel, Canh Liên, Vân Canh) offline: will"
    assert opened.details["status_ts"] == T0.isoformat()  # details are JSON-ready
    assert opened.details["rule_en"] == "BTS offline"

    assert e.tick(70, Intake(status_changes=[_status(tower, "online", 70)])).writes == []
    assert e.tick(99).writes == []  # keep_firing_s is 30 s: hysteresis holds it open
    [resolved] = e.tick(101).writes
    assert (resolved.act, resolved.comment) == (Act.RESOLVE, "cleared")
    assert e.tick(102).writes == [] and e.state.trackers  # its changes count for flapping
    assert e.tick(371).writes == [] and e.state.trackers == {}  # then it is forgotten


def test_a_districts_towers_going_off_together_are_one_grouped_alert_holding_theirs() -> None:
    e = Engine()
    changes = [_status(t, "offline", i) for i, t in enumerate(TOWERS)]
    first = e.tick(6, Intake(status_changes=changes))
    assert _acts(first) == [(Act.OPEN, "district_power_cut", str(VAN_CANH))]
    assert first.writes[0].severity is Severity.CRITICAL
    assert first.writes[0].summary.startswith("Vân Canh: 6 of 6 towers offline (6 within 120 s)")
    later = e.tick(200)  # every tower past bts_offline's for_s: held by the group
    assert _acts(later) == [(Act.UPDATE, "district_power_cut", str(VAN_CANH))]
    assert "(0 within 120 s)" in later.writes[0].summary
    assert all(e.state.trackers[("bts_offline", t)].held for t in TOWERS)

    # A tower of another district is not held by Vân Canh's group.
    e.tick(201, Intake(status_changes=[_status("bts-an-0", "offline", 201)]))
    assert _acts(e.tick(262)) == [(Act.OPEN, "bts_offline", "bts-an-0")]

    back = [_status(t, "online", 300) for t in TOWERS]
    assert e.tick(300, Intake(status_changes=back)).writes == []
    assert _acts(e.tick(361)) == [(Act.RESOLVE, "district_power_cut", str(VAN_CANH))]


def test_a_group_opening_is_written_before_what_opens_with_it() -> None:
    e = Engine()
    e.tick(0, Intake(status_changes=[_status("bts-an-0", "offline", 0)]))
    changes = [_status(t, "offline", 61) for t in TOWERS]
    assert _acts(e.tick(61, Intake(status_changes=changes))) == [
        (Act.OPEN, "district_power_cut", str(VAN_CANH)),
        (Act.OPEN, "bts_offline", "bts-an-0"),
    ]


def test_a_few_towers_off_are_alerted_alone() -> None:
    e = Engine()
    e.tick(0, Intake(status_changes=[_status(t, "offline", 0) for t in TOWERS[:2]]))
    opened = e.tick(61)
    assert sorted(_acts(opened)) == [(Act.OPEN, "bts_offline", t) for t in TOWERS[:2]]


def _coverage(
    event_id: int, village: str, kind: str, lost: list[str], now: list[str], population: int | None
) -> CoverageEvent:
    return CoverageEvent(event_id, T0, village, kind, lost, now, ["bts-vc-0"], population)


# The event's population (people the coverage service counts affected) wins over the village's.
@pytest.mark.parametrize(
    ("village", "told", "population", "severity"),
    [
        ("v-big", 1500, 1500, Severity.CRITICAL),
        ("v-small", None, 300, Severity.MAJOR),
        ("v-big", 900, 900, Severity.MAJOR),
    ],
)
def test_a_coverage_loss_names_the_village_its_people_and_escalates_by_population(
    village: str, told: int | None, population: int, severity: Severity
) -> None:
    e = Engine()
    lost = _coverage(1, village, "lost", ["Viettel"], [], told)
    decision = e.tick(0, Intake(coverage_events=[lost]))
    [opened] = decision.writes
    assert (opened.act, opened.tracker.rule.name, opened.severity) == (
        Act.OPEN,
        "coverage_lost",
        severity,
    )
    name = e.directory.data.villages[village].name
    assert opened.summary == (
        f"{name} (Canh Liên, Vân Canh): no mobile signal for {population:,}"
        " people; lost Viettel after bts-vc-0 went down"
    )
    # Each language writes its own thousands separator, as the dashboard does.
    assert f" {population:,} người".replace(",", ".") in opened.summary_vi
    assert decision.coverage_events == 1 and e.state.missing == {village: {"Viettel"}}

    restored = _coverage(2, village, "restored", [], ["Viettel"], told)
    assert e.tick(10, Intake(coverage_events=[restored])).writes == []
    assert e.state.missing == {}
    assert _acts(e.tick(41)) == [(Act.RESOLVE, "coverage_lost", village)]


def test_an_operator_lost_while_others_serve_is_degraded_until_it_is_back() -> None:
    e = Engine()
    one = _coverage(1, "v-big", "degraded", ["Viettel"], ["VNPT"], None)
    [opened] = e.tick(0, Intake(coverage_events=[one])).writes
    assert (opened.tracker.rule.name, opened.severity) == ("coverage_degraded", Severity.MINOR)
    assert "lost Viettel, still served by VNPT" in opened.summary
    assert "1,500" not in opened.summary  # the directory's population, not re-stated here
    two = _coverage(2, "v-big", "degraded", ["MobiFone"], ["VNPT"], None)
    assert e.tick(40, Intake(coverage_events=[two])).writes[0].act is Act.UPDATE
    assert opened.tracker.facts["operators_missing"] == ["MobiFone", "Viettel"]


def test_readings_raise_telemetry_alerts_and_a_late_older_reading_says_nothing() -> None:
    e = Engine()
    tower = TOWERS[1]
    healthy = {
        "power_source": "mains",
        "battery_pct": 100.0,
        "sectors_up": [True] * 3,
        "backhaul_up": True,
    }
    low = LatestReading(
        tower,
        T0 + timedelta(seconds=5),
        {**healthy, "power_source": "battery", "battery_pct": 22.0},
    )
    [opened] = e.tick(5, Intake(readings={Kind.BTS: [low]})).writes
    assert opened.summary == f"Tower {tower} (Viettel, Vân Canh) on battery at 22 %"
    older = LatestReading(tower, T0, healthy)
    decision = e.tick(6, Intake(readings={Kind.BTS: [older]}))
    assert decision.readings == 0 and e.state.trackers[("bts_battery_low", tower)].raised


def test_an_alert_resolved_by_an_operator_is_not_reopened_until_the_subject_clears() -> None:
    e = Engine()
    tower = TOWERS[2]
    e.tick(0, Intake(status_changes=[_status(tower, "offline", 0)]))
    [opened] = e.tick(61).writes
    assert e.tick(62, Intake(unresolved=frozenset())).writes == []  # resolved by hand
    assert e.tick(500).writes == []  # still offline: no second alert
    e.tick(501, Intake(status_changes=[_status(tower, "online", 501)]))
    e.tick(502, Intake(status_changes=[_status(tower, "offline", 502)]))
    assert _acts(e.tick(563)) == [(Act.OPEN, "bts_offline", tower)]
    assert opened.tracker.alert_id == 2


def test_adopting_open_alerts_at_start_resolves_a_tower_that_came_back_meanwhile() -> None:
    e = Engine()
    back, still = TOWERS[3], TOWERS[4]
    open_alerts = [
        UnresolvedAlert(7, "bts_offline", back, False, "was off", T0),
        UnresolvedAlert(8, "bts_offline", still, False, "is off", T0),
        UnresolvedAlert(9, "rule_since_removed", back, False, "?", T0),
    ]
    decision = adopt(
        Startup(open_alerts, [_status(still, "offline", -600)]), e.rules, e.directory, e.state, T0
    )
    assert [a.alert_id for a in decision.orphans] == [9]
    assert e.tick(10).writes == []  # keep_firing_s from the takeover, not from the outage
    assert _acts(e.tick(31)) == [(Act.RESOLVE, "bts_offline", back)]
    assert e.state.trackers[("bts_offline", still)].alert_id == 8


def test_a_device_unknown_to_the_directory_asks_for_it_to_be_reloaded() -> None:
    e = Engine()
    decision = e.tick(0, Intake(status_changes=[_status("bts-new", "offline", 0)]))
    assert decision.directory_stale and e.state.trackers == {}


def test_the_wake_channel_is_the_one_migration_0007_notifies() -> None:
    sql = Path(__file__).parents[1] / "store" / "migrations" / "0007_alerts.sql"
    assert sql.read_text(encoding="utf-8").count(f"pg_notify('{INBOX_CHANNEL}'") == 2
