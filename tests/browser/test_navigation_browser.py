"""Click-through and deep links in a real browser (headless chromium through playwright).

A deep link opened before logging in lands where it pointed once the user has logged in; a
click on a tower on the map opens its device page, and the map's timed refresh neither loses
nor replays that click; a reload keeps the session (its token in a cookie) until logout; links
to an alert (even one the filters hide) and to a village open them. Screenshots go to
test-artifacts/browser/. Skips where no chromium is installed (.ci/run installs it).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from devices.kinds import Kind
from store import alerts, registry, villages
from store.db import connect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import ARTIFACTS, launch, settle, wait_map_drawn
from tests.support.fleet_history import fleet

sync_api = pytest.importorskip("playwright.sync_api")


def _metres(a: Any, b: Any) -> float:
    """Between two things with ``lat``/``lon`` attributes (equirectangular, close enough)."""
    dx = math.radians(a.lon - b.lon) * math.cos(math.radians(a.lat))
    return 6_371_000.0 * math.hypot(dx, math.radians(a.lat - b.lat))


def _alone(url: str) -> tuple[str, dict[str, Any]]:
    """A tower, and a dead-spot village, with no (other) device within 500 m: at the focused
    zoom (~26 m a pixel, markers at most 14 px across their radius) nothing else is drawn over
    their centre, and devices are drawn over villages."""
    with connect(url) as conn:
        devices = registry.map_devices(conn, datetime.now(UTC), scope=NATIONAL)
        dead = [villages.village(conn, row[0], scope=NATIONAL) for row in conn.execute(
            "SELECT place_id FROM coverage_places WHERE place_kind = 'village' AND dead_spot"
            " ORDER BY place_id")]  # fmt: skip
    towers = set(fleet()[Kind.BTS])
    tower = next(d.device_id for d in devices if d.device_id in towers
                 and all(_metres(d, o) > 500 for o in devices if o is not d))  # fmt: skip
    village = next(v for v in dead if v is not None
                   and all(_metres(SimpleNamespace(**v), o) > 500 for o in devices))  # fmt: skip
    return tower, village


def _log_in(page, username: str) -> None:
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORDS[username])
    page.get_by_role("button", name="Đăng nhập").click()


def _click_centre(page, opens: str = "device", timeout_s: float = 60) -> None:
    """Click the middle of the map (where the focused subject is) until its page (``opens``)
    does: the first click can land before deck.gl has its layers ready to pick."""
    deadline = time.monotonic() + timeout_s
    while f"/{opens}" not in page.url:
        assert time.monotonic() < deadline, f"no click on the map opened a {opens} page"
        box = page.locator("canvas").first.bounding_box()
        if box is not None:
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            page.wait_for_url(f"**/{opens}**", timeout=15_000)
        except sync_api.TimeoutError:
            continue


def _subheader(page, text: str):
    return page.locator("h3").filter(has_text=text).first


def test_click_through_deep_links_and_reload(dashboard_url, scenario_url, alert_ids):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tower, dead = _alone(scenario_url)
    with connect(scenario_url, autocommit=True) as conn:
        # A resolved alert: the page's default filter hides it, the link must not.
        hidden = alert_ids[1]
        alerts.resolve(conn, hidden, "test", "resolved for the deep link")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})

        try:
            # A link to the map centred on the tower, opened before logging in: the login form,
            # then the map it pointed at.
            page.goto(f"{dashboard_url}/map?focus={tower}")
            _log_in(page, "operator")
            page.get_by_text(tower).first.wait_for()  # the caption naming the focus
            wait_map_drawn(page, timeout_s=20)  # zoomed in on one tower: few green pixels
            settle(page)
            page.screenshot(path=ARTIFACTS / "nav-map-focused.png")
            _click_centre(page)
            _subheader(page, tower).wait_for(timeout=60_000)
            assert "/device" in page.url and f"device={tower}" in page.url
            settle(page)
            page.screenshot(path=ARTIFACTS / "nav-device-clicked.png", full_page=True)

            # Reload: the session comes back from its cookie, on the same page.
            page.reload()
            _subheader(page, tower).wait_for(timeout=60_000)
            assert page.get_by_label("Tên đăng nhập").count() == 0
            cookie = next(c for c in page.context.cookies() if c["name"] == "ioc_session")
            kept = (cookie["path"], cookie["sameSite"], cookie["httpOnly"])
            assert kept == ("/", "Strict", False)

            # Back on the map (the browser's back button: the browser still holds the chart's
            # selection), its timed refresh (every 5 s here) must not replay the old click.
            assert page.locator('[data-testid="stException"]').count() == 0
            page.go_back()
            page.get_by_text("Cập nhật").first.wait_for()
            first = page.get_by_text("Cập nhật").first.inner_text()
            page.wait_for_function(
                "(before) => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                ".some(e => e.innerText.includes('Cập nhật') && !e.innerText.includes(before))",
                arg=first.split("Cập nhật")[1].split("·")[0].strip(),
                timeout=60_000,
            )
            assert "/device" not in page.url, "the refresh re-opened the tower clicked before"

            # An alert's link, though the default filter (open, acknowledged) hides it.
            page.goto(f"{dashboard_url}/alerts?alert={hidden}")
            _subheader(page, f"#{hidden} ·").wait_for(timeout=60_000)
            settle(page)
            page.screenshot(path=ARTIFACTS / "nav-alert-link.png", full_page=True)

            # A dead-spot village clicked on the map: its detail.
            page.goto(f"{dashboard_url}/map?focus={dead['village_id']}")
            page.get_by_text(dead["village_id"]).first.wait_for()
            page.locator("canvas").first.wait_for(state="visible")
            settle(page)
            _click_centre(page, opens="village")
            _subheader(page, dead["village_id"]).wait_for(timeout=60_000)
            assert f"village={dead['village_id']}" in page.url
            settle(page)
            page.screenshot(path=ARTIFACTS / "nav-village-clicked.png", full_page=True)

            # A village's link: its detail.
            page.goto(f"{dashboard_url}/village?village={dead['village_id']}")
            _subheader(page, dead["village_id"]).wait_for(timeout=60_000)
            page.get_by_text("Mất sóng mọi nhà mạng").first.wait_for()
            settle(page)
            page.screenshot(path=ARTIFACTS / "nav-village-link.png", full_page=True)

            # Logout clears the cookie: a reload shows the login form again.
            page.get_by_role("button", name="Đăng xuất").click()
            page.get_by_label("Tên đăng nhập").wait_for()
            page.wait_for_function("() => !document.cookie.includes('ioc_session=')")
            page.reload()
            page.get_by_label("Tên đăng nhập").wait_for()
            page.screenshot(path=ARTIFACTS / "nav-logged-out.png")

            # A fresh browser with an alert's link: login, then that alert.
            other = browser.new_page(viewport={"width": 1500, "height": 1100})
            other.goto(f"{dashboard_url}/alerts?alert={alert_ids[0]}")
            _log_in(other, "viewer")
            _subheader(other, f"#{alert_ids[0]} ·").wait_for(timeout=60_000)
            assert "/alerts" in other.url

            # A cookie whose session the database does not know: ignored, and dropped.
            stale = browser.new_context(viewport={"width": 1500, "height": 1100})
            bogus = {"name": "ioc_session", "value": "not-a-session", "url": dashboard_url}
            stale.add_cookies([bogus])
            third = stale.new_page()
            third.goto(f"{dashboard_url}/alerts?alert={alert_ids[0]}")
            third.get_by_text("Phiên làm việc đã hết hạn, hãy đăng nhập lại.").wait_for()
            third.wait_for_function("() => !document.cookie.includes('ioc_session=')")
            settle(third)
            third.screenshot(path=ARTIFACTS / "nav-stale-cookie.png")
        except Exception:
            page.screenshot(path=ARTIFACTS / "nav-failed.png", full_page=True)
            raise
        finally:
            browser.close()
