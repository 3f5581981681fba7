"""The availability report (issue 18 part 4) on a hand-built coverage history with known answers,
on real PostgreSQL (and TimescaleDB where IOC_TEST_TSDB_URL is set): the SQL's interval
arithmetic, clipping at both ends, structural dead spots, per operator, the sites' shares, the
CLI and its files, the dashboard page in both languages.

The scene (Asia/Ho_Chi_Minh, 30 Nov 2026, period 10:00-12:00):
- V1, 500 people, district 1: viettel+mobifone at 08:00; nothing at 10:30 (BTS-A viettel and
  BTS-B mobifone lost); viettel again at 11:00. Dark 30 min: 15,000 people x minutes.
- V2, 200 people, district 1: viettel at 08:00; nothing from 09:00 (BTS-C), a second dark row
  at 09:30 (same outage); viettel at 10:20. Clipped at the start: 20 min, 4,000.
- V3, 100 people, district 2: mobifone at 08:00; nothing from 11:50 (BTS-D) to 12:30. Clipped
  at the end: 10 min, 1,000.
- V4, 1,000 people, district 1: never any signal: a structural dead spot.
- V5, 300 people, district 1: viettel+mobifone throughout; at 10:40 a row with no operator
  and no dead spot (it rested on towers never heard from, as at a service's start-up) says
  nothing: no outage.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl  # type: ignore[import-untyped]
import pandas as pd
import psycopg
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from devices.kinds import Operator
from ioc.cli import app as ioc_app
from processing.coverage.availability import (
    PeriodError,
    availability_share,
    kept_period,
    parse_moment,
)
from store import users
from store.availability import Availability, availability, history_span
from store.db import connect
from store.migrate import upgrade
from store.scope import NATIONAL

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = datetime(2026, 11, 30, tzinfo=ZONE)
T0, T1 = DAY + timedelta(hours=10), DAY + timedelta(hours=12)
OPERATORS = [o.value for o in Operator]
APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")
PASSWORD = "viewer-pass-1"


def at(hh_mm: str) -> datetime:
    h, m = hh_mm.split(":")
    return DAY + timedelta(hours=int(h), minutes=int(m))


VILLAGES = {  # id: (name, district, commune, population)
    "V1": ("Thôn Một", 1, 11, 500),
    "V2": ("Thôn Hai", 1, 11, 200),
    "V3": ("Thôn Ba", 2, 21, 100),
    "V4": ("Thôn Bốn", 1, 12, 1000),
    "V5": ("Thôn Năm", 1, 12, 300),
}
TOWERS = {"BTS-A": ("viettel", 1), "BTS-B": ("mobifone", 1), "BTS-C": ("viettel", 1),
          "BTS-D": ("mobifone", 2)}  # fmt: skip
HISTORY = [  # (time, village, operators)
    ("08:00", "V1", ["viettel", "mobifone"]),
    ("10:30", "V1", []),
    ("11:00", "V1", ["viettel"]),
    ("08:00", "V2", ["viettel"]),
    ("09:00", "V2", []),
    ("09:30", "V2", []),
    ("10:20", "V2", ["viettel"]),
    ("08:00", "V3", ["mobifone"]),
    ("11:50", "V3", []),
    ("12:30", "V3", ["mobifone"]),
    ("08:00", "V4", []),
    ("08:00", "V5", ["viettel", "mobifone"]),
    ("10:45", "V5", ["viettel", "mobifone"]),
]
UNKNOWN = [("10:40", "V5")]  # (time, village): no operator, not a dead spot
EVENTS = [  # (time, village, kind, operators lost, operators now, towers)
    ("10:30", "V1", "lost", ["viettel", "mobifone"], [], ["BTS-A", "BTS-B"]),
    ("11:00", "V1", "restored", [], ["viettel"], ["BTS-A"]),
    ("09:00", "V2", "lost", ["viettel"], [], ["BTS-C"]),
    ("10:20", "V2", "restored", [], ["viettel"], ["BTS-C"]),
    ("11:50", "V3", "lost", ["mobifone"], [], ["BTS-D"]),
    ("12:30", "V3", "restored", [], ["mobifone"], ["BTS-D"]),
]


def build_scene(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn)
        for code, name in ((1, "Huyện Một"), (2, "Huyện Hai")):
            conn.execute(
                "INSERT INTO districts VALUES (%s, %s, %s, 14.0, 109.0, false, '[]')",
                (code, name, name),
            )
        for code, district in ((11, 1), (12, 1), (21, 2)):
            conn.execute(
                "INSERT INTO communes VALUES (%s, %s, %s, 'xã', 14.0, 109.0, 1000, false)",
                (code, f"Xã {code}", district),
            )
        for vid, (name, district, commune, population) in VILLAGES.items():
            conn.execute(
                "INSERT INTO coverage_places (place_kind, place_id, name, district_code,"
                " commune_code, population, operators, measured, dead_spot, levels, since,"
                " updated_at) VALUES ('village', %s, %s, %s, %s, %s, '{}', '{}', false, '{}',"
                " %s, %s)",
                (vid, name, district, commune, population, T0, T0),
            )
        for device_id, (operator, district) in TOWERS.items():
            conn.execute(
                "INSERT INTO devices (device_id, kind, operator, district_code)"
                " VALUES (%s, 'bts', %s, %s)",
                (device_id, operator, district),
            )
        for hh_mm, vid, ops in HISTORY:
            conn.execute(
                "INSERT INTO coverage_history (ts, place_kind, place_id, operators, measured,"
                " dead_spot) VALUES (%s, 'village', %s, %s, '{}', %s)",
                (at(hh_mm), vid, ops, not ops),
            )
        for hh_mm, vid in UNKNOWN:
            conn.execute(
                "INSERT INTO coverage_history (ts, place_kind, place_id, operators, measured,"
                " dead_spot) VALUES (%s, 'village', %s, '{}', '{}', false)",
                (at(hh_mm), vid),
            )
        for hh_mm, vid, kind, lost, now, towers in EVENTS:
            conn.execute(
                "INSERT INTO coverage_events (ts, village_id, kind, operators_lost,"
                " operators_now, towers, population) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (at(hh_mm), vid, kind, lost, now, towers, VILLAGES[vid][3]),
            )
        users.add_user(conn, "viewer", PASSWORD, "viewer", display_name="Test viewer")


@pytest.fixture(params=["postgresql", "timescaledb"])
def scene_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The scene on plain PostgreSQL, and on TimescaleDB where one is reachable."""
    fixture = "database_url" if request.param == "postgresql" else "tsdb_url"
    url = request.getfixturevalue(fixture)
    build_scene(url)
    yield url


def report(
    url: str, by: str = "district", start: datetime = T0, end: datetime = T1
) -> Availability:
    with connect(url) as conn:
        return availability(conn, start, end, by=by, operators=OPERATORS, scope=NATIONAL)


def test_minutes_and_people_minutes_per_district_clipped_at_both_ends(scene_url: str) -> None:
    r = report(scene_url)
    by_key = {g.key: g for g in r.groups}
    one, two = by_key["1"], by_key["2"]
    assert (one.name, one.villages_hit, one.outages) == ("Huyện Một", 2, 2)
    assert one.minutes == pytest.approx(30 + 20)  # V1 whole, V2 from the period's start
    assert one.people_minutes == pytest.approx(500 * 30 + 200 * 20)
    assert two.minutes == pytest.approx(10)  # V3 up to the period's end
    assert two.people_minutes == pytest.approx(1_000)
    # V4 never had signal: apart, not in the totals nor in the population reckoned on
    assert (one.dead_spots, one.dead_spot_population) == (1, 1000)
    assert (one.villages, one.population) == (3, 500 + 200 + 300)
    assert [(d.village_id, d.population) for d in r.dead_spots] == [("V4", 1000)]
    period = kept_period(T0, T1, (at("08:00"), at("12:30")), T1 + timedelta(days=1))
    assert availability_share(one, period) == pytest.approx(1 - 19_000 / (1000 * 120))


def test_a_village_dark_30_minutes_with_500_people_loses_15000(scene_url: str) -> None:
    worst = report(scene_url).villages
    assert [(v.village_id, round(v.minutes), round(v.people_minutes)) for v in worst] == [
        ("V1", 30, 15_000),
        ("V2", 20, 4_000),
        ("V3", 10, 1_000),
    ]
    assert (worst[0].name, worst[0].commune, worst[0].district) == (
        "Thôn Một",
        "Xã 11",
        "Huyện Một",
    )


def test_sites_share_each_outage_evenly(scene_url: str) -> None:
    sites = {s.device_id: s for s in report(scene_url).sites}
    assert {k: round(s.people_minutes) for k, s in sites.items()} == {
        "BTS-A": 7_500, "BTS-B": 7_500, "BTS-C": 4_000, "BTS-D": 1_000,
    }  # fmt: skip
    assert (sites["BTS-D"].operator, sites["BTS-D"].district) == ("mobifone", "Huyện Hai")
    # a run of two dark rows (V2 at 09:00 and 09:30) is one outage, caused at 09:00
    assert sites["BTS-C"].outages == 1


def test_per_operator_counts_each_operators_own_loss_and_towers(scene_url: str) -> None:
    r = report(scene_url, by="operator")
    by_op = {g.key: g for g in r.groups}
    viettel, mobifone = by_op["viettel"], by_op["mobifone"]
    assert viettel.people_minutes == pytest.approx(500 * 30 + 200 * 20)
    assert mobifone.people_minutes == pytest.approx(500 * 90 + 100 * 10)  # V1 till the end
    # V3 never had viettel, V2 and V4 never had mobifone: structural for that operator
    assert (viettel.dead_spots, mobifone.dead_spots) == (2, 2)
    assert by_op["vinaphone"].dead_spots == 5 and by_op["vinaphone"].people_minutes == 0
    sites = {s.device_id: round(s.people_minutes) for s in r.sites}
    # V1's event named both towers; each operator's outage goes to its own tower only
    assert sites == {"BTS-B": 45_000, "BTS-A": 15_000, "BTS-C": 4_000, "BTS-D": 1_000}


def test_commune_grouping_and_the_state_before_the_period(scene_url: str) -> None:
    by_key = {g.key: g for g in report(scene_url, by="commune").groups}
    assert by_key["11"].name == "Xã 11, Huyện Một"
    assert by_key["11"].people_minutes == pytest.approx(19_000)
    # a period inside V1's outage: its state comes from the 10:30 row before it
    inside = report(scene_url, start=at("10:40"), end=at("10:50"))
    assert [(v.village_id, round(v.minutes)) for v in inside.villages] == [("V1", 10)]


def test_the_period_must_be_one_the_history_tells_about(database_url: str) -> None:
    build_scene(database_url)
    with connect(database_url) as conn:
        kept = history_span(conn, scope=NATIONAL)
    assert kept == (at("08:00"), at("12:30"))
    now = at("12:00")
    cases = [
        (T1, T0, "order"),
        (DAY - timedelta(days=2), DAY - timedelta(days=1), "before_history"),
        (now + timedelta(hours=1), now + timedelta(hours=2), "future"),
    ]
    for start, end, reason in cases:
        with pytest.raises(PeriodError) as err:
            kept_period(start, end, kept, now)
        assert err.value.reason == reason
    with pytest.raises(PeriodError):
        kept_period(T0, T1, None, now)
    # cut to the history kept and to now
    cut = kept_period(DAY, DAY + timedelta(days=1), kept, now)
    assert (cut.start, cut.end) == (at("08:00"), now)
    assert parse_moment("2026-11-30T10:00", "--from") == T0
    assert parse_moment("2026-11-30T03:00+00:00", "--from") == T0
    with pytest.raises(ValueError, match="--from: '30/11' is not a date"):
        parse_moment("30/11", "--from")


def ioc(url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    result = CliRunner().invoke(ioc_app, ["coverage", "availability", *args])
    return result.exit_code, result.output


def test_cli_prints_the_report_and_writes_csv_and_xlsx(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    build_scene(database_url)
    csv, xlsx = tmp_path / "avail.csv", tmp_path / "avail.xlsx"
    code, out = ioc(database_url, monkeypatch, "--from", "2026-11-30T10:00",
                    "--to", "2026-11-30T12:00", "--csv", str(csv), "--xlsx", str(xlsx))  # fmt: skip
    assert code == 0, out
    assert "Huyện Một" in out and "19,000" in out
    assert "Thôn Một (Xã 11, Huyện Một), 500 people: 30 min" in out
    assert "Dead spots" in out and "1 villages, 1,000 people" in out
    groups = pd.read_csv(csv, encoding="utf-8-sig")
    assert groups.loc[groups["group"] == "Huyện Một", "people_minutes"].item() == 19_000
    villages = pd.read_csv(tmp_path / "avail-villages.csv", encoding="utf-8-sig")
    assert list(villages["village_id"]) == ["V1", "V2", "V3"]
    sites = pd.read_csv(tmp_path / "avail-sites.csv", encoding="utf-8-sig")
    assert set(sites["device_id"]) == {"BTS-A", "BTS-B", "BTS-C", "BTS-D"}
    book = openpyxl.load_workbook(io.BytesIO(xlsx.read_bytes()))
    assert book.sheetnames == ["groups", "villages", "sites", "dead_spots"]
    code, out = ioc(database_url, monkeypatch, "--from", "2026-11-30", "--to", "2026-12-01",
                    "--by", "operator")  # fmt: skip
    assert code == 0, out
    assert all(op in out for op in OPERATORS)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--from", "2026-11-30T12:00", "--to", "2026-11-30T10:00"], "must come after --from"),
        (["--from", "yesterday", "--to", "2026-11-30"], "--from: 'yesterday' is not a date"),
        (["--from", "2025-01-01", "--to", "2025-01-02"], "before the coverage history kept"),
    ],
)
def test_cli_bad_input_is_one_clear_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    build_scene(database_url)
    code, out = ioc(database_url, monkeypatch, *args)
    assert code == 2
    assert said in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def page(url: str, monkeypatch: pytest.MonkeyPatch, lang: str) -> AppTest:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    with connect(url, autocommit=True) as conn:
        session = users.login(conn, "viewer", PASSWORD)
    assert session is not None
    app = AppTest.from_file(APP, default_timeout=60)
    app.session_state["lang"] = lang
    app.session_state["session_token"] = session.token
    app.switch_page("../dashboard/pages/availability.py").run()
    assert not app.exception, app.exception
    return app


def pick_period(app: AppTest) -> AppTest:
    start, end = app.date_input
    start.set_value(DAY.date())
    end.set_value(DAY.date())
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.mark.parametrize(("lang", "heading", "people"), [
    ("vi", "Thôn tệ nhất", "Người × phút"), ("en", "Worst villages", "People × minutes"),
])  # fmt: skip
def test_page_shows_the_tables_and_downloads_in_both_languages(
    database_url: str, monkeypatch: pytest.MonkeyPatch, lang: str, heading: str, people: str
) -> None:
    build_scene(database_url)
    app = pick_period(page(database_url, monkeypatch, lang))
    assert heading in [s.value for s in app.subheader]
    groups = app.dataframe[0].value
    assert people in groups.columns
    # the whole day: V1 30 min, V2 80 min (09:00-10:20), V3 40 min (11:50-12:30)
    assert groups[people].sum() == pytest.approx(500 * 30 + 200 * 80 + 100 * 40)
    downloads = app.get("download_button")
    assert len(downloads) == 5  # one XLSX with every table, one CSV per table
    app.radio(key="avail_by").set_value("operator").run()
    assert not app.exception, app.exception
    ops = app.dataframe[0].value
    assert set(ops.iloc[:, 0]) == set(OPERATORS)
    # an operator no village ever had: no availability to reckon (an empty cell, not "None")
    share = ops.iloc[:, 7]
    assert share.dtype.kind == "f" and share[ops.iloc[:, 0] == "vinaphone"].isna().all()


def test_page_says_why_a_period_has_no_report(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_scene(database_url)
    app = page(database_url, monkeypatch, "en")
    start, end = app.date_input
    start.set_value(DAY.date())
    end.set_value((DAY - timedelta(days=1)).date())
    app.run()
    assert [e.value for e in app.error] and not app.dataframe
