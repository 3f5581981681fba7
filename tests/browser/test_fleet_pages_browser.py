"""The broadband and camera pages in a real browser (headless chromium), in Vietnamese and then
English, with an OLT and a camera at fault so the fault tables show; screenshots go to
test-artifacts/browser/ (broadband-vi.png, cameras-vi.png, broadband-en.png, cameras-en.png)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboard.i18n import CATALOGUE
from devices.kinds import DeviceState
from seeds import load_scenario
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import ARTIFACTS, launch, login, settle
from tests.support.fleet_history import set_states
from tests.test_dashboard_fleet_pages import camera_reading

sync_api = pytest.importorskip("playwright.sync_api")


def word(key: str, lang: str, **fields: object) -> str:
    vi, en = CATALOGUE[key]
    return (vi if lang == "vi" else en).format(**fields)


def _pages(page, lang: str) -> None:
    """Both pages, each waited for by its own words and shot whole."""
    page.get_by_role("link", name=word("page.broadband", lang)).click()
    page.get_by_text(word("bb.faults", lang, n=1)).wait_for()
    page.get_by_text(word("bb.without_fibre", lang)).wait_for()
    settle(page)
    page.screenshot(path=ARTIFACTS / f"broadband-{lang}.png", full_page=True)
    page.get_by_role("link", name=word("page.cameras", lang)).click()
    page.get_by_text(word("cam.faults", lang, n=1)).wait_for()
    settle(page)
    page.screenshot(path=ARTIFACTS / f"cameras-{lang}.png", full_page=True)


def test_broadband_and_camera_pages_in_both_languages(scenario_url, dashboard_url):
    scenario = load_scenario()
    olt = next(n.device_id for n in scenario.broadband if len(n.communes_served) > 1)
    camera = scenario.cameras[0].device_id
    now = datetime.now(UTC)
    set_states(scenario_url, now, {olt: DeviceState.OFFLINE})
    camera_reading(scenario_url, camera, now, tamper=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        login(page, dashboard_url, "viewer", PASSWORDS["viewer"])
        _pages(page, "vi")
        page.get_by_text("English").click()
        page.get_by_role("link", name=word("page.broadband", "en")).wait_for()
        _pages(page, "en")
        browser.close()
