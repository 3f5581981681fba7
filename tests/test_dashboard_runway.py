"""The battery runway on the dashboard (issue 18 part 1) with Streamlit's AppTest, against the
Bình Định scenario in a real PostgreSQL: the map's layer and "next to go dark" list, the alerts
page's ranked panel, a village's and a tower's forecast, the wall's count, in both languages.
The forecaster's tables (0020) are written directly, as the coverage service would leave them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from babel.dates import get_timezone
from streamlit.testing.v1 import AppTest

from dashboard.livemap import STATE_COLOURS
from dashboard.runway_view import BAND_COLOURS, band, clock
from devices.kinds import Kind
from store import places
from store.db import connect
from store.scope import NATIONAL
from tests.support.fleet_history import fleet
from tests.test_dashboard import app, texts
from tests.test_dashboard_wall import wall

ZONE = get_timezone("Asia/Ho_Chi_Minh")
ALERTS_PAGE = "../dashboard/pages/alerts.py"
VILLAGE_PAGE = "../dashboard/pages/village.py"
DEVICE_PAGE = "../dashboard/pages/device.py"
# Half a minute past the whole minute: "in ~20 min" holds for a test that takes under one.
SOON = timedelta(minutes=20, seconds=30)
WITHIN_HOUR = timedelta(minutes=45, seconds=30)
LATER = timedelta(hours=3, minutes=6)


@dataclass(frozen=True, slots=True)
class Runway:
    now: datetime
    villages: dict[str, dict[str, Any]]  # soon, hour, later, unknown → the village row
    fitted: str  # a tower with a fitted forecast
    unknown: str  # a tower on battery with no battery reading

    def at(self, key: str) -> datetime:
        return self.now + {"soon": SOON, "hour": WITHIN_HOUR, "later": LATER}[key]


def hhmm(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%H:%M")


def write_runway(url: str, run: Runway) -> None:
    v, now = run.villages, run.now
    with connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM place_runway")
        conn.execute("DELETE FROM site_runway")
        conn.execute(
            "INSERT INTO site_runway VALUES"
            " (%s, %s, 42.0, %s, 12.5, 'fit', 9, %s, %s, %s, %s),"
            " (%s, %s, NULL, %s, NULL, 'unknown', 0, NULL, NULL, NULL, %s)",
            (run.fitted, now - timedelta(hours=2), now - timedelta(minutes=2), run.at("soon"),
             run.at("soon") - timedelta(minutes=4), run.at("soon") + timedelta(minutes=5), now,
             run.unknown, now - timedelta(hours=1), now - timedelta(minutes=1), now),
        )  # fmt: skip
        rows = [
            ("soon", "any", run.at("soon"), [run.fitted, "BTS-X-2", "BTS-X-3"]),
            ("soon", "viettel", run.at("soon"), [run.fitted]),
            ("soon", "mobifone", now + timedelta(minutes=12, seconds=30), ["BTS-X-2"]),
            ("hour", "any", run.at("hour"), [run.fitted]),
            ("later", "any", run.at("later"), ["BTS-X-4"]),
            ("unknown", "any", None, [run.unknown]),
        ]
        for key, operator, loses, sites in rows:
            early = loses - timedelta(minutes=3) if loses else None
            late = loses + timedelta(minutes=4) if loses else None
            conn.execute(
                "INSERT INTO place_runway VALUES ('village', %s, %s, %s, %s, %s, %s, %s, %s)",
                (v[key]["village_id"], operator, loses, early, late, sites,
                 v[key]["population"], now),
            )  # fmt: skip


@pytest.fixture
def runway(scenario_url: str) -> Iterator[Runway]:
    """Four villages at risk (under 30 min, within the hour, later, unknown) and two towers on
    battery, written fresh for each test so "in ~N min" is measured from its own now."""
    with connect(scenario_url) as conn:
        rows = [v for v in places.villages(conn, scope=NATIONAL) if not v["seed_dead_spot"]]
    picked = dict(zip(("soon", "hour", "later", "unknown"), rows[10:400:100], strict=False))
    bts = fleet()[Kind.BTS]
    run = Runway(datetime.now(UTC), picked, fitted=bts[-1], unknown=bts[-2])
    write_runway(scenario_url, run)
    yield run
    with connect(scenario_url, autocommit=True) as conn:
        conn.execute("DELETE FROM place_runway")
        conn.execute("DELETE FROM site_runway")


def links(at: AppTest) -> list[tuple[str, dict[str, list[str]]]]:
    return [(e.proto.label, parse_qs(e.proto.query_string)) for e in at.get("page_link")]


def layer(at: AppTest, layer_id: str) -> dict[str, Any] | None:
    (chart,) = at.get("deck_gl_json_chart")
    spec = json.loads(chart.proto.json)
    return next((x for x in spec["layers"] if x["id"] == layer_id), None)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def test_map_draws_villages_at_risk_coloured_by_time_left(scenario_url, runway, monkeypatch):
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="en").run())
    drawn = layer(at, "runway")
    assert drawn is not None and drawn["pickable"]
    (chart,) = at.get("deck_gl_json_chart")
    order = [x["id"] for x in json.loads(chart.proto.json)["layers"]]
    # Over the towers (in a town they hid it), under the district names.
    assert order.index("devices-bts") < order.index("runway") == order.index("labels") - 1
    rows = drawn["data"]
    v = runway.villages
    assert [r["id"] for r in rows] == [v[k]["village_id"] for k in ("soon", "hour", "later",
                                                                   "unknown")]  # fmt: skip
    assert [r["colour"] for r in rows] == [BAND_COLOURS[k] for k in ("soon", "hour", "later",
                                                                     "unknown")]  # fmt: skip
    assert not {tuple(c[:3]) for c in BAND_COLOURS.values()} & {
        tuple(c[:3]) for c in STATE_COLOURS.values()
    }, "a village's band is never a tower state's colour"
    soon = rows[0]
    at_soon = hhmm(runway.at("soon"))
    assert soon["line1"] == f"loses all mobile signal at about {at_soon} (in ~20 min)"
    assert soon["line2"] == f"{v['soon']['population']:,} people"
    assert soon["line3"] == f"sites on battery: {runway.fitted}, BTS-X-2, BTS-X-3"
    assert rows[2]["line1"].endswith("(in ~3.1 h)")
    assert rows[3]["line1"] == (
        "will lose all mobile signal when its towers' batteries run out: time unknown"
    )
    assert rows[0]["title"] == f"{v['soon']['name']} · {v['soon']['commune_name']}"


def test_map_lists_the_next_to_go_dark_with_links(scenario_url, runway, monkeypatch):
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="en").run())
    v = runway.villages
    assert "**Next to go dark (4 villages)**" in [m.value for m in at.markdown]
    listed = [(label, q) for label, q in links(at) if q.get("village")]
    order = ("soon", "hour", "later", "unknown")
    assert [q["village"] for _, q in listed] == [[v[k]["village_id"]] for k in order]
    first = listed[0][0]
    assert first.startswith(f"{v['soon']['name']} · {v['soon']['commune_name']}: loses all")
    assert f"at about {hhmm(runway.at('soon'))} (in ~20 min)" in first
    assert first.endswith(f"{v['soon']['population']:,} people")
    assert "time unknown" in listed[3][0] and "in ~" not in listed[3][0]
    legend = texts(at)
    assert "under 30 min" in legend and "30–60 min" in legend and "unknown" in legend


def test_map_in_vietnamese(scenario_url, runway, monkeypatch):
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="vi").run())
    rows = layer(at, "runway")["data"]  # type: ignore[index]
    at_soon = hhmm(runway.at("soon"))
    assert rows[0]["line1"] == f"mất toàn bộ sóng di động lúc khoảng {at_soon} (còn ~20 phút)"
    assert rows[0]["line3"].startswith("trạm đang chạy pin: ")
    assert rows[2]["line1"].endswith("(còn ~3,1 giờ)")  # a decimal comma
    assert "**Sắp mất sóng tiếp theo (4 thôn)**" in [m.value for m in at.markdown]
    assert "dưới 30 phút" in texts(at)


def test_map_without_villages_at_risk_says_so(scenario_url, monkeypatch):
    with connect(scenario_url, autocommit=True) as conn:
        conn.execute("DELETE FROM place_runway")
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="en").run())
    assert layer(at, "runway") is None
    assert "No village has every tower serving it on battery." in [c.value for c in at.caption]


def risk_table(at: AppTest) -> Any:
    return next(d.value for d in at.dataframe if "Sites on battery" in d.value.columns
                or "Trạm đang chạy pin" in d.value.columns)  # fmt: skip


def test_alerts_page_ranks_coverage_at_risk_with_an_operator_filter(
    scenario_url, runway, monkeypatch
):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at = ok(at.switch_page(ALERTS_PAGE).run())
    v = runway.villages
    assert any(e.label == "Coverage at risk (4 villages)" for e in at.expander)
    table = risk_table(at)
    assert list(table["#"]) == [v[k]["village_id"] for k in ("soon", "hour", "later", "unknown")]
    first = table.iloc[0]
    assert first["Loses signal at about"] == hhmm(runway.at("soon"))
    assert first["Time left"] == "in ~20 min" and first["Band"] == "under 30 min"
    early, late = runway.at("soon") - timedelta(minutes=3), runway.at("soon") + timedelta(minutes=4)
    assert first["Forecast range"] == f"{hhmm(early)}–{hhmm(late)}"
    assert first["Population"] == v["soon"]["population"]
    assert first["Sites on battery"] == f"{runway.fitted}, BTS-X-2, BTS-X-3"
    assert list(table["Band"]) == ["under 30 min", "30–60 min", "over 60 min", "unknown"]
    last = table.iloc[3]
    assert last["Loses signal at about"] == "unknown" and last["Time left"] == "unknown"
    at.selectbox(key="runway_operator").select("mobifone").run()
    ok(at)
    table = risk_table(at)
    assert list(table["#"]) == [v["soon"]["village_id"]]
    assert list(table["Time left"]) == ["in ~12 min"]
    at.selectbox(key="runway_operator").select("vinaphone").run()
    assert "No village has every tower serving it on battery." in texts(ok(at))


def test_alerts_panel_in_vietnamese(scenario_url, runway, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="vi")
    at = ok(at.switch_page(ALERTS_PAGE).run())
    assert any(e.label == "Vùng phủ có nguy cơ (4 thôn)" for e in at.expander)
    table = risk_table(at)
    assert list(table["Mức"]) == ["dưới 30 phút", "30–60 phút", "sau 60 phút", "chưa rõ"]
    assert table.iloc[0]["Còn"] == "còn ~20 phút"
    assert at.selectbox(key="runway_operator").value == "any"


def village_page(url: str, monkeypatch: pytest.MonkeyPatch, village: str, lang: str) -> AppTest:
    at = app(url, monkeypatch, "viewer", lang=lang)
    at.switch_page(VILLAGE_PAGE)
    at.query_params["village"] = village
    return ok(at.run())


def test_village_page_says_when_it_loses_signal_and_each_operator(
    scenario_url, runway, monkeypatch
):
    v = runway.villages
    at = village_page(scenario_url, monkeypatch, v["soon"]["village_id"], "en")
    at_soon = hhmm(runway.at("soon"))
    (whole,) = [e.value for e in at.error if "Loses all mobile signal" in e.value]
    assert whole.startswith(f"Loses all mobile signal at about {at_soon} (in ~20 min) · sites")
    operators = [w.value for w in at.warning]
    assert operators[0].startswith("Loses mobifone at about ")
    assert "(in ~12 min)" in operators[0]
    assert operators[1].startswith(f"Loses viettel at about {at_soon} (in ~20 min)")
    unknown = village_page(scenario_url, monkeypatch, v["unknown"]["village_id"], "en")
    assert any("time unknown" in e.value for e in unknown.error)
    assert not any("at about" in e.value for e in unknown.error)
    vi = village_page(scenario_url, monkeypatch, v["soon"]["village_id"], "vi")
    assert any(e.value.startswith(f"Mất toàn bộ sóng di động lúc khoảng {at_soon}")
               for e in vi.error)  # fmt: skip
    assert any(w.value.startswith("Mất sóng viettel lúc khoảng") for w in vi.warning)


def test_village_not_at_risk_shows_no_forecast(scenario_url, runway, monkeypatch):
    with connect(scenario_url) as conn:
        rows = [v for v in places.villages(conn, scope=NATIONAL) if not v["seed_dead_spot"]]
    at_risk = {v["village_id"] for v in runway.villages.values()}
    calm = next(v["village_id"] for v in rows if v["village_id"] not in at_risk)
    at = village_page(scenario_url, monkeypatch, calm, "en")
    assert "at about" not in texts(at) and "time unknown" not in texts(at)


def device_page(url: str, monkeypatch: pytest.MonkeyPatch, device: str, lang: str) -> AppTest:
    at = app(url, monkeypatch, "viewer", lang=lang)
    at.switch_page(DEVICE_PAGE)
    at.query_params["device"] = device
    return ok(at.run())


def metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    return {m.label: (m.value, m.proto.delta) for m in at.metric}


def test_device_page_shows_a_tower_on_battery_its_forecast(scenario_url, runway, monkeypatch):
    at = device_page(scenario_url, monkeypatch, runway.fitted, "en")
    shown = metrics(at)
    assert "Battery runway" in [s.value for s in at.subheader]
    assert shown["Battery"][0] == "42 %"
    assert shown["Drain"] == ("12.5 %/h", "")
    assert shown["Method"] == ("fitted", "9 battery readings")
    assert shown["Dark at about"] == (hhmm(runway.at("soon")), "in ~20 min")
    early = hhmm(runway.at("soon") - timedelta(minutes=4))
    late = hhmm(runway.at("soon") + timedelta(minutes=5))
    assert any(f"range {early}–{late}; band: under 30 min" in e.value for e in at.error)
    vi = metrics(device_page(scenario_url, monkeypatch, runway.fitted, "vi"))
    assert vi["Tốc độ xả"][0] == "12,5 %/giờ" and vi["Cách tính"][0] == "khớp số đo"
    assert vi["Tắt lúc khoảng"][1] == "còn ~20 phút"


def test_device_page_shows_an_unknown_forecast_as_unknown(scenario_url, runway, monkeypatch):
    at = device_page(scenario_url, monkeypatch, runway.unknown, "en")
    shown = metrics(at)
    assert shown["Battery"][0] == "—" and shown["Drain"][0] == "unknown"
    assert shown["Method"][0] == "unknown" and shown["Dark at about"][0] == "unknown"
    assert "No forecast of when it goes dark: the tower has reported no battery reading." in [
        i.value for i in at.info
    ]
    on_mains = device_page(scenario_url, monkeypatch, fleet()[Kind.BTS][100], "en")
    assert "Battery runway" not in [s.value for s in on_mains.subheader]


def test_wall_counts_the_villages_going_dark_within_the_hour(scenario_url, runway, monkeypatch):
    people = runway.villages["soon"]["population"] + runway.villages["hour"]["population"]
    at = ok(wall(app(scenario_url, monkeypatch, "viewer"), lang="en"))
    assert f"About to lose all signal within 60 min: 2 villages, {people:,} people" in [
        e.value for e in at.error
    ]
    vi = ok(wall(app(scenario_url, monkeypatch, "viewer"), lang="vi"))
    grouped = f"{people:,}".replace(",", ".")  # Vietnamese groups thousands with a dot
    line = f"Sắp mất hết sóng trong 60 phút: 2 thôn, {grouped} người"
    assert line in [e.value for e in vi.error]


def test_bands_by_time_left_and_a_clock_that_names_another_day():
    now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 21:00 in the province
    assert band(None, now) == "unknown"
    assert band(now - timedelta(minutes=5), now) == "soon"  # overdue is the most urgent
    assert band(now + timedelta(minutes=29, seconds=59), now) == "soon"
    assert band(now + timedelta(minutes=30), now) == "hour"
    assert band(now + timedelta(minutes=60), now) == "later"
    assert clock(now + timedelta(minutes=30), now) == "21:30"
    assert clock(now + timedelta(hours=4), now) == "01:00 01/12"  # past midnight: the day too
