"""Scenario files: a YAML timeline of events over the province's simulated fleet.

A file is read and checked whole before anything is published: an unknown event or key, a
device that is not in the scenario, a sector a tower does not have, a time that goes backwards
— each fails with ``file:line: reason``. The format is documented in ``scenarios/README.md``;
the events and their parameters are declared in ``simulators/events.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from devices.kinds import Kind
from seeds import Scenario, ScenarioDevice, load_scenario
from simulators.events import ALL_KINDS, EVENTS, REQUIRED, EventType, duration_s
from simulators.values import LOCAL_TZ

LINE = "__line__"
TOP_KEYS = {"name", "description", "speed", "start", "duration", "interval", "fleet", "events"}
FLEET_KEYS = {"districts", "kinds", "devices", "limit"}
TARGET_KEYS = {"device", "devices", "district", "districts", "kinds", "share"}
DEFAULT_SPEED = 60.0
DISTRICT_TYPES = ("Thành phố ", "Thị xã ", "Huyện ")
TAIL_S = 600.0  # simulated time a run goes on after its last event, unless `duration` says


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message is ``file:line: reason``."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


@dataclass(frozen=True, slots=True)
class Action:
    at_s: float  # simulated seconds after the run's start
    event: str
    device_ids: tuple[str, ...]
    params: Mapping[str, Any]
    line: int


@dataclass(frozen=True, slots=True)
class Plan:
    path: Path
    name: str
    description: str
    speed: float
    start_local: time | None  # local time of day the simulated clock starts at
    duration_s: float  # simulated
    interval_s: float | None  # reporting interval for every device (simulated), if overridden
    devices: tuple[ScenarioDevice, ...]
    actions: tuple[Action, ...] = field(default=())

    def involved(self) -> tuple[ScenarioDevice, ...]:
        """Only the devices some event touches (a quick run of a scenario)."""
        wanted = {i for a in self.actions for i in a.device_ids}
        return tuple(d for d in self.devices if d.device_id in wanted)

    def sampled(self, per_event: int) -> Plan:
        """The same timeline with at most ``per_event`` devices per event (chosen evenly)."""
        actions = tuple(
            replace(a, device_ids=_spread(a.device_ids, per_event)) for a in self.actions
        )
        return replace(self, actions=actions)

    def start_at(self, now: datetime | None = None) -> datetime:
        """Where the simulated clock starts: today at ``start_local``, else now."""
        now = now or datetime.now(UTC)
        if self.start_local is None:
            return now
        local = now.astimezone(LOCAL_TZ)
        return datetime.combine(local.date(), self.start_local, LOCAL_TZ).astimezone(UTC)


def _spread(ids: tuple[str, ...], n: int) -> tuple[str, ...]:
    if len(ids) <= n:
        return ids
    step = len(ids) / n
    return tuple(ids[int(i * step)] for i in range(n))


class _LineLoader(yaml.SafeLoader):
    """Remembers the line each mapping starts on, so errors can name it."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def load_plan(path: Path | str, scenario: Scenario | None = None) -> Plan:
    """Read and check a scenario file against the scenario (default: Bình Định)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(path, 0, f"cannot read: {err.strerror or err}") from None
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else 0
        raise ScenarioError(path, line, f"not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(path, 0, f"not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(path, 1, "a scenario file is a mapping with name, events, …")
    return _Reader(path, scenario or load_scenario()).plan(doc)


class _Reader:
    def __init__(self, path: Path, scenario: Scenario) -> None:
        self.path = path
        self.scenario = scenario
        self.by_id = {d.device_id: d for d in scenario.devices() if d.kind in ALL_KINDS}
        self.districts: dict[str, int] = {}  # full name, name without its type, town, code
        for d in scenario.districts:
            short = d.name
            for prefix in DISTRICT_TYPES:
                short = short.removeprefix(prefix)
            for key in (d.name, short, d.town, str(d.code)):
                self.districts[key.casefold()] = d.code

    def fail(self, line: int, reason: str) -> ScenarioError:
        return ScenarioError(self.path, line, reason)

    def plan(self, doc: dict[str, Any]) -> Plan:
        line = doc.get(LINE, 1)
        self._keys(doc, TOP_KEYS, "scenario")
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.fail(line, "`name` is missing (a short title for the scenario)")
        speed = self._number(doc.get("speed", DEFAULT_SPEED), line, "speed")
        start = self._clock(doc.get("start"), line) if "start" in doc else None
        interval = self._duration(doc["interval"], line, "interval") if "interval" in doc else None
        if interval is not None and interval < 1:
            raise self.fail(line, "`interval` must be at least 1 s")
        fleet_doc = doc.get("fleet")
        fleet = self._fleet({} if fleet_doc is None else fleet_doc, line)
        fleet_ids = {d.device_id for d in fleet}
        events = doc.get("events")
        if not isinstance(events, list) or not events:
            raise self.fail(line, "`events` is missing or empty (a list of timed events)")
        actions: list[Action] = []
        previous = 0.0
        for raw in events:
            if not isinstance(raw, dict):
                raise self.fail(line, f"each event is a mapping with at, event, …; not {raw!r}")
            at = self._duration(raw.get("at", REQUIRED), raw[LINE], "at")
            if at < previous:
                raise self.fail(
                    raw[LINE], f"time goes backwards: at {raw['at']} is before the previous event"
                )
            previous = at
            actions += self._event(raw, at, fleet_ids)
        actions.sort(key=lambda a: a.at_s)  # stable: flapping's later steps fall in place
        last = actions[-1].at_s
        duration = (
            self._duration(doc["duration"], line, "duration")
            if "duration" in doc
            else last + TAIL_S
        )
        if duration < last:
            raise self.fail(line, f"`duration` ends before the last event (at {last:.0f} s)")
        description = str(doc.get("description") or "").strip()
        return Plan(
            self.path,
            name.strip(),
            description,
            speed,
            start,
            duration,
            interval,
            tuple(fleet),
            tuple(actions),
        )

    # -- parts ---------------------------------------------------------------------------------

    def _keys(self, raw: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
        unknown = sorted(set(raw) - set(allowed) - {LINE})
        if unknown:
            raise self.fail(
                raw.get(LINE, 0),
                f"unknown key {unknown[0]!r} in {what} (known: {', '.join(sorted(allowed))})",
            )

    def _number(self, value: Any, line: int, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(line, f"`{key}` must be a positive number, not {value!r}")
        return float(value)

    def _duration(self, value: Any, line: int, key: str) -> float:
        if value is REQUIRED:
            raise self.fail(line, f"`{key}` is missing")
        try:
            return duration_s(value)
        except ValueError as err:
            raise self.fail(line, f"`{key}`: {err}") from None

    def _clock(self, value: Any, line: int) -> time:
        try:
            seconds = duration_s(value)
        except ValueError:
            seconds = -1
        if isinstance(value, int) or not 0 <= seconds < 86400:
            raise self.fail(line, f"`start` must be a local time of day like 06:00, not {value!r}")
        return (datetime.min + timedelta(seconds=seconds)).time()

    def _district(self, value: Any, line: int) -> int:
        code = self.districts.get(str(value).casefold())
        if code is None:
            names = ", ".join(d.name for d in self.scenario.districts)
            raise self.fail(line, f"no district {value!r} in the scenario (districts: {names})")
        return code

    def _names(self, value: Any, line: int, key: str) -> list[str]:
        """One name or a list of names; anything else (a number, null, a mapping) is refused."""
        names = value if isinstance(value, list) else [value]
        if not names or not all(isinstance(n, str) for n in names):
            raise self.fail(line, f"`{key}` is a name or a list of names, not {value!r}")
        return names

    def _kinds(self, value: Any, line: int, allowed: frozenset[Kind]) -> frozenset[Kind]:
        names = self._names(value, line, "kinds")
        try:
            kinds = frozenset(Kind(n) for n in names)
        except ValueError:
            reason = f"`kinds`: {value!r} is not a list of bts, camera, broadband"
            raise self.fail(line, reason) from None
        if not kinds <= allowed:
            wrong = ", ".join(sorted(k.value for k in kinds - allowed))
            raise self.fail(line, f"`kinds`: {wrong} cannot take this event")
        return kinds

    def _ids(self, value: Any, line: int, key: str = "devices") -> list[str]:
        ids = self._names(value, line, key)
        for device_id in ids:
            if device_id not in self.by_id:
                raise self.fail(line, f"device {device_id!r} is not in the scenario")
        return ids

    def _fleet(self, raw: Any, line: int) -> list[ScenarioDevice]:
        if not isinstance(raw, Mapping):
            raise self.fail(line, "`fleet` is a mapping (districts, kinds, devices, limit)")
        line = raw.get(LINE, line)
        self._keys(raw, FLEET_KEYS, "fleet")
        devices = list(self.by_id.values())
        if "districts" in raw:
            codes = {self._district(d, line) for d in _list(raw["districts"])}
            devices = [d for d in devices if d.meta.get("district_code") in codes]
        if "kinds" in raw:
            kinds = self._kinds(raw["kinds"], line, ALL_KINDS)
            devices = [d for d in devices if d.kind in kinds]
        if "devices" in raw:
            extra = [self.by_id[i] for i in self._ids(raw["devices"], line)]
            devices += [d for d in extra if d not in devices]
        if "limit" in raw:
            devices = devices[: int(self._number(raw["limit"], line, "limit"))]
        if not devices:
            raise self.fail(line, "`fleet` selects no device")
        return devices

    def _event(self, raw: Mapping[str, Any], at: float, fleet_ids: set[str]) -> list[Action]:
        line = raw[LINE]
        name = raw.get("event")
        etype = EVENTS.get(str(name))
        if etype is None:
            known = ", ".join(EVENTS)
            raise self.fail(line, f"unknown event {name!r} (known: {known})")
        self._keys(raw, {"at", "event"} | TARGET_KEYS | {p.name for p in etype.params}, etype.name)
        params = self._params(etype, raw, line)
        ids = self._targets(etype, raw, line, params)
        outside = [i for i in ids if i not in fleet_ids]
        if outside:
            raise self.fail(line, f"device {outside[0]!r} is not in this scenario's fleet")
        if etype.name != "flapping":
            return [Action(at, etype.name, tuple(ids), params, line)]
        steps = []
        for k in range(2 * params["times"]):
            step = "down" if k % 2 == 0 else "up"
            steps.append(Action(at + k * params["period"], step, tuple(ids), {}, line))
        return steps

    def _params(self, etype: EventType, raw: Mapping[str, Any], line: int) -> dict[str, Any]:
        out = {}
        for p in etype.params:
            if p.name not in raw:
                if p.default is REQUIRED:
                    raise self.fail(line, f"{etype.name} needs `{p.name}`")
                out[p.name] = p.default
                continue
            try:
                out[p.name] = p.parse(raw[p.name])
            except (ValueError, TypeError) as err:
                raise self.fail(line, f"{etype.name} `{p.name}`: {err}") from None
        return out

    def _targets(
        self, etype: EventType, raw: Mapping[str, Any], line: int, params: Mapping[str, Any]
    ) -> list[str]:
        chosen = [k for k in ("device", "devices", "district", "districts") if k in raw]
        if len(chosen) != 1:
            raise self.fail(line, "say which devices: one of device, devices, district, districts")
        kinds = self._kinds(raw["kinds"], line, etype.kinds) if "kinds" in raw else etype.kinds
        key = chosen[0]
        if key in ("device", "devices"):
            ids = self._ids(raw[key], line, key)
            for device_id in ids:
                kind = self.by_id[device_id].kind
                if kind not in etype.kinds:
                    raise self.fail(
                        line, f"{etype.name} does not apply to {device_id} (a {kind.value})"
                    )
            selected = [self.by_id[i] for i in ids]
        else:
            values = _list(raw[key])
            every = [str(v).casefold() for v in values] == ["all"]
            codes = (
                {d.code for d in self.scenario.districts}
                if every
                else {self._district(v, line) for v in values}
            )
            selected = [d for d in self.by_id.values() if d.meta.get("district_code") in codes]
            if etype.name.startswith("fibre_"):
                selected = [d for d in selected if d.kind is Kind.BROADBAND]
        if etype.name.startswith("fibre_"):
            selected = self._behind(selected, line)
        selected = [d for d in selected if d.kind in kinds]
        if "sector" in params:
            for d in selected:
                sectors = {int(s["sector"]) for s in d.meta.get("sectors", [])}
                if params["sector"] not in sectors:
                    raise self.fail(line, f"{d.device_id} has no sector {params['sector']}")
        if "share" in raw:
            # Seeded by the candidates, not the event: an `up` over the same devices with the
            # same share picks the very ones a `down` took.
            seed = repr((raw["share"], [d.device_id for d in selected]))
            selected = self._share(selected, raw["share"], line, seed)
        if not selected:
            raise self.fail(line, f"{etype.name} selects no device")
        return [d.device_id for d in selected]

    def _behind(self, nodes: Sequence[ScenarioDevice], line: int) -> list[ScenarioDevice]:
        """Broadband nodes and the BTS and cameras in the communes they serve."""
        if any(n.kind is not Kind.BROADBAND for n in nodes):
            raise self.fail(line, "a fibre cut is behind broadband nodes: name OLT devices")
        served = {c for n in nodes for c in n.meta.get("communes_served", [])}
        behind = [
            d
            for d in self.by_id.values()
            if d.kind in (Kind.BTS, Kind.CAMERA) and d.meta.get("commune_code") in served
        ]
        return [*nodes, *behind]

    def _share(
        self, devices: list[ScenarioDevice], share: Any, line: int, seed: str
    ) -> list[ScenarioDevice]:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise self.fail(line, f"`share` must be a fraction in (0, 1], not {share!r}")
        rng = random.Random(seed)  # the same file picks the same devices every run
        picked = set(rng.sample(range(len(devices)), max(1, round(share * len(devices)))))
        return [d for i, d in enumerate(devices) if i in picked]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
