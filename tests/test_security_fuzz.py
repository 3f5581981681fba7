"""Fuzzing what strangers control: scenario files (simulators/scenarios.py) and near-valid
readings (devices/codec.py). tests/test_contract.py already throws arbitrary bytes and
arbitrary JSON at the decoder; these go where random input rarely reaches — one field wrong
in an otherwise valid document. Cases per run: README, "Security".

Scenario files: either a Plan or a ScenarioError (``file:line: reason``), never another
exception. Readings: either accepted or rejected with a reason, never an exception, and
whatever is accepted lies within its declared range.
"""

from __future__ import annotations

import functools
import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Codec, Kind, Readings, Topics
from devices.kinds import READING_CHANNEL
from devices.metrics import READINGS, MetricSpec, MetricType
from seeds import Scenario, load_scenario
from simulators.scenarios import TOP_KEYS, Plan, ScenarioError, load_plan

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
CASES = {"scenario_documents": 400, "scenario_text": 400, "readings": 600}  # README
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _CachedScenario:
    """The scenario, its device list built once: load_plan reads it on every call."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scenario, name)

    @functools.cache  # noqa: B019 - one instance for the whole run
    def devices(self) -> Any:
        return self._scenario.devices()


SCENARIO = cast(Scenario, _CachedScenario(load_scenario()))
BASES = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in SCENARIO_FILES]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.datetimes().map(str),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


def _load_text(text: str) -> Plan | None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", encoding="utf-8", delete=False) as f:
        f.write(text)
    path = Path(f.name)
    try:
        return load_plan(path, SCENARIO)
    except ScenarioError as err:
        assert err.path == str(path) and err.reason, err
        return None
    finally:
        path.unlink()


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """A shipped scenario with a few keys dropped, replaced or added, at any depth."""
    doc = draw(st.sampled_from(BASES))
    doc = yaml.safe_load(yaml.safe_dump(doc))  # a copy

    def containers(node: Any) -> list[Any]:
        found = [node] if isinstance(node, dict | list) else []
        children = node.values() if isinstance(node, dict) else node if isinstance(
            node, list) else []  # fmt: skip
        for child in children:
            found += containers(child)
        return found

    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(containers(doc)))
        if isinstance(target, dict):
            keys = sorted(target, key=str) + sorted(TOP_KEYS) + ["event", "at", "device"]
            key = draw(st.sampled_from(keys))
            if draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = draw(json_values)
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = draw(json_values)
    return doc


@pytest.mark.parametrize(
    "text",
    [
        "name: x\nfleet: 1\nevents:\n  - {at: 1m, event: down, device: BTS-VTL-0001}\n",
        "name: x\nevents:\n  - {at: 1m, event: malformed, device: null}\n",
        "name: x\nevents:\n  - {at: 1m, event: down, devices: {a: 1}}\n",
        "name: x\nevents:\n  - {at: 1m, event: down, district: Quy Nhơn, kinds: 7}\n",
    ],
)
def test_what_the_fuzzer_found_is_one_clear_error(text: str) -> None:
    """`fleet: 1` and `device: null` used to escape as AttributeError / TypeError."""
    assert _load_text(text) is None


@settings(FUZZ, max_examples=CASES["scenario_documents"])
@given(mutated_documents())
def test_a_mutated_scenario_document_is_a_plan_or_one_clear_error(doc: Any) -> None:
    _load_text(yaml.safe_dump(doc, allow_unicode=True))


@settings(FUZZ, max_examples=CASES["scenario_text"])
@given(
    base=st.sampled_from(SCENARIO_FILES),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.text(max_size=12)), min_size=1, max_size=4),
)
def test_scenario_text_with_bytes_spliced_in_is_a_plan_or_one_clear_error(
    base: Path, cuts: list[tuple[float, str]]
) -> None:
    text = base.read_text(encoding="utf-8")
    for where, junk in cuts:
        at = int(where * len(text))
        text = text[:at] + junk + text[at:]
    _load_text(text)


def _good(spec: MetricSpec) -> Any:
    if spec.type is MetricType.FLOAT or spec.type is MetricType.INT:
        lo, hi = spec.min or 0, spec.max if spec.max is not None else 1
        return (lo + hi) / 2 if spec.type is MetricType.FLOAT else int((lo + hi) // 2)
    if spec.type is MetricType.BOOL:
        return True
    if spec.type is MetricType.TEXT:
        return spec.choices[0] if spec.choices else "ok"
    return [True, True, True] if spec.type is MetricType.BOOL_LIST else [1, 2, 3]


CODEC = Codec(Topics(), max_future=timedelta(seconds=300), is_known={"DEV-1"}.__contains__)
EDGES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    2**63,
    -(2**63) - 1,
    10**40,
    "",
    "NaN",
    "1e999",
    [],
    {},
    None,
    True,
    "\u0000",
    "x" * 5000,
]
hostile: st.SearchStrategy[Any] = st.sampled_from(EDGES) | json_values


@settings(FUZZ, max_examples=CASES["readings"])
@given(
    kind=st.sampled_from(list(Kind)),
    spoil=st.dictionaries(
        st.sampled_from(["device_id", "ts", "seq", "*metric"]), hostile, max_size=3
    ),
    as_array=st.booleans(),
    data=st.data(),
)
def test_a_near_valid_reading_is_accepted_in_range_or_rejected_never_raises(
    kind: Kind, spoil: dict[str, Any], as_array: bool, data: st.DataObject
) -> None:
    specs = READINGS[kind]
    doc: dict[str, Any] = {"device_id": "DEV-1", "ts": NOW.isoformat(), "seq": 7}
    doc |= {s.name: _good(s) for s in specs}
    for key, value in spoil.items():
        key = data.draw(st.sampled_from([s.name for s in specs])) if key == "*metric" else key
        doc[key] = value
    try:
        payload = msgspec.json.encode([doc] if as_array else doc)
    except (OverflowError, msgspec.EncodeError):
        return  # not JSON at all: the arbitrary-bytes fuzz covers what a device could send
    topic = Topics().device(kind, "DEV-1", READING_CHANNEL[kind])
    decoded = CODEC.decode(topic, payload, NOW + timedelta(seconds=1))
    assert decoded.record is not None or decoded.rejections
    if isinstance(decoded.record, Readings):
        for item in decoded.record.items:
            for spec in specs:
                value = getattr(item, spec.name)
                if value is None or spec.type not in (MetricType.FLOAT, MetricType.INT):
                    continue
                assert math.isfinite(value), (spec.name, value)
                assert spec.min is None or value >= spec.min, (spec.name, value)
                assert spec.max is None or value <= spec.max, (spec.name, value)
    for rejection in decoded.rejections:
        assert rejection.reason and rejection.payload == payload


def test_the_shipped_scenarios_load() -> None:
    # The fuzzers start from these; were they broken, most cases would test one error path.
    assert SCENARIO_FILES and all(_load_text(p.read_text("utf-8")) for p in SCENARIO_FILES)
