"""How a live device's latest reading reads to an operator: its key metrics and its health.

The health rule is data, not code, so that each side can turn it into its own language: the
store into SQL (``store.readings``, what the map shows), Python into :func:`health` (the reference
the SQL form is tested against, tests/test_kinds.py).
Both read the same ordered rules: the first whose condition holds names the state; none holding
(or no reading at all) leaves the device ``online``. A metric that was not reported (null)
satisfies no condition, as NULL does in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from devices.kinds import Kind, PowerSource
from devices.metrics import READINGS, MetricSpec, MetricType


class DisplayState(StrEnum):
    """What the map shows: liveness (online, offline, unknown) refined by the latest reading."""

    ONLINE = "online"
    ON_BATTERY = "on_battery"
    DEGRADED = "degraded"
    OFFLINE = "offline"
    UNKNOWN = "unknown"

    @property
    def live(self) -> bool:
        """Heard from and reporting, whatever its reading says."""
        return self in (DisplayState.ONLINE, DisplayState.ON_BATTERY, DisplayState.DEGRADED)


# (Vietnamese, English), as the dashboard's catalogue holds its labels.
STATE_LABELS: dict[DisplayState, tuple[str, str]] = {
    DisplayState.ONLINE: ("hoạt động", "online"),
    DisplayState.ON_BATTERY: ("chạy ắc quy", "on battery"),
    DisplayState.DEGRADED: ("suy giảm", "degraded"),
    DisplayState.OFFLINE: ("mất kết nối", "offline"),
    DisplayState.UNKNOWN: ("chưa rõ", "unknown"),
}


class Predicate(StrEnum):
    IS_FALSE = "is_false"  # a flag reported false
    IS_TRUE = "is_true"
    EQUALS = "equals"  # a text metric reported as ``value``
    ANY_FALSE = "any_false"  # one flag of a per-sector list reported false


# Which metric types each predicate applies to.
_APPLIES: dict[Predicate, MetricType] = {
    Predicate.IS_FALSE: MetricType.BOOL,
    Predicate.IS_TRUE: MetricType.BOOL,
    Predicate.EQUALS: MetricType.TEXT,
    Predicate.ANY_FALSE: MetricType.BOOL_LIST,
}


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    predicate: Predicate
    value: str | None = None  # for EQUALS

    def holds(self, reading: Mapping[str, Any]) -> bool:
        v = reading.get(self.metric)
        match self.predicate:
            case Predicate.IS_FALSE:
                return v is False
            case Predicate.IS_TRUE:
                return v is True
            case Predicate.EQUALS:
                return v is not None and v == self.value
            case Predicate.ANY_FALSE:
                return isinstance(v, list) and any(x is False for x in v)
        raise AssertionError(self.predicate)


@dataclass(frozen=True, slots=True)
class HealthRule:
    state: DisplayState
    any_of: tuple[Condition, ...]  # the state holds when one of these does


def is_false(metric: str) -> Condition:
    return Condition(metric, Predicate.IS_FALSE)


HEALTH: dict[Kind, tuple[HealthRule, ...]] = {
    Kind.BTS: (
        HealthRule(
            DisplayState.ON_BATTERY,
            (Condition("power_source", Predicate.EQUALS, PowerSource.BATTERY.value),),
        ),
        HealthRule(
            DisplayState.DEGRADED,
            (is_false("backhaul_up"), Condition("sectors_up", Predicate.ANY_FALSE)),
        ),
    ),
    Kind.CAMERA: (
        HealthRule(
            DisplayState.DEGRADED,
            (is_false("online"), is_false("recording"), Condition("tamper", Predicate.IS_TRUE)),
        ),
    ),
    Kind.BROADBAND: (HealthRule(DisplayState.DEGRADED, (is_false("uplink_up"),)),),
}

# The metrics the map's tooltip shows for a kind, in that order. Kinds absent here (probes) are
# not on the device map.
KEY_METRICS: dict[Kind, tuple[str, ...]] = {
    Kind.BTS: ("power_source", "battery_pct", "active_users", "sectors_up", "backhaul_up"),
    Kind.CAMERA: ("fps", "recording", "tamper"),
    Kind.BROADBAND: ("onts_online", "latency_ms", "uplink_up"),
}


def health(kind: Kind, reading: Mapping[str, Any] | None) -> DisplayState:
    """The state a live device's latest reading gives it (``online`` without a reading)."""
    if reading is None:
        return DisplayState.ONLINE
    for rule in HEALTH.get(kind, ()):
        if any(c.holds(reading) for c in rule.any_of):
            return rule.state
    return DisplayState.ONLINE


def latest_metrics(kind: Kind) -> tuple[str, ...]:
    """What the store fetches of a kind's latest reading: key metrics, then those the rule reads."""
    ruled = (c.metric for r in HEALTH.get(kind, ()) for c in r.any_of)
    return tuple(dict.fromkeys((*KEY_METRICS.get(kind, ()), *ruled)))


def check(
    readings: Mapping[Kind, tuple[MetricSpec, ...]],
    key_metrics: Mapping[Kind, tuple[str, ...]],
    rules: Mapping[Kind, tuple[HealthRule, ...]],
) -> None:
    """Every metric named here is declared for its kind, with a type its predicate applies to."""
    for kind, names in key_metrics.items():
        declared = {s.name for s in readings[kind]}
        if missing := set(names) - declared:
            raise ValueError(f"{kind.value}: key metrics not declared: {sorted(missing)}")
    for kind, kind_rules in rules.items():
        specs = {s.name: s for s in readings[kind]}
        for c in (c for r in kind_rules for c in r.any_of):
            spec = specs.get(c.metric)
            if spec is None or spec.type is not _APPLIES[c.predicate]:
                raise ValueError(f"{kind.value}: {c.predicate} does not apply to {c.metric!r}")
            equals = c.predicate is Predicate.EQUALS
            if equals and (c.value is None or c.value not in spec.choices):
                raise ValueError(f"{kind.value}: {c.metric} is never {c.value!r}")


check(READINGS, KEY_METRICS, HEALTH)
