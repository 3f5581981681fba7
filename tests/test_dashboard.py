"""The dashboard's pages with Streamlit's AppTest, against a real PostgreSQL loaded with the
Bình Định scenario, a day of telemetry for part of the fleet, alerts, rejects and users."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import coverage_view
from dashboard.actions import acknowledge_alert
from devices.kinds import DeviceState, Kind
from store import alerts, coverage, readings, registry, users
from store.alert_outbox import mark_failed
from store.db import aconnect, connect
from store.scope import NATIONAL
from store.users import PermissionDenied, Role
from tests.fixtures.dashboard import PASSWORDS
from tests.support.fleet_history import fleet, generate_history, load_scenario_db, set_states
from tests.support.outbox import queue_alert

# The shell's entry script, as `ioc dashboard` runs it; pages are relative to it.
APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")


def token(url: str, role: str) -> str:
    with connect(url, autocommit=True) as conn:
        session = users.login(conn, role, PASSWORDS[role])
    assert session is not None
    return session.token


def app(url: str, monkeypatch: pytest.MonkeyPatch, role: str | None, lang: str = "vi") -> AppTest:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = lang
    if role:
        at.session_state["session_token"] = token(url, role)
    return at


def pick(at: AppTest, alert_id: int) -> None:
    """Select an alert by its id (format_func runs in the app's session, not here)."""
    box = at.selectbox(key="alerts_pick")
    index = next(i for i, o in enumerate(box.options) if o.startswith(f"#{alert_id} "))
    box.select_index(index).run()


def texts(at: AppTest) -> str:
    parts = [m.label + " " + str(m.value) for m in at.metric]
    for kind in ("markdown", "caption", "info", "error", "success", "warning", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_login_form_then_map_with_headline(scenario_url, alert_ids, monkeypatch):
    at = app(scenario_url, monkeypatch, None).run()
    assert not at.exception
    assert not at.metric, "nothing but the login form before logging in"
    at.text_input(key="login_username").input("operator")
    at.text_input(key="login_password").input("wrong password")
    at.button[0].click().run()
    assert "Sai tên đăng nhập hoặc mật khẩu." in [e.value for e in at.error]
    at.text_input(key="login_password").input(PASSWORDS["operator"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    bts = next(m for m in at.metric if m.label.startswith("Trạm BTS"))
    # Vietnamese grouping uses a dot: 1.723 towers, 40 of them offline.
    assert bts.label == "Trạm BTS hoạt động (trên 1.723)"
    assert bts.value == "1.683"
    alerts_metric = next(m for m in at.metric if m.label == "Cảnh báo đang mở")
    assert int(alerts_metric.value) == len(alert_ids)  # the two the fixture opened


def test_english_labels_and_number_format(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en").run()
    assert not at.exception, at.exception
    bts = next(m for m in at.metric if m.label.startswith("BTS"))
    assert bts.label == "BTS online (of 1,723)"
    assert bts.value == "1,683"
    assert "Village, road and district positions are synthetic" in texts(at)


def test_expired_session_goes_back_to_login(scenario_url, monkeypatch):
    with connect(scenario_url, autocommit=True) as conn:
        old = users.login(
            conn, "operator", PASSWORDS["operator"], ttl=timedelta(hours=1),
            now=datetime.now(UTC) - timedelta(hours=2),
        )  # fmt: skip
    assert old is not None
    at = app(scenario_url, monkeypatch, None)
    at.session_state["session_token"] = old.token
    at.run()
    assert not at.metric
    assert "Phiên làm việc đã hết hạn, hãy đăng nhập lại." in [w.value for w in at.warning]


def test_operator_acknowledges_with_comment(scenario_url, alert_ids, monkeypatch):
    at = app(scenario_url, monkeypatch, "operator", lang="en")
    at.switch_page("../dashboard/pages/alerts.py").run()
    assert not at.exception, at.exception
    pick(at, alert_ids[0])
    at.text_input(key="ack_comment").input("field team sent")
    at.button(key="FormSubmitter:ack-Acknowledge").click().run()
    assert not at.exception, at.exception
    assert f"Alert #{alert_ids[0]} acknowledged." in [s.value for s in at.success]
    with connect(scenario_url) as conn:
        alert = alerts.get_alert(conn, alert_ids[0], scope=NATIONAL)
    assert (alert.state, alert.acknowledged_by, alert.ack_comment) == (
        "acknowledged", "operator", "field team sent"
    )  # fmt: skip


def test_viewer_is_refused_even_when_the_form_is_submitted(scenario_url, alert_ids, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/alerts.py").run()
    button = at.button(key="FormSubmitter:ack-Acknowledge")
    assert button.disabled, "the viewer sees a disabled button"
    assert "The viewer role cannot acknowledge or silence alerts." in [i.value for i in at.info]
    # A crafted request: the submit arrives although the browser showed it disabled.
    pick(at, alert_ids[0])
    forged = at.button(key="FormSubmitter:ack-Acknowledge")
    assert forged.disabled
    forged.proto.disabled = False  # the client ignores the disabled state, as a forger would
    forged.click().run()
    # Streamlit discards input to a widget the server rendered disabled; and were it to pass,
    # acknowledge_alert checks the role itself (the next test).
    assert not at.success and not at.exception
    with connect(scenario_url) as conn:
        assert alerts.get_alert(conn, alert_ids[0], scope=NATIONAL).state == "open"


def test_acknowledge_checks_the_role_in_the_database(scenario_url, alert_ids):
    viewer, operator = token(scenario_url, "viewer"), token(scenario_url, "operator")
    with connect(scenario_url, autocommit=True) as conn:
        with pytest.raises(PermissionDenied):
            acknowledge_alert(conn, viewer, alert_ids[1], "not mine to ack")
        with pytest.raises(PermissionDenied):
            acknowledge_alert(conn, "forged-token", alert_ids[1], None)
        assert alerts.get_alert(conn, alert_ids[1], scope=NATIONAL).state == "open"
        # Demoting the operator takes effect on their next action, not at their next login.
        users.add_user(conn, "operator", PASSWORDS["operator"], "viewer", replace=True)
        with pytest.raises(PermissionDenied):
            acknowledge_alert(conn, operator, alert_ids[1], None)
        users.add_user(conn, "operator", PASSWORDS["operator"], "operator", replace=True)
        operator = token(scenario_url, "operator")
        done = acknowledge_alert(conn, operator, alert_ids[1], "ok")
    assert done.state == "acknowledged"


def test_device_page_shows_rollups_history_and_alerts(scenario_url, alert_ids, monkeypatch):
    device_id = fleet()[Kind.BTS][0]
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/device.py")
    at.query_params["id"] = device_id
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.endswith(device_id)
    state = next(m for m in at.metric if m.label == "State")
    assert state.value == "offline"
    captions = texts(at)
    # One chart per rolled-up metric, labelled from its declaration in devices/metrics.py.
    assert "Battery charge (%)" in captions and "Cabinet temperature (°C)" in captions
    charts = at.get("vega_lite_chart")
    assert len(charts) == 5  # battery, temperature, users, PRB, backhaul
    history = at.dataframe[-1].value
    assert list(history["State"]) == ["offline"]
    assert any(
        getattr(link, "label", "").startswith(f"#{alert_ids[0]}") for link in at.get("page_link")
    )


def test_ingest_page_lists_rejects_with_payloads(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/ingest.py").run()
    assert not at.exception, at.exception
    counts = at.dataframe[0].value
    assert counts["Count"].sum() == 12
    assert set(counts["Reason"]) >= {"malformed_json", "schema", "out_of_range"}
    samples = at.dataframe[1].value
    assert len(samples) >= 1 and samples["payload"].str.len().min() > 0


def test_users_page_is_for_admins(scenario_url, monkeypatch):
    viewer = app(scenario_url, monkeypatch, "viewer", lang="en").run()
    assert not viewer.text_input, "a viewer does not get the users page"
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        viewer.switch_page("../dashboard/pages/users.py")  # nor a way to it
    admin = app(scenario_url, monkeypatch, "admin", lang="en")
    admin.switch_page("../dashboard/pages/users.py").run()
    assert not admin.exception, admin.exception
    admin.text_input[0].input("nightshift")
    admin.text_input[1].input("Night Shift")
    admin.selectbox[0].select("operator")
    admin.text_input[2].input("night-pass-1")
    admin.button(key="FormSubmitter:add_user-Add a user").click().run()  # not the sidebar's
    assert "User nightshift saved." in [s.value for s in admin.success]
    with connect(scenario_url) as conn:
        assert {u.username: u.role for u in users.list_users(conn, scope=NATIONAL)}[
            "nightshift"
        ] is Role.OPERATOR


def test_map_headline_counts_dead_spots_and_coverage(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en").run()
    assert not at.exception, at.exception
    dead = next(m for m in at.metric if m.label == "Villages without signal")
    assert dead.value == "5"  # the seed documents' five villages
    centres = next(m for m in at.metric if m.label == "Commune centres covered")
    assert centres.value == "100.0%"


def test_coverage_report_tables_and_exports(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/coverage.py").run()
    assert not at.exception, at.exception
    by_district, by_commune, critical = (d.value for d in at.dataframe)
    assert len(by_district) == 11 and by_district["Dead spots"].sum() == 5
    assert len(by_commune) == 155 and by_commune["Commune centre covered"].all()
    dead = by_district.loc[by_district["Dead spots"] > 0, "District"]
    assert set(dead) == {"Huyện Vĩnh Thạnh", "Huyện Vân Canh"}
    assert list(critical["Villages left without any signal"]) == [2]
    downloads = at.get("download_button")
    assert len(downloads) == 4  # one XLSX with every table, one CSV per table


def test_device_page_shows_n1_criticality(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/device.py")
    at.query_params["id"] = fleet()[Kind.BTS][0]
    at.run()
    assert any("N-1 critical: without this tower 2 villages (850 people)" in e.value
               for e in at.error)  # fmt: skip


def test_xlsx_export_has_one_sheet_per_table(scenario_url):
    import io

    import openpyxl  # type: ignore[import-untyped]

    with connect(scenario_url) as conn:
        snap = coverage_view.snapshot(conn, scope=NATIONAL)
        assert snap is not None
        tables = coverage_view.report(snap, coverage.critical_top(conn, 50, scope=NATIONAL))
    book = openpyxl.load_workbook(io.BytesIO(coverage_view.to_xlsx(tables)))
    assert book.sheetnames == ["Theo huyện", "Theo xã", "Trạm then chốt N-1"]
    districts = list(book["Theo huyện"].iter_rows(values_only=True))
    assert districts[0][:3] == ("Huyện", "Số thôn", "Thôn lõm sóng") and len(districts) == 12


@pytest.mark.timescale
def test_page_queries_on_timescaledb(tsdb_url):
    """The same named queries on hypertables and continuous aggregates."""
    now = datetime.now(UTC)
    load_scenario_db(tsdb_url)
    tower = fleet()[Kind.BTS][0]
    set_states(tsdb_url, now - timedelta(minutes=5), {tower: DeviceState.ONLINE}, rejects=3)
    rows = generate_history(tsdb_url, now, days=2, interval_s=900, limit=3)
    with connect(tsdb_url, autocommit=True) as conn:
        assert readings.refresh_rollups(conn) == 8  # 1m and 1h for each of the four reading tables
        hourly = readings.rollup_series(
            conn, Kind.BTS, tower, now - timedelta(days=2), now, scope=NATIONAL
        )
        minutes = readings.rollup_series(
            conn, Kind.BTS, tower, now - timedelta(hours=6), now, scope=NATIONAL
        )
        devices = {d.device_id: d for d in registry.map_devices(conn, now, scope=NATIONAL)}
        health = readings.ingest_health(conn, now, window=timedelta(hours=1))
        series = readings.ingest_series(conn, now)
    assert rows == 3 * 3 * 192
    # Buckets that start inside the range: the first, partial hour falls outside it.
    assert 47 <= len(hourly) <= 49 and 188 <= sum(h["readings"] for h in hourly) <= 192
    assert 23 <= len(minutes) <= 25  # one reading every 15 minutes
    latest = devices[tower].latest
    assert devices[tower].state == "online" and latest is not None
    assert latest["power_source"] in ("mains", "battery")
    assert health.rejects_last_hour == 3 and health.messages_per_s > 0
    assert sum(s["messages"] for s in series) > 0


def test_alerts_page_shows_the_outbox_and_its_dead_letters(scenario_url, monkeypatch):
    now = datetime.now(UTC)
    alert_id = asyncio.run(queue_alert(scenario_url, ["webhook:gone"], now, subject="CAM-DEAD"))
    with connect(scenario_url, autocommit=True) as conn:
        [(outbox_id,)] = conn.execute(
            "SELECT outbox_id FROM alert_outbox WHERE alert_id = %s", (alert_id,)
        ).fetchall()
    asyncio.run(_given_up(scenario_url, outbox_id, now))
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page("../dashboard/pages/alerts.py").run()
    assert not at.exception, at.exception
    [health] = [e for e in at.expander if e.label.startswith("Delivery")]
    assert health.label == "Delivery: 1 given up (never retried)"
    tables = [d.value for d in health.dataframe]
    [channel] = [r for r in tables[0].to_dict("records") if r["Channel"] == "webhook:gone"]
    assert channel["Given up"] == 1  # (other tests' transitions may wait there too)
    assert tables[1].to_dict("records")[0]["#"] == alert_id
    assert tables[1].to_dict("records")[0]["Latest error"] == "HTTP 410"


async def _given_up(url: str, outbox_id: int, now: datetime) -> None:
    async with await aconnect(url) as conn:
        await mark_failed(conn, outbox_id, now, "HTTP 410", None)
