"""The broadband and camera pages with Streamlit's AppTest, against the Bình Định scenario in a
real PostgreSQL (tests/fixtures/dashboard.py): fibre reach as the seeds give it, an OLT fault's
households and backhauled towers, cameras per district with their faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from devices.kinds import DeviceState, Kind
from seeds import load_scenario
from store import broadband, cameras, users
from store.alert_engine import NewAlert, open_alert
from store.db import aconnect, connect
from store.readings import copy_backfill, rebuild_latest
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.fleet_history import load_scenario_db, set_states

APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")
SEQ = 10_000_000  # above any sequence number the fixture's history uses


def app(url: str, monkeypatch: pytest.MonkeyPatch, page: str, lang: str) -> AppTest:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    with connect(url, autocommit=True) as conn:
        session = users.login(conn, "viewer", PASSWORDS["viewer"])
    assert session is not None
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = lang
    at.session_state["session_token"] = session.token
    at.switch_page(f"../dashboard/pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not [e.value for e in at.error], [e.value for e in at.error]
    return at


def metric(at: AppTest, label: str) -> tuple[str, str]:
    found = next(m for m in at.metric if m.label == label)
    return found.value, found.proto.delta


def frame(at: AppTest, first_column: str, column: str, *, having: str | None = None) -> list[str]:
    """One column of the first table whose first column is ``first_column`` (and that has the
    column ``having``)."""
    for d in at.dataframe:
        columns = d.value.columns
        if columns[0] == first_column and column in columns and (having or column) in columns:
            return list(d.value[column])
    raise AssertionError(f"no table starting with {first_column!r} has {column!r}")


def whole(text: str) -> int:
    """A number as num() writes it in English (1,234)."""
    return int(text.replace(",", ""))


def olt_reading(url: str, olt: str, ts: datetime, seq: int, *, uplink_up: bool) -> None:
    row = (olt, ts, seq, uplink_up, -20.0 if uplink_up else -50.0, 300, 500, 4.0, 0.1, ts)
    with connect(url, autocommit=True) as conn:
        assert copy_backfill(conn, Kind.BROADBAND, [row]) == 1
        rebuild_latest(conn)  # as the ingest writer keeps it


def camera_reading(url: str, camera: str, ts: datetime, **values: object) -> None:
    v = {"online": True, "recording": True, "storage_free_pct": 60.0, "tamper": False} | values
    row = (camera, ts, SEQ, v["online"], 25.0, 4000.0, v["recording"], v["storage_free_pct"],
           v["tamper"], ts)  # fmt: skip
    with connect(url, autocommit=True) as conn:
        assert copy_backfill(conn, Kind.CAMERA, [row]) == 1
        rebuild_latest(conn)


def test_every_commune_carries_the_households_its_olt_totals() -> None:
    scenario = load_scenario()
    by_code = {c.code: c for c in scenario.communes}
    for node in scenario.broadband:
        served = [by_code[code] for code in node.communes_served]
        assert sum(c.households_passed for c in served) == node.households_passed
        assert sum(c.households for c in served) == node.households_total
    assert sum(c.has_fibre for c in scenario.communes) == 154 and len(by_code) == 155
    assert [c.households_passed for c in scenario.communes if not c.has_fibre] == [0]


def test_broadband_page_shows_fibre_reach_as_the_seeds_give_it(scenario_url, monkeypatch):
    scenario = load_scenario()
    households = sum(c.households for c in scenario.communes)
    passed = sum(n.households_passed for n in scenario.broadband)
    at = app(scenario_url, monkeypatch, "broadband", "en")
    value, delta = metric(at, "Households passed")
    assert whole(value) == passed and "," in value  # thousands separated
    assert delta == f"{100 * passed / households:.1f}% of {households:,} households"
    assert delta.startswith("56.0%")  # the report's "nearly 56 %"
    assert metric(at, "Communes with fibre") == ("154 of 155", "99.4%")
    assert "No OLT is at fault." in [s.value for s in at.success]
    district = frame(at, "District", "Households")
    assert len(district) == 11 and sum(map(whole, district)) == households
    assert sum(map(whole, frame(at, "District", "Households passed"))) == passed
    dark = next(c for c in scenario.communes if not c.has_fibre)
    assert any(dark.name in m.value for m in at.markdown)
    communes = frame(at, "District", "Commune")
    assert len(communes) == 155
    olts = frame(at, "OLT", "Households passed")
    assert len(olts) == len(scenario.broadband) and sum(map(whole, olts)) == passed


def test_broadband_page_in_vietnamese_groups_with_dots(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "broadband", "vi")
    value, _ = metric(at, "Hộ được phủ cáp quang")
    passed = sum(n.households_passed for n in load_scenario().broadband)
    assert value == f"{passed:,}".replace(",", ".")
    assert metric(at, "Xã có cáp quang")[0] == "154/155"
    assert "Không OLT nào đang sự cố." in [s.value for s in at.success]


@pytest.fixture
def olt_faults(scenario_url: str) -> Iterator[list[str]]:
    """Two OLTs at fault: one dark (its will), one alive with its uplink down."""
    scenario = load_scenario()
    dark, cut = [n.device_id for n in scenario.broadband if len(n.communes_served) > 1][:2]
    now = datetime.now(UTC)
    set_states(scenario_url, now, {dark: DeviceState.OFFLINE})
    olt_reading(scenario_url, cut, now, SEQ, uplink_up=False)
    try:
        yield [dark, cut]
    finally:
        set_states(scenario_url, datetime.now(UTC), {dark: DeviceState.ONLINE})
        olt_reading(scenario_url, cut, datetime.now(UTC), SEQ + 1, uplink_up=True)


def test_an_olt_fault_shows_the_households_cut_and_the_backhauled_towers(
    scenario_url, olt_faults, monkeypatch
):
    scenario = load_scenario()
    nodes = {n.device_id: n for n in scenario.broadband}
    at = app(scenario_url, monkeypatch, "broadband", "en")
    cut = sum(nodes[o].households_passed for o in olt_faults)
    assert whole(metric(at, "Households cut off now")[0]) == cut
    assert any(s.value == "OLTs at fault (2)" for s in at.subheader)
    faults = "Households cut off now"
    shown = frame(at, "OLT", "BTS", having=faults)
    states = frame(at, "OLT", "State", having=faults)
    olts = [o.split(" · ")[0] for o in frame(at, "OLT", "OLT", having=faults)]
    assert olts == sorted(olt_faults)
    for device_id, towers, state in zip(olts, shown, states, strict=True):
        served = set(nodes[device_id].communes_served)
        expected = sorted(b.device_id for b in scenario.bts if b.commune_code in served)
        assert expected and towers.split(", ") == expected
        assert state == ("offline" if device_id == olt_faults[0] else "degraded")


def _storage_alert(url: str, camera: str) -> None:
    async def go() -> None:
        conn = await aconnect(url)
        try:
            alert = NewAlert("camera_storage_low", camera, "camera", "minor", "5 % free",
                             "còn 5 %", {"storage_free_pct": 5.0}, None)  # fmt: skip
            assert await open_alert(conn, alert, datetime.now(UTC)) is not None
        finally:
            await conn.close()

    asyncio.run(go())


def test_camera_page_counts_per_district_and_lists_the_faults(scenario_url, monkeypatch):
    scenario = load_scenario()
    dark, tampered, full = (c.device_id for c in scenario.cameras[:3])
    now = datetime.now(UTC) + timedelta(seconds=1)  # newer than the fixture's history
    set_states(scenario_url, now, {dark: DeviceState.OFFLINE})
    camera_reading(scenario_url, tampered, now, tamper=True, recording=False)
    camera_reading(scenario_url, full, now, storage_free_pct=5.0)
    _storage_alert(scenario_url, full)
    at = app(scenario_url, monkeypatch, "cameras", "en")
    total = len(scenario.cameras)
    value, delta = metric(at, f"Cameras online (of {total:,})")
    assert whole(value) == total - 1 and delta == "1 not online"
    assert metric(at, "Tampered with")[0] == "1"
    assert metric(at, "Storage nearly full")[0] == "1"
    assert len(frame(at, "District", "Cameras")) == 11
    assert sum(map(whole, frame(at, "District", "Cameras"))) == total
    assert sum(map(whole, frame(at, "District", "Online"))) == total - 1
    assert sum(map(whole, frame(at, "District", "Tampered with"))) == 1
    # Recording counts against the cameras with a reading (the fixture's history covers a few):
    # the tampered one also stopped recording.
    reporting = sum(map(whole, frame(at, "District", "Reporting")))
    assert reporting >= 3
    assert metric(at, "Recording") == (f"{reporting - 1:,}", f"of {reporting:,} reporting")
    assert sum(map(whole, frame(at, "District", "Recording"))) == reporting - 1
    assert any(s.value == "Cameras at fault (3)" for s in at.subheader)
    listed = frame(at, "Camera", "State")
    ids = [c.split(" · ")[0] for c in frame(at, "Camera", "Camera")]
    assert sorted(ids) == sorted([dark, tampered, full])
    state = dict(zip(ids, listed, strict=True))
    assert state[dark] == "offline" and state[tampered] == "degraded"
    storage = dict(zip(ids, frame(at, "Camera", "Storage free"), strict=True))
    assert storage[full] == "5 %"
    vi = app(scenario_url, monkeypatch, "cameras", "vi")
    assert any(s.value == "Camera đang sự cố (3)" for s in vi.subheader)


def test_the_fleet_queries_on_timescaledb(tsdb_url):
    """The same named queries where the readings are hypertables."""
    scenario = load_scenario()
    load_scenario_db(tsdb_url)
    now = datetime.now(UTC)
    olt = next(n for n in scenario.broadband if len(n.communes_served) > 1)
    camera = scenario.cameras[0].device_id
    set_states(tsdb_url, now, {olt.device_id: DeviceState.ONLINE, camera: DeviceState.ONLINE})
    olt_reading(tsdb_url, olt.device_id, now, SEQ, uplink_up=False)
    camera_reading(tsdb_url, camera, now, storage_free_pct=7.5)
    with connect(tsdb_url, autocommit=True) as conn:
        communes = broadband.commune_fibre(conn, scope=NATIONAL)
        nodes = {o.device_id: o for o in broadband.olts(conn, now, scope=NATIONAL)}
        found = {c.device_id: c for c in cameras.cameras(conn, now, scope=NATIONAL)}
    assert sum(c.has_fibre for c in communes) == 154
    assert sum(c.households_passed or 0 for c in communes) == sum(
        n.households_passed for n in scenario.broadband
    )
    assert (nodes[olt.device_id].state, nodes[olt.device_id].uplink_up) == ("degraded", False)
    assert nodes[olt.device_id].bts == sorted(
        b.device_id for b in scenario.bts if b.commune_code in olt.communes_served
    )
    assert len(found) == len(scenario.cameras) and found[camera].storage_free_pct == 7.5
