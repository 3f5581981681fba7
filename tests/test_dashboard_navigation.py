"""Deep links and detail pages with Streamlit's AppTest, against the scenario database: the
village page (``?village=``), a tower's villages, ``?device=`` and ``?alert=`` links, and a
link opened before logging in. The cookie round trip needs a browser:
tests/browser/test_navigation_browser.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard import auth
from devices.kinds import Kind
from store import alerts, coverage, villages
from store.db import aconnect, connect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.fleet_history import fleet
from tests.test_dashboard import app, texts

DEVICE_PAGE = "../dashboard/pages/device.py"
VILLAGE_PAGE = "../dashboard/pages/village.py"
ALERTS_PAGE = "../dashboard/pages/alerts.py"


def dead_village(url: str) -> dict[str, Any]:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT place_id FROM coverage_places WHERE place_kind = 'village' AND dead_spot"
            " ORDER BY place_id LIMIT 1"
        ).fetchone()
        assert row is not None
        found = villages.village(conn, row[0], scope=NATIONAL)
    assert found is not None
    return found


async def _events(url: str, village_id: str, tower: str, now: datetime) -> None:
    conn = await aconnect(url)
    try:
        await coverage.write_coverage(conn, places=[], history=[], events=[
            {"ts": now - timedelta(hours=3), "village_id": village_id, "kind": "lost",
             "operators_lost": ["viettel"], "operators_now": [], "towers": [tower],
             "population": 300},
            {"ts": now - timedelta(hours=1), "village_id": village_id, "kind": "restored",
             "operators_lost": [], "operators_now": ["viettel"], "towers": [tower],
             "population": 300},
        ])  # fmt: skip
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def village_with_events(scenario_url: str) -> tuple[dict[str, Any], str]:
    """A dead-spot village with a lost-then-restored timeline caused by one tower."""
    village = dead_village(scenario_url)
    tower = fleet()[Kind.BTS][1]
    asyncio.run(_events(scenario_url, village["village_id"], tower, datetime.now(UTC)))
    return village, tower


def test_village_page_from_its_link(scenario_url, village_with_events, monkeypatch):
    village, tower = village_with_events
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(VILLAGE_PAGE)
    at.query_params["village"] = village["village_id"]
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == f"{village['name']} · {village['village_id']}"
    assert f"**Commune:** {village['commune_name']} · **District:** {village['district_name']}" in (
        texts(at)
    )
    assert at.metric[0].label == "Population"
    assert at.metric[0].value == f"{village['population']:,}"
    assert any(e.value.startswith("No signal at all since") for e in at.error)
    coverage_table = at.dataframe[0].value
    assert list(coverage_table["Operator"]) == ["viettel", "mobifone", "vinaphone", "vietnamobile"]
    assert not coverage_table["3G/4G signal"].any()
    # Its timeline, newest first, each change with the tower that caused it.
    shown = texts(at)
    assert shown.index("signal back (viettel)") < shown.index("signal lost (viettel)")
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    assert f"↳ {tower}" in links
    # The nearest towers, two of each operator, nearest first.
    near = [label for label in links if label.endswith(" km")]
    assert len(near) == 8
    distances = [float(label.rsplit("·", 1)[1].removesuffix(" km").strip()) for label in near]
    assert distances == sorted(distances)


def test_unknown_village_link_says_so(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(VILLAGE_PAGE)
    at.query_params["village"] = "no-such-village"
    at.run()
    assert not at.exception, at.exception
    assert "There is no village no-such-village." in [w.value for w in at.warning]
    assert not at.subheader


def test_device_link_shows_the_tower_and_the_villages_it_changed(
    scenario_url, village_with_events, monkeypatch
):
    village, tower = village_with_events
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(DEVICE_PAGE)
    at.query_params["device"] = tower
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.endswith(tower)
    assert at.selectbox(key="device_pick").value == tower
    assert "Villages whose coverage changed when this tower went or came back (1):" in texts(at)
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    label = next(label for label in links if label.startswith(village["name"]))
    assert "signal back" in label


def test_device_link_replaces_an_earlier_search(scenario_url, monkeypatch):
    first, second = fleet()[Kind.BTS][:2]
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(DEVICE_PAGE)
    at.query_params["device"] = first
    at.run()
    assert at.subheader[0].value.endswith(first)
    at.query_params["device"] = second  # another link followed in the same session
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.endswith(second)


def test_alert_link_opens_an_alert_the_filters_hide(scenario_url, alert_ids, monkeypatch):
    hidden = alert_ids[1]
    with connect(scenario_url, autocommit=True) as conn:
        alerts.resolve(conn, hidden, "test", "resolved for the deep link")
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(ALERTS_PAGE)
    at.query_params["alert"] = str(hidden)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="alerts_pick").value == hidden
    assert any(s.value.startswith(f"#{hidden} · ") for s in at.subheader)
    state = next(m for m in at.metric if m.label == "State")
    assert state.value == "resolved"


def test_unknown_alert_link_says_so(scenario_url, alert_ids, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="en")
    at.switch_page(ALERTS_PAGE)
    at.query_params["alert"] = "987654"
    at.run()
    assert not at.exception, at.exception
    assert "There is no alert #987654." in [w.value for w in at.warning]


def test_link_opened_before_login_lands_after_it(scenario_url, alert_ids, monkeypatch):
    at = app(scenario_url, monkeypatch, None)
    at.context["url"] = "http://ioc.example/alerts"
    at.query_params["alert"] = str(alert_ids[0])
    at.run()
    assert at.text_input(key="login_username")  # the login form, not the alert
    assert not at.metric
    at.text_input(key="login_username").input("viewer")
    at.text_input(key="login_password").input(PASSWORDS["viewer"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith(f"#{alert_ids[0]} · ") for s in at.subheader)
    # The browser is told to keep the session in a cookie, for as long as the session lasts.
    script = next(h.proto.body for h in at.get("html") if auth.COOKIE in h.proto.body)
    assert at.session_state["session_token"] in script
    assert "SameSite=Strict" in script and "path=/" in script and "expires=" in script


def test_logout_tells_the_browser_to_drop_the_cookie(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer").run()
    at.button(key="logout").click().run()
    assert not at.exception, at.exception
    script = next(h.proto.body for h in at.get("html") if auth.COOKIE in h.proto.body)
    assert "max-age=0" in script
