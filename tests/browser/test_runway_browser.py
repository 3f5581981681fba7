"""The battery runway on the live map in a real browser (headless chromium, playwright): villages
at risk drawn as a layer in their band's colour, and the "next to go dark" list under the map
linking to each village, in Vietnamese and in English. Screenshots go to test-artifacts/browser/.
Skips where no chromium is installed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dashboard.i18n import CATALOGUE
from dashboard.runway_view import BAND_COLOURS
from devices.kinds import Kind
from store import places
from store.db import connect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import (
    ARTIFACTS,
    launch,
    login,
    running_dashboard,
    settle,
    wait_map_drawn,
)
from tests.support.fleet_history import fleet
from tests.test_dashboard_runway import Runway, write_runway

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def at_risk(scenario_url: str) -> Runway:
    with connect(scenario_url) as conn:
        rows = [v for v in places.villages(conn, scope=NATIONAL) if not v["seed_dead_spot"]]
    picked = dict(zip(("soon", "hour", "later", "unknown"), rows[10:400:100], strict=False))
    bts = fleet()[Kind.BTS]
    run = Runway(datetime.now(UTC), picked, fitted=bts[-1], unknown=bts[-2])
    write_runway(scenario_url, run)
    return run


@pytest.fixture(scope="module")
def dashboard_url(scenario_url: str, at_risk: Runway) -> Iterator[str]:
    with running_dashboard(scenario_url, refresh_s=30) as url:
        yield url


def band_pixels(page: Any, band: str) -> int:
    """Pixels of the map in ``band``'s colour (drawn translucent over the dark background)."""
    shot = Image.open(io.BytesIO(page.locator("canvas").first.screenshot())).convert("RGB")
    want = np.array(BAND_COLOURS[band][:3])
    return int((np.abs(np.asarray(shot, dtype=int) - want) < 40).all(axis=2).sum())


def wait_band(page: Any, band: str, at_least: int) -> int:
    found = band_pixels(page, band)
    for _ in range(120):  # up to 30 s: the deck draws its layers after the first frame
        if found >= at_least:
            return found
        page.wait_for_timeout(250)
        found = band_pixels(page, band)
    return found


def test_the_map_draws_villages_at_risk_and_the_next_to_go_dark(
    dashboard_url: str, at_risk: Runway
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    vi = {k: v[0] for k, v in CATALOGUE.items()}
    en = {k: v[1] for k, v in CATALOGUE.items()}
    soon = at_risk.villages["soon"]
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        login(page, dashboard_url, "viewer", PASSWORDS["viewer"])
        assert wait_map_drawn(page) > 200
        heading = page.get_by_text(vi["runway.next"].format(n=4))
        heading.wait_for(timeout=60_000)
        soon_px, hour_px = wait_band(page, "soon", 20), wait_band(page, "hour", 20)
        page.screenshot(path=ARTIFACTS / "runway-map-vi.png", full_page=True)
        assert soon_px >= 20 and hour_px >= 20, (soon_px, hour_px)
        first = page.get_by_role("link", name=f"{soon['name']} · {soon['commune_name']}:")
        assert first.count() == 1
        assert "village=" + soon["village_id"] in (first.get_attribute("href") or "")

        page.get_by_text("English").click()
        page.get_by_text(en["runway.next"].format(n=4)).wait_for(timeout=60_000)
        assert wait_map_drawn(page) > 200
        assert wait_band(page, "soon", 20) >= 20
        listed = page.get_by_role("link", name=f"{soon['name']} · {soon['commune_name']}:")
        assert "loses all mobile signal at about" in listed.inner_text()
        listed.scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "runway-map-en.png", full_page=True)
        listed.click()
        page.get_by_text("Loses all mobile signal at about").first.wait_for(timeout=60_000)
        settle(page)
        page.screenshot(path=ARTIFACTS / "runway-village-en.png", full_page=True)

        page.goto(f"{dashboard_url}/device?device={at_risk.fitted}")
        page.get_by_text(en["runway.device_title"]).wait_for(timeout=60_000)
        settle(page)
        page.screenshot(path=ARTIFACTS / "runway-device-en.png", full_page=True)
        page.goto(f"{dashboard_url}/alerts")
        page.get_by_text(en["runway.panel"].format(n=4)).wait_for(timeout=60_000)
        settle(page)
        page.screenshot(path=ARTIFACTS / "runway-alerts-en.png", full_page=True)
        browser.close()
