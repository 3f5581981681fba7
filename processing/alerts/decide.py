"""The engine's decision: from one tick's inputs, the rules and what it remembers, to the writes.

``decide`` reads no clock, no database and no broker: ``now`` and the inputs are given, the
only effect is on the :class:`EngineState` passed in (the trackers' memory between ticks), and
the result lists the alert transitions for the write step. So the whole rule logic (which
observation raises what, grouping, inhibition, hysteresis, flapping) is testable in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devices.kinds import Kind
from processing.alerts.facts import Directory, bts_extras, render
from processing.alerts.grouping import group_facts, zero_facts
from processing.alerts.incident_rules import is_incident
from processing.alerts.inputs import Intake, Startup
from processing.alerts.lifecycle import Act, Tracker
from processing.alerts.rules import Rule, RuleSet, Severity, Source
from processing.alerts.runway import LATER, LOST, SERVED, by_village, runway_facts
from store.alert_engine import (
    CoverageEvent,
    LatestReading,
    StatusChange,
    UnresolvedAlert,
    VillageRunway,
)


@dataclass(slots=True)
class EngineState:
    """What the engine remembers between ticks; rebuilt from the database by ``adopt``."""

    trackers: dict[tuple[str, str], Tracker] = field(default_factory=dict)
    missing: dict[str, set[str]] = field(default_factory=dict)  # village → operators lost
    dark: set[str] = field(default_factory=set)  # villages whose last coverage event is 'lost'
    last_reading: dict[str, datetime] = field(default_factory=dict)  # device → newest seen


@dataclass(frozen=True, slots=True)
class Write:
    """One alert transition to write, with what it says rendered from its tracker's facts."""

    act: Act
    tracker: Tracker
    summary: str
    summary_vi: str
    details: dict[str, Any]
    comment: str | None = None
    severity: Severity | None = None  # OPEN only
    district_code: int | None = None


@dataclass(slots=True)
class Decision:
    writes: list[Write] = field(default_factory=list)
    status_changes: int = 0
    readings: int = 0
    coverage_events: int = 0
    directory_stale: bool = False  # a device unknown to the directory: reload it
    orphans: list[UnresolvedAlert] = field(default_factory=list)  # their rule is gone


def decide(
    intake: Intake, rules: RuleSet, directory: Directory, state: EngineState, now: datetime
) -> Decision:
    """Observe the inputs in order (status, coverage, readings), group, then step every
    tracker at ``now``; the writes come back in the order they must be applied."""
    d = _Decider(rules, directory, state, now)
    if intake.unresolved is not None:
        for t in state.trackers.values():
            if t.alert_id is not None and t.alert_id not in intake.unresolved:
                t.forget()
    for change in intake.status_changes:
        d.status(change)
    for event in intake.coverage_events:
        d.coverage(event)
    for kind, readings in intake.readings.items():
        d.readings(kind, readings)
    if intake.runway is not None:
        d.runway(intake.runway)
    d.group()
    d.step()
    return d.decision


def adopt(startup: Startup, rules: RuleSet, directory: Directory, state: EngineState,
          now: datetime) -> Decision:  # fmt: skip
    """Take over the unresolved alerts and the devices offline now (engine start)."""
    d = _Decider(rules, directory, state, now)
    offline = {c.device_id: c for c in startup.offline}
    for alert in startup.unresolved:
        if is_incident(alert.rule):
            continue  # an incident's own alert: the incident book adopts it
        try:
            rule = rules.by_name(alert.rule)
        except KeyError:
            d.decision.orphans.append(alert)  # it stays as operators left it
            continue
        t = d.tracker(rule, alert.subject)
        t.raised, t.changed_at, t.alert_id = True, now, alert.alert_id
        t.flapping = alert.flapping
        t.sent(alert.summary, alert.updated_at)
        if rule.source is Source.STATUS and alert.subject not in offline:
            t.observe(False, {"state": "online"}, now)
    for change in offline.values():
        d.status(change, min(change.ts, now))  # dated when it went offline
    return d.decision


def fold_dark(dark: set[str], event: CoverageEvent) -> None:
    """Whether ``event``'s village is without any signal now."""
    if event.kind == "lost":
        dark.add(event.village_id)
    elif event.kind == "restored":
        dark.discard(event.village_id)


def fold_missing(missing: dict[str, set[str]], event: CoverageEvent) -> set[str]:
    """The operators ``event``'s village has lost since its first known state, not back yet."""
    lost = (missing.get(event.village_id, set()) | set(event.operators_lost)) - set(
        event.operators_now
    )
    if lost:
        missing[event.village_id] = lost
    else:
        missing.pop(event.village_id, None)
    return lost


class _Decider:
    def __init__(self, rules: RuleSet, directory: Directory, state: EngineState,
                 now: datetime) -> None:  # fmt: skip
        self.rules, self.directory, self.state, self.now = rules, directory, state, now
        self.decision = Decision()

    def tracker(self, rule: Rule, subject: str) -> Tracker:
        key = (rule.name, subject)
        t = self.state.trackers.get(key)
        if t is None:
            t = Tracker(rule, subject, facts=self._subject_facts(rule, subject))
            self.state.trackers[key] = t
        return t

    def _subject_facts(self, rule: Rule, subject: str) -> dict[str, Any]:
        if rule.subject == "village":
            return self.directory.village(subject)
        if rule.subject == "district":
            return self.directory.district(int(subject))
        return self.directory.device(subject)

    def observe(self, rule: Rule, subject: str, facts: dict[str, Any],
                at: datetime | None = None) -> None:  # fmt: skip
        raised = rule.raised(facts)
        if (rule.name, subject) not in self.state.trackers and raised is not True:
            return  # nothing to remember about a subject that is fine
        self.tracker(rule, subject).observe(raised, facts, at or self.now)

    def status(self, change: StatusChange, at: datetime | None = None) -> None:
        self.decision.status_changes += 1
        device = self.directory.data.devices.get(change.device_id)
        if device is None:
            self.decision.directory_stale = True  # registered since the last load
            return
        facts = {"state": change.state, "reason": change.reason, "status_ts": change.ts}
        for rule in self.rules.of(Source.STATUS, device.kind):
            self.observe(rule, change.device_id, facts, at)

    def coverage(self, event: CoverageEvent) -> None:
        self.decision.coverage_events += 1
        facts: dict[str, Any] = {
            "kind": event.kind,
            "operators_lost": list(event.operators_lost),
            "operators_now": list(event.operators_now),
            "operators_missing": sorted(fold_missing(self.state.missing, event)),
            "towers": list(event.towers),
            "event_ts": event.ts,
        }
        if event.population is not None:
            facts["population"] = event.population
        fold_dark(self.state.dark, event)
        for rule in self.rules.of(Source.COVERAGE):
            self.observe(rule, event.village_id, {**self.directory.village(event.village_id),
                                                  **facts})  # fmt: skip
        if event.kind == "lost":
            self._loss_happened(event.village_id)

    def _coverage_raised(self, village: str) -> list[Tracker]:
        trackers = self.state.trackers
        return [t for r in self.rules.of(Source.COVERAGE)
                if (t := trackers.get((r.name, village))) is not None and t.raised]  # fmt: skip

    def _loss_happened(self, village: str) -> None:
        """The village lost all signal: its runway alerts end now, and the alerts of the loss
        name the one that warned of it (``at_risk_alert``, for this loss only)."""
        warned = None
        for rule in self.rules.of(Source.RUNWAY):
            t = self.state.trackers.get((rule.name, village))
            if t is not None:
                warned = warned or t.alert_id
                self._observe_runway(rule, village, {"runway": "lost", "minutes_left": 0})
        for t in self._coverage_raised(village):
            t.facts.pop("at_risk_alert", None)
            if warned is not None:
                t.facts["at_risk_alert"] = warned

    def readings(self, kind: Kind, readings: list[LatestReading]) -> None:
        rules = self.rules.of(Source.TELEMETRY, kind.value)
        last = self.state.last_reading
        for r in readings:
            if last.get(r.device_id, r.ts) > r.ts:
                continue  # an older reading arriving late says nothing about now
            last[r.device_id] = r.ts
            self.decision.readings += 1
            facts = {**r.values, "reading_ts": r.ts}
            if kind is Kind.BTS:
                facts |= bts_extras(r.values)
            for rule in rules:
                self.observe(rule, r.device_id, facts)

    def runway(self, rows: list[VillageRunway]) -> None:
        """The villages at risk of losing all signal, and the ones tracked before (back on
        mains, or their forecast moved): each observed at ``now``."""
        rules = self.rules.of(Source.RUNWAY)
        villages = by_village(rows)
        for rule in rules:
            tracked = {t.subject for t in self.state.trackers.values() if t.rule is rule}
            for village in sorted(tracked | villages.keys()):
                facts = runway_facts(villages.get(village, {}), self.directory, self.now)
                if village in self.state.dark:  # already lost: coverage_lost's, not a forecast
                    facts |= {"runway": "lost", "minutes_left": 0}
                self._observe_runway(rule, village, facts)

    def _observe_runway(self, rule: Rule, village: str, facts: dict[str, Any]) -> None:
        self.observe(rule, village, {**self.directory.village(village), **facts})
        t = self.state.trackers.get((rule.name, village))
        if t is None or t.raised:
            return
        runway = t.facts.get("runway")
        t.clear_at_once = runway == "lost"
        if runway == "lost":
            names = sorted({c.rule.name for c in self._coverage_raised(village)})
            t.clear_comment = LOST.format(rules=", ".join(names) or "coverage alerts")
        elif runway == "served":
            t.clear_comment = SERVED
        elif runway == "at_risk":
            t.clear_comment = LATER

    def group(self) -> None:
        trackers, directory = self.state.trackers, self.directory
        for rule in self.rules.of(Source.GROUP):
            assert rule.members is not None
            kind = self.rules.by_name(rule.members).subject
            members = [t for t in trackers.values() if t.rule.name == rule.members]

            def district_of(t: Tracker, kind: str = kind) -> int | None:
                return directory.district_of(kind, t.subject)

            per_district = group_facts(
                rule, members, district_of, directory.bts_per_district.__getitem__, self.now
            )
            existing = {int(t.subject) for t in trackers.values() if t.rule is rule}
            for district in existing - per_district.keys():
                per_district[district] = zero_facts(rule, directory.bts_per_district[district])
            active: set[int] = set()
            for district, facts in per_district.items():
                self.observe(rule, str(district), facts)
                t = trackers.get((rule.name, str(district)))
                if t is not None:
                    t.facts.update(facts)
                    if t.raised or t.alert_id is not None:
                        active.add(district)
            for t in members:
                t.held = district_of(t) in active

    def step(self) -> None:
        trackers = self.state.trackers
        # Groups first: a group opening in this tick holds its members in the same tick.
        ordered = sorted(trackers.values(), key=lambda t: t.rule.source is not Source.GROUP)
        for t in ordered:
            for action in t.step(self.now, render(t.rule.summary_en, t.facts)):
                self.decision.writes.append(self._write(t, action.act, action.comment,
                                                        action.severity))  # fmt: skip
        for key in [k for k, t in trackers.items() if t.idle]:
            del trackers[key]

    def _write(self, t: Tracker, act: Act, comment: str | None,
               severity: Severity | None) -> Write:  # fmt: skip
        rule = t.rule
        details = {k: _jsonable(v) for k, v in t.facts.items()}
        details |= {"rule_en": rule.en, "rule_vi": rule.vi}
        summary_vi = render(rule.summary_vi, t.facts, "vi")
        return Write(
            act, t, render(rule.summary_en, t.facts), summary_vi, details, comment,
            (severity or rule.severity) if act is Act.OPEN else None,
            self.directory.district_of(rule.subject, t.subject),
        )  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
