"""The IOC view in a real browser: Debian's chromium, headless, driven by playwright.

Logs in, sees the towers drawn on the map, opens an alert and acknowledges it as an operator,
switches to English, and is refused as a viewer. Screenshots go to test-artifacts/browser/.
Skips where no chromium is installed (.ci/run installs it).
"""

from __future__ import annotations

import pytest

from dashboard.i18n import CATALOGUE
from store import alerts
from store.db import connect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import (
    ARTIFACTS,
    launch,
    login,
    settle,
    wait_map_drawn,
)

sync_api = pytest.importorskip("playwright.sync_api")


def _report_and_device(page, lang: str) -> None:
    """The coverage report, then a tower's device page, each shot, in ``lang``'s words."""

    def word(key: str) -> str:
        vi, en = CATALOGUE[key]
        return vi if lang == "vi" else en

    page.get_by_role("link", name=word("page.coverage")).click()
    page.get_by_text(word("cov.by_district")).wait_for()
    settle(page)
    page.screenshot(path=ARTIFACTS / f"coverage-{lang}.png", full_page=True)
    page.get_by_role("link", name=word("page.device")).click()
    page.get_by_label(word("device.search")).fill("BTS-VTL-0001")
    page.get_by_label(word("device.search")).press("Enter")
    page.get_by_text(word("device.status_history")).wait_for()
    settle(page)
    page.screenshot(path=ARTIFACTS / f"device-{lang}.png", full_page=True)


def test_operator_acknowledges_and_viewer_is_refused(dashboard_url, scenario_url, alert_ids):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.on("request", lambda r: outside.append(r.url)
                if not r.url.startswith((dashboard_url, "data:", "blob:")) else None)  # fmt: skip

        login(page, dashboard_url, "operator", PASSWORDS["operator"])
        assert wait_map_drawn(page) > 200, "the towers are drawn on the map"
        page.get_by_text("Thôn lõm sóng").first.wait_for()
        page.screenshot(path=ARTIFACTS / "map-vi.png")

        page.get_by_role("link", name="Cảnh báo").click()
        page.get_by_text("Chọn cảnh báo").wait_for()
        settle(page)
        page.screenshot(path=ARTIFACTS / "alerts-vi.png", full_page=True)
        first = page.locator("h3").filter(has_text="#").first.inner_text()
        alert_id = int(first.split("·")[0].strip().lstrip("#"))
        page.get_by_label("Ghi chú").first.fill("đội kỹ thuật đã đi")
        page.get_by_role("button", name="Xác nhận", exact=True).click()
        page.get_by_text(f"Đã xác nhận cảnh báo #{alert_id}.").wait_for()
        with connect(scenario_url) as conn:
            acked = alerts.get_alert(conn, alert_id, scope=NATIONAL)
        assert (acked.state, acked.acknowledged_by) == ("acknowledged", "operator")

        page.get_by_text("English").click()
        page.get_by_role("link", name="Alerts").wait_for()
        page.get_by_text("Select an alert").wait_for()
        settle(page)
        page.screenshot(path=ARTIFACTS / "alerts-en.png", full_page=True)
        page.get_by_role("link", name="Live map").click()
        assert wait_map_drawn(page) > 200
        page.get_by_text("Villages without signal").first.wait_for()
        page.screenshot(path=ARTIFACTS / "map-en.png")
        _report_and_device(page, "en")
        # A reload is a new session: the page and the sidebar's picker both follow the cookie.
        page.reload()
        page.get_by_role("link", name="Alerts").wait_for()
        picker = page.get_by_test_id("stSidebar").get_by_role("radio", name="English")
        assert picker.is_checked(), "the sidebar's picker shows the language the page is in"
        page.get_by_role("button", name="Log out").click()
        # The browser keeps its language past the logout (a cookie); the viewer picks Vietnamese.
        page.get_by_role("button", name="Log in").wait_for()
        # On the login form's own picker: the logged-in sidebar can linger a moment.
        page.get_by_test_id("stMainBlockContainer").get_by_text("Tiếng Việt").click()
        page.get_by_role("button", name="Đăng nhập").wait_for()

        login(page, dashboard_url, "viewer", PASSWORDS["viewer"])
        page.get_by_role("link", name="Cảnh báo").click()
        page.get_by_text("Vai trò xem không được xác nhận hay tạm ẩn cảnh báo.").wait_for()
        assert page.get_by_role("button", name="Xác nhận", exact=True).is_disabled()
        settle(page)
        page.screenshot(path=ARTIFACTS / "alerts-viewer-vi.png", full_page=True)
        _report_and_device(page, "vi")
        browser.close()
    with connect(scenario_url) as conn:
        others = [
            alerts.get_alert(conn, i, scope=NATIONAL).state for i in alert_ids if i != alert_id
        ]
    assert others == ["open"], "the viewer changed nothing"
    assert outside == [], "a closed network: nothing is fetched from outside the dashboard"
