"""Facts of a kind, declared once in devices/: they reach every room, and their two readings agree.

- A metric added to a copy of the declarations reaches the schema, the codec, the simulator and
  the dashboard's labels with no other edit.
- The health rule read as SQL (store) and as Python (devices.health) gives the same state on a
  table of readings, evaluated by the real PostgreSQL.
- The sector record and its ranges are the declarations'.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from devices.health import (
    HEALTH,
    KEY_METRICS,
    Condition,
    DisplayState,
    HealthRule,
    Predicate,
    check,
    health,
    latest_metrics,
)
from devices.kinds import Kind
from devices.metrics import READINGS, SECTOR, SECTOR_OPTIONAL, MetricType
from devices.sectors import SectorRecord, out_of_range
from store.db import connect
from store.readings import health_case
from store.tables import PG_TYPE
from tests.support.environment import inherited_environ

ROOT = Path(__file__).parent.parent
NEW_METRIC = '    _f("mains_voltage_v", "V", 0, 300, "Mains voltage", "Điện áp lưới"),\n'
ANCHOR = '    _b("backhaul_up", "Backhaul up", "Truyền dẫn hoạt động"),\n)'

# Run where the copied devices/ shadows the real one; everything else is the project's.
FLOW = """
import json
from datetime import UTC, datetime
from devices import Codec, Kind, Topics, encode
from devices.kinds import Channel
from store.schema_gen import readings_sql
from simulators.values import conform
from dashboard.livemap import _value
from dashboard.i18n import metric_label

now = datetime.now(UTC)
topic = Topics().device(Kind.BTS, "BTS-1", Channel.TELEMETRY)
def decode(volts):
    body = {"device_id": "BTS-1", "ts": now.isoformat(), "seq": 1, "mains_voltage_v": volts}
    return Codec().decode(topic, encode(body), now)
good, bad = decode(231.5), decode(400.0)
try:
    conform(Kind.BTS, {})
    simulator = ""
except ValueError as e:
    simulator = str(e)
print(json.dumps({
    "column": [l.strip() for l in readings_sql().splitlines() if "mains_voltage_v" in l],
    "decoded": good.record.items[0].mains_voltage_v,
    "rejected": [r.reason.value for r in bad.rejections],
    "simulator": simulator,
    "tooltip": _value("bts", "mains_voltage_v", 23.5),
    "label": metric_label(Kind.BTS, "mains_voltage_v"),
}))
"""


def test_a_metric_declared_once_reaches_schema_codec_simulator_and_dashboard(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / "devices", tmp_path / "devices")
    declared = tmp_path / "devices" / "metrics.py"
    text = declared.read_text(encoding="utf-8")
    assert ANCHOR in text, "the BTS declaration moved: update the anchor"
    declared.write_text(text.replace(ANCHOR, ANCHOR[:-1] + NEW_METRIC + ")"), encoding="utf-8")
    env = inherited_environ(PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", FLOW], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["column"] == ["mains_voltage_v double precision,"]
    assert seen["decoded"] == 231.5 and seen["rejected"] == ["out_of_range"]
    assert "mains_voltage_v" in seen["simulator"]  # the simulator must now say what it sends
    # Name and unit from the declaration, in Vietnamese (the dashboard's default language).
    assert seen["label"] == "Điện áp lưới" and seen["tooltip"] == "23,5 V"


def test_without_the_copy_the_metric_is_unknown() -> None:
    """The test above is not vacuous: the real declarations do not have the metric."""
    assert "mains_voltage_v" not in {s.name for s in READINGS[Kind.BTS]}


# Values each metric type takes in the table of cases, NULL (not reported) included.
DOMAIN: dict[MetricType, list[Any]] = {
    MetricType.BOOL: [True, False, None],
    MetricType.BOOL_LIST: [None, [], [True], [True, False], [None, True], [False, None]],
}


def _cases(kind: Kind) -> list[dict[str, Any]]:
    specs = {s.name: s for s in READINGS[kind]}
    names = sorted({c.metric for r in HEALTH[kind] for c in r.any_of})
    domains = [
        DOMAIN.get(specs[n].type) or [*specs[n].choices, None, "not-a-choice"] for n in names
    ]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*domains)]


@pytest.mark.parametrize("kind", list(HEALTH))
def test_health_rule_reads_the_same_in_sql_and_python(kind: Kind, pg_server_url: str) -> None:
    specs = {s.name: s for s in READINGS[kind]}
    cases = _cases(kind)
    names = list(cases[0])
    reading = sql.SQL(", ").join(
        sql.SQL("%s::{} AS {}").format(sql.SQL(PG_TYPE[specs[n].type]), sql.Identifier(n))
        for n in names
    )
    query = sql.SQL("SELECT {} FROM (SELECT {}) r").format(health_case(kind), reading)
    with connect(pg_server_url) as conn:
        in_sql = [conn.execute(query, [c[n] for n in names]).fetchone() for c in cases]
    in_python = [(health(kind, c).value,) for c in cases]
    assert in_sql == in_python
    # The table exercises every state the kind's rule can give, and the fallback.
    assert {s for (s,) in in_python} == {DisplayState.ONLINE, *(r.state for r in HEALTH[kind])}


def test_no_reading_is_online_and_rules_apply_in_order() -> None:
    assert health(Kind.BTS, None) is DisplayState.ONLINE
    both = {"power_source": "battery", "backhaul_up": False}
    assert health(Kind.BTS, both) is DisplayState.ON_BATTERY  # the first rule that holds


def test_store_fetches_the_key_metrics_and_what_the_rule_reads() -> None:
    assert latest_metrics(Kind.CAMERA) == ("fps", "recording", "tamper", "online")
    for kind, keys in KEY_METRICS.items():
        assert set(keys) <= set(latest_metrics(kind)) <= {s.name for s in READINGS[kind]}


def test_a_rule_on_an_undeclared_or_mistyped_metric_is_refused() -> None:
    rule = HealthRule(DisplayState.DEGRADED, (Condition("fps", Predicate.IS_FALSE),))
    with pytest.raises(ValueError, match="is_false does not apply to 'fps'"):
        check(READINGS, KEY_METRICS, {Kind.CAMERA: (rule,)})
    with pytest.raises(ValueError, match="not declared"):
        check(READINGS, {Kind.CAMERA: ("volts",)}, HEALTH)
    battery = Condition("power_source", Predicate.EQUALS, "solar")
    with pytest.raises(ValueError, match="never 'solar'"):
        check(READINGS, KEY_METRICS, {Kind.BTS: (HealthRule(DisplayState.ON_BATTERY, (battery,)),)})


def test_the_sector_record_is_the_declared_sector() -> None:
    assert [f.name for f in fields(SectorRecord)] == [s.name for s in (*SECTOR, *SECTOR_OPTIONAL)]


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [("tx_power_dbm", 0.0, -0.5), ("antenna_height_m", 1.0, 0.5), ("beamwidth_deg", 360, 361)],
)
def test_sector_ranges_are_the_declared_ranges(name: str, inside: float, outside: float) -> None:
    assert out_of_range(name, inside) is None
    assert out_of_range(name, outside) is not None
