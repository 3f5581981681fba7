"""Alert rules as data: the shipped ``rules.toml``, merged with an optional override file."""

from __future__ import annotations

import string
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from devices.kinds import Kind
from devices.metrics import READINGS
from devices.topics import ALERT_PART_PATTERN
from processing.alerts.conditions import Condition, ConditionError, Unknown, compile_condition

DEFAULT_RULES = resources.files("processing.alerts") / "rules.toml"


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


class Source(StrEnum):
    STATUS = "status"  # device status changes (reported, will, missed intervals)
    TELEMETRY = "telemetry"  # the latest reading of a device
    COVERAGE = "coverage"  # a village's coverage change events
    GROUP = "group"  # many alerts of one rule in one district
    RUNWAY = "runway"  # a village's battery runway: when it loses all signal (place_runway)


DEVICE_SUBJECTS = {Kind.BTS.value, Kind.CAMERA.value, Kind.BROADBAND.value}
SUBJECTS: dict[Source, set[str]] = {
    Source.STATUS: DEVICE_SUBJECTS,
    Source.TELEMETRY: DEVICE_SUBJECTS,
    Source.COVERAGE: {"village"},
    Source.GROUP: {"district"},
    Source.RUNWAY: {"village"},
}
# operators_missing: every operator lost since the village's first known state and not back.
COVERAGE_FACTS = frozenset(
    {"kind", "operators_lost", "operators_now", "operators_missing", "towers", "population"}
)
GROUP_FACTS = frozenset({"recent", "recent_share", "offline", "offline_share", "total"})
# runway: at_risk (every tower serving it is on battery), served (one is back on mains), lost
# (it has lost all signal); minutes_left: to the forecast loss, None when unknown.
RUNWAY_FACTS = frozenset({"runway", "minutes_left", "population", "sites", "operators_at_risk"})


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the key."""


@dataclass(frozen=True, slots=True)
class Flapping:
    window_s: float
    changes: int
    quiet_s: float


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    en: str
    vi: str
    subject: str
    source: Source
    when: Condition
    clear: Condition | None  # None: the alert ends when ``when`` stops holding
    severity: Severity
    for_s: float
    keep_firing_s: float
    summary_en: str
    summary_vi: str
    flapping: Flapping
    update_min_s: float
    escalate: tuple[tuple[Severity, Condition], ...] = ()
    constants: dict[str, Any] = field(default_factory=dict)
    members: str | None = None  # group rules: the rule whose alerts are grouped
    window_s: float = 0.0  # group rules: "recent" means within this window

    def raised(self, facts: dict[str, Any]) -> bool | None:
        """True: ``when`` holds; False: ``clear`` holds; None: neither, or facts missing."""
        facts = {**self.constants, **facts}
        try:
            if self.when(facts):
                return True
            if self.clear is None or self.clear(facts):
                return False
        except Unknown:
            pass
        return None

    def severity_for(self, facts: dict[str, Any]) -> Severity:
        facts = {**self.constants, **facts}
        for severity, condition in self.escalate:
            try:
                if condition(facts):
                    return severity
            except Unknown:
                continue
        return self.severity


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]

    def by_name(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def of(self, source: Source, subject: str | None = None) -> list[Rule]:
        return [r for r in self.rules if r.source is source and subject in (None, r.subject)]


def load_rules(override: Path | str | None = None) -> RuleSet:
    """The shipped rules, with ``override`` (a TOML file) merged over them."""
    return _build(*load_document(override))


def load_document(override: Path | str | None = None) -> tuple[dict[str, Any], str]:
    """The shipped rules file merged with ``override``, and the name of the file to blame in
    an error: rules, recipients and routes (processing.alerts.routing) all come from it."""
    base = _read(DEFAULT_RULES.read_text(encoding="utf-8"), "rules.toml (shipped)")
    where = "rules.toml (shipped)"
    if override is not None:
        path = Path(override)
        where = str(path)
        if not path.is_file():
            raise RulesError(f"IOC_ALERT_RULES: no rules file at {path}")
        base = _merge(base, _read(path.read_text(encoding="utf-8"), str(path)), str(path))
    return base, where


def _read(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RulesError(f"{where}: not valid TOML: {err}") from None


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(extra) - set(SECTIONS)
    if unknown:
        raise RulesError(f"{where}: unknown section {sorted(unknown)[0]!r} ({', '.join(SECTIONS)})")
    out: dict[str, Any] = {
        table: {**base.get(table, {}), **extra.get(table, {})} for table in TABLES
    }
    # A rule of a known name changes only the keys it gives; a recipient or route of a known
    # name replaces the shipped one whole (the shipped ones are examples, turned off, whose
    # `enabled = false` must not stick to an entry written in full).
    for section in LISTS:
        entries = {e["name"]: dict(e) for e in base.get(section, [])}
        for entry in extra.get(section, []):
            name = entry.get("name")
            if not isinstance(name, str):
                raise RulesError(f"{where}: a [[{section}]] entry has no name")
            entries[name] = {**entries.get(name, {}), **entry} if section == "rules" else entry
        out[section] = list(entries.values())
    return out


# Tables merge key by key; lists of named entries merge by name. [incidents], [[causes]] and
# [[inhibit]]: processing/alerts/incidents.py.
TABLES = ("defaults", "incidents")
LISTS = ("rules", "recipients", "routes", "causes", "inhibit")
SECTIONS = TABLES + LISTS


_RULE_KEYS = {
    "name", "en", "vi", "subject", "source", "when", "clear", "severity", "escalate", "for_s",
    "keep_firing_s", "summary_en", "summary_vi", "members", "window_s", "enabled",
    "flap_window_s", "flap_changes", "flap_quiet_s", "update_min_s",
}  # fmt: skip
_DEFAULT_KEYS = {"flap_window_s", "flap_changes", "flap_quiet_s", "update_min_s"}


def _build(doc: dict[str, Any], where: str) -> RuleSet:
    defaults = dict(doc.get("defaults", {}))
    constants = {k: v for k, v in defaults.items() if k not in _DEFAULT_KEYS}
    rules: list[Rule] = []
    for entry in doc.get("rules", []):
        if entry.get("enabled", True) is False:
            continue
        rules.append(_rule(entry, defaults, constants, where))
    names = {r.name for r in rules}
    for rule in rules:
        if rule.members is not None and rule.members not in names:
            raise RulesError(f"{where}: rule {rule.name!r}: members {rule.members!r} is no rule")
    return RuleSet(tuple(rules))


def entry_check(
    where: str, what: str, entry: dict[str, Any], keys: set[str]
) -> Callable[[str], RulesError]:
    """The error maker for one entry of the rules file (``{where}: {what} {name!r}: …``), once
    the entry is known to hold no key outside ``keys``."""
    name = entry.get("name", "?")

    def fail(message: str) -> RulesError:
        return RulesError(f"{where}: {what} {name!r}: {message}")

    if unknown := sorted(set(entry) - keys):
        raise fail(f"unknown key {unknown[0]!r}")
    return fail


def texts(value: Any) -> tuple[str, ...] | None:
    """A text or a list of texts as a tuple; None when it is neither."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _rule(
    entry: dict[str, Any], defaults: dict[str, Any], constants: dict[str, Any], where: str
) -> Rule:
    name = entry.get("name", "?")
    fail = entry_check(where, "rule", entry, _RULE_KEYS)
    if not isinstance(name, str) or not ALERT_PART_PATTERN.match(name):
        raise fail("name must be letters, digits, '_', '.' or '-' (it is a topic level)")
    for key in ("en", "vi", "subject", "source", "when", "severity", "summary_en", "summary_vi"):
        if not isinstance(entry.get(key), str):
            raise fail(f"{key} is missing or not text")
    try:
        source = Source(entry["source"])
        severity = Severity(entry["severity"])
    except ValueError as err:
        raise fail(str(err)) from None
    if entry["subject"] not in SUBJECTS[source]:
        raise fail(f"subject {entry['subject']!r} does not fit source {source.value!r}")
    facts = _facts(source, entry["subject"]) | set(constants)

    def condition(key: str, text: Any) -> Condition:
        if not isinstance(text, str):
            raise fail(f"{key} must be text")
        try:
            return compile_condition(text, facts)
        except ConditionError as err:
            raise fail(f"{key}: {err}") from None

    escalate = entry.get("escalate", {})
    if not isinstance(escalate, dict):
        raise fail("escalate must be a table of severity = condition")
    try:
        escalations = tuple(
            (Severity(sev), condition(f"escalate.{sev}", text)) for sev, text in escalate.items()
        )
    except ValueError as err:
        raise fail(f"escalate: {err}") from None
    for key in ("summary_en", "summary_vi"):
        _check_template(entry[key], fail)
    if source is Source.GROUP and not isinstance(entry.get("members"), str):
        raise fail("a group rule needs members (the rule it groups)")

    def number(key: str, default: Any = None) -> float:
        value = entry.get(key, defaults.get(key, default))
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise fail(f"{key} must be a number ≥ 0, not {value!r}")
        return float(value)

    return Rule(
        name=name,
        en=entry["en"],
        vi=entry["vi"],
        subject=entry["subject"],
        source=source,
        when=condition("when", entry["when"]),
        clear=condition("clear", entry["clear"]) if "clear" in entry else None,
        severity=severity,
        for_s=number("for_s", 0),
        keep_firing_s=number("keep_firing_s", 0),
        summary_en=entry["summary_en"],
        summary_vi=entry["summary_vi"],
        flapping=Flapping(
            number("flap_window_s"), max(2, int(number("flap_changes"))), number("flap_quiet_s")
        ),
        update_min_s=number("update_min_s"),
        escalate=escalations,
        constants=constants,
        members=entry.get("members"),
        window_s=number("window_s", 0),
    )


def _facts(source: Source, subject: str) -> set[str]:
    match source:
        case Source.STATUS:
            return {"state", "reason"}
        case Source.TELEMETRY:
            return {m.name for m in READINGS[Kind(subject)]}
        case Source.COVERAGE:
            return set(COVERAGE_FACTS)
        case Source.GROUP:
            return set(GROUP_FACTS)
        case Source.RUNWAY:
            return set(RUNWAY_FACTS)
    raise AssertionError(source)


def _check_template(template: str, fail: Any) -> None:
    try:
        list(string.Formatter().parse(template))
    except ValueError as err:
        raise fail(f"summary template {template!r}: {err}") from None
