"""The national map (issue 19, part 2): per-province headline figures from the store, and the
map page's national view drilling into a province, on three provinces loaded in one database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from ioc.scenario import load_into
from store import users
from store.db import connect
from store.migrate import upgrade
from store.national import province_headlines
from store.scope import NATIONAL, Scope
from tests.support.databases import scratch_database

APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")
BAC_GIANG, THAI_NGUYEN, BINH_DINH = 24, 19, 52
PASSWORD = "national-pass-1"


def _ids(conn: psycopg.Connection, kind: str, province: int, n: int) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT device_id FROM devices v JOIN districts d ON d.code = v.district_code"
        " WHERE v.kind = %s AND d.province_code = %s ORDER BY device_id LIMIT %s",
        (kind, province, n),
    )]  # fmt: skip


def _villages(conn: psycopg.Connection, province: int, n: int) -> list[tuple[str, int, int]]:
    return conn.execute(
        "SELECT v.village_id, v.district_code, v.population FROM villages v"
        " JOIN districts d ON d.code = v.district_code WHERE d.province_code = %s"
        " ORDER BY v.village_id LIMIT %s",
        (province, n),
    ).fetchall()


def _set_by_hand(conn: psycopg.Connection) -> dict[str, object]:
    """Bắc Giang: 3 sites offline, 2 online, a camera offline, 2 dead-spot villages and a
    critical alert; Bình Định: 1 site offline, a broadband node offline, a major alert."""
    now = datetime.now(UTC)
    conn.execute("UPDATE devices SET state = 'unknown'")
    bg_sites = _ids(conn, "bts", BAC_GIANG, 5)
    bd_sites = _ids(conn, "bts", BINH_DINH, 1)
    set_state = "UPDATE devices SET state = %s WHERE device_id = ANY (%s)"
    conn.execute(set_state, ("offline", bg_sites[:3] + bd_sites))
    conn.execute(set_state, ("online", bg_sites[3:]))
    conn.execute(set_state, ("offline", _ids(conn, "camera", BAC_GIANG, 1)))
    conn.execute(set_state, ("offline", _ids(conn, "broadband", BINH_DINH, 1)))
    rows = [(v, d, p, dead) for (v, d, p), dead in
            zip(_villages(conn, BAC_GIANG, 3), (True, True, False), strict=True)]  # fmt: skip
    rows += [(v, d, p, False) for v, d, p in _villages(conn, BINH_DINH, 2)]
    for village, district, population, dead in rows:
        conn.execute(
            "INSERT INTO coverage_places (place_kind, place_id, name, district_code,"
            " commune_code, population, operators, measured, dead_spot, levels, since,"
            " updated_at) VALUES ('village', %s, %s, %s, 0, %s, %s, '{}', %s, '{}', %s, %s)",
            (village, village, district, population, [] if dead else ["viettel"], dead, now, now),
        )
    seat: dict[int, int] = dict(conn.execute(
        "SELECT province_code, min(code) FROM districts GROUP BY province_code"
    ).fetchall())  # fmt: skip
    for subject, severity, province, state in (
        ("a", "critical", BAC_GIANG, "open"),
        ("b", "major", BINH_DINH, "acknowledged"),
        ("c", "critical", BINH_DINH, "resolved"),  # resolved: not counted
    ):
        conn.execute(
            "INSERT INTO alerts (rule, subject, subject_kind, severity, state, summary,"
            " summary_vi, district_code, opened_at, updated_at)"
            " VALUES ('test', %s, 'district', %s, %s, 's', 's', %s, %s, %s)",
            (subject, severity, state, seat[province], now, now),
        )
    return {"dead_population": sum(p for _, _, p, dead in rows if dead)}


@pytest.fixture(scope="module")
def three_provinces(pg_server_url: str) -> Iterator[tuple[str, dict[str, object]]]:
    with scratch_database(pg_server_url) as url:
        with connect(url, autocommit=True) as conn:
            upgrade(conn)
            load_into(conn, "Bắc Giang, Thái Nguyên, Bình Định")
            facts = _set_by_hand(conn)
            users.add_user(conn, "two", PASSWORD, "viewer", provinces=[BAC_GIANG, BINH_DINH])
            users.add_user(conn, "bg", PASSWORD, "viewer", provinces=[BAC_GIANG])
        yield url, facts


def test_province_figures_are_each_provinces_own(three_provinces):
    url, facts = three_provinces
    with connect(url) as conn:
        rows = {r.code: r for r in province_headlines(conn, scope=NATIONAL)}
        sites: dict[int, int] = dict(conn.execute(
            "SELECT d.province_code, count(*) FROM devices v JOIN districts d"
            " ON d.code = v.district_code WHERE v.kind = 'bts' GROUP BY 1"
        ).fetchall())  # fmt: skip
        scoped = province_headlines(conn, scope=Scope.of([BAC_GIANG]))
    assert set(rows) == {BAC_GIANG, THAI_NGUYEN, BINH_DINH}
    bg, tn, bd = rows[BAC_GIANG], rows[THAI_NGUYEN], rows[BINH_DINH]
    assert bg.name == "Tỉnh Bắc Giang" and {r.code: r.sites for r in rows.values()} == sites
    assert (bg.sites_online, bg.sites_offline, bg.sites_unknown) == (2, 3, bg.sites - 5)
    assert (bg.cameras_offline, bg.broadband_offline) == (1, 0)
    assert (bg.dead_spot_villages, bg.dead_spot_population) == (2, facts["dead_population"])
    assert (bg.alerts_critical, bg.alerts_major) == (1, 0)
    assert (bd.sites_offline, bd.broadband_offline, bd.cameras_offline) == (1, 1, 0)
    assert (bd.dead_spot_villages, bd.alerts_critical, bd.alerts_major) == (0, 0, 1)
    assert (tn.sites_offline, tn.dead_spot_villages, tn.alerts_critical) == (0, 0, 0)
    assert tn.sites_unknown == tn.sites
    # A Bắc Giang scope sees Bắc Giang alone.
    assert [r.code for r in scoped] == [BAC_GIANG] and scoped[0] == bg


def _app(url: str, monkeypatch: pytest.MonkeyPatch, username: str) -> AppTest:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["lang"] = "en"
    with connect(url, autocommit=True) as conn:
        session = users.login(conn, username, PASSWORD)
    assert session is not None
    at.session_state["session_token"] = session.token
    return at


def _drawn_devices(at: AppTest) -> set[str]:
    import json

    spec = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    return {row["id"] for layer in spec["layers"] if str(layer["id"]).startswith("devices-")
            for row in layer["data"]}  # fmt: skip


def _provinces_of(url: str, ids: set[str]) -> set[int]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT d.province_code FROM devices v JOIN districts d"
            " ON d.code = v.district_code WHERE v.device_id = ANY (%s)",
            (list(ids),),
        ).fetchall()
    return {r[0] for r in rows}


def test_map_opens_on_the_provinces_and_drills_into_one(three_provinces, monkeypatch):
    url, _ = three_provinces
    at = _app(url, monkeypatch, "two").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["Province"]) == ["Tỉnh Bình Định", "Tỉnh Bắc Giang"]
    assert _provinces_of(url, _drawn_devices(at)) == {BAC_GIANG, BINH_DINH}
    picker = at.selectbox(key="map_province")
    assert picker.options[0] == "All provinces" and len(picker.options) == 3
    picker.set_value(BAC_GIANG).run()
    assert not at.exception, at.exception
    assert _provinces_of(url, _drawn_devices(at)) == {BAC_GIANG}
    assert at.query_params["province"] == str(BAC_GIANG)
    assert not at.dataframe  # the provinces' table is the national view's


def test_a_link_opens_a_province_and_one_province_has_no_selector(three_provinces, monkeypatch):
    url, _ = three_provinces
    at = _app(url, monkeypatch, "two")
    at.query_params["province"] = str(BINH_DINH)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="map_province").value == BINH_DINH
    assert _provinces_of(url, _drawn_devices(at)) == {BINH_DINH}
    single = _app(url, monkeypatch, "bg").run()
    assert not single.exception, single.exception
    assert not [s for s in single.selectbox if s.key == "map_province"]
    assert _provinces_of(url, _drawn_devices(single)) == {BAC_GIANG}
