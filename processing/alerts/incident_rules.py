"""The incident grouping as the rules file declares it ([incidents], [[causes]], [[inhibit]];
README, Alerting): parsed here, once, and checked against the rules it names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.topics import ALERT_PART_PATTERN
from processing.alerts.rules import RulesError, entry_check, load_document, texts

INCIDENT_PREFIX = "incident_"  # an incident's alert row: rule incident_<cause>
GROUP_KEYS = ("cause", "district")
EQUALS = ("district", "tower")


@dataclass(frozen=True, slots=True)
class Cause:
    name: str
    en: str
    vi: str
    rules: tuple[str, ...]

    @property
    def rule(self) -> str:
        return INCIDENT_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class Inhibit:
    name: str
    source: frozenset[str]
    target: frozenset[str]
    equal: str  # district or tower


@dataclass(frozen=True, slots=True)
class IncidentRules:
    group_by: tuple[str, ...] = GROUP_KEYS
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    min_alerts: int = 2  # a group of fewer is told as its alert, as before
    causes: tuple[Cause, ...] = ()
    inhibits: tuple[Inhibit, ...] = ()

    def cause_of(self, rule: str) -> Cause | None:
        for cause in self.causes:
            if rule in cause.rules:
                return cause
        return None

    def by_rule(self, incident_rule: str) -> Cause | None:
        for cause in self.causes:
            if cause.rule == incident_rule:
                return cause
        return None

    @property
    def grouped(self) -> frozenset[str]:
        """The rules whose alerts are told only through their incident."""
        return frozenset(r for c in self.causes for r in c.rules)

    @property
    def names(self) -> dict[str, tuple[str, str]]:
        """Incident rule → (English name, Vietnamese name), for the messages' header."""
        return {c.rule: (c.en, c.vi) for c in self.causes}


def is_incident(rule: str) -> bool:
    return rule.startswith(INCIDENT_PREFIX)


def load_incident_rules(override: Path | str | None = None) -> IncidentRules:
    doc, where = load_document(override)
    return parse_incident_rules(doc, where)


_TABLE_KEYS = {"group_by", "group_wait_s", "group_interval_s", "min_alerts"}
_CAUSE_KEYS = {"name", "en", "vi", "rules", "enabled"}
_INHIBIT_KEYS = {"name", "source", "target", "equal", "enabled"}


def parse_incident_rules(doc: dict[str, Any], where: str) -> IncidentRules:
    """[incidents], [[causes]] and [[inhibit]] of the merged rules file; rules named must exist
    (a rule turned off is simply never open)."""
    known = {r.get("name") for r in doc.get("rules", [])}
    table = doc.get("incidents", {})
    if unknown := sorted(set(table) - _TABLE_KEYS):
        raise RulesError(f"{where}: [incidents]: unknown key {unknown[0]!r}")
    group_by = texts(table.get("group_by", list(GROUP_KEYS)))
    if group_by is None or "cause" not in group_by or not set(group_by) <= set(GROUP_KEYS):
        raise RulesError(f"{where}: [incidents]: group_by must be ['cause'] or "
                         "['cause', 'district']")  # fmt: skip
    waits = {}
    for key, default in (("group_wait_s", 30.0), ("group_interval_s", 300.0)):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise RulesError(f"{where}: [incidents]: {key} must be a number ≥ 0, not {value!r}")
        waits[key] = float(value)
    least = table.get("min_alerts", 2)
    if isinstance(least, bool) or not isinstance(least, int) or least < 1:
        raise RulesError(f"{where}: [incidents]: min_alerts must be a whole number ≥ 1")
    causes: list[Cause] = []
    seen: dict[str, str] = {}
    for entry in doc.get("causes", []):
        if entry.get("enabled", True) is False:
            continue
        cause = _cause(entry, where, known)
        for rule in cause.rules:
            if rule in seen:
                raise RulesError(f"{where}: cause {cause.name!r}: rule {rule!r} is already "
                                 f"in cause {seen[rule]!r}")  # fmt: skip
            seen[rule] = cause.name
        causes.append(cause)
    inhibits = tuple(_inhibit(e, where, known) for e in doc.get("inhibit", [])
                     if e.get("enabled", True) is not False)  # fmt: skip
    return IncidentRules(tuple(group_by), waits["group_wait_s"], waits["group_interval_s"],
                         least, tuple(causes), inhibits)  # fmt: skip


def _cause(entry: dict[str, Any], where: str, known: set[Any]) -> Cause:
    name = entry.get("name", "?")
    fail = entry_check(where, "cause", entry, _CAUSE_KEYS)
    if not isinstance(name, str) or not ALERT_PART_PATTERN.match(INCIDENT_PREFIX + name):
        raise fail("name must be letters, digits, '_', '.' or '-' (it names a topic level)")
    for key in ("en", "vi"):
        if not isinstance(entry.get(key), str):
            raise fail(f"{key} is missing or not text")
    rules = texts(entry.get("rules"))
    if not rules:
        raise fail("rules must name one or more rules")
    if missing := [r for r in rules if r not in known]:
        raise fail(f"unknown rule {missing[0]!r}")
    return Cause(name, entry["en"], entry["vi"], rules)


def _inhibit(entry: dict[str, Any], where: str, known: set[Any]) -> Inhibit:
    name = entry.get("name", "?")
    fail = entry_check(where, "inhibit", entry, _INHIBIT_KEYS)
    sides: dict[str, frozenset[str]] = {}
    for side in ("source", "target"):
        rules = texts(entry.get(side))
        if not rules:
            raise fail(f"{side} must name one or more rules")
        if missing := [r for r in rules if r not in known]:
            raise fail(f"{side}: unknown rule {missing[0]!r}")
        sides[side] = frozenset(rules)
    if entry.get("equal") not in EQUALS:
        raise fail(f"equal must be one of {', '.join(EQUALS)}, not {entry.get('equal')!r}")
    return Inhibit(str(name), sides["source"], sides["target"], entry["equal"])
