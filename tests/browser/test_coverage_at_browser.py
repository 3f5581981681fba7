"""The map at a past moment and a village's outage timeline in a real browser (headless
chromium, playwright), in Vietnamese and English. Screenshots go to test-artifacts/browser/.
Skips where no chromium is installed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dashboard.i18n import CATALOGUE
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import (
    ARTIFACTS,
    launch,
    login,
    running_dashboard,
    settle,
    wait_map_drawn,
)
from tests.test_coverage_at import PastOutage, write_past_outage

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def outage(scenario_url: str) -> PastOutage:
    # The control opens an hour back from now: inside the outage (70 to 10 minutes ago).
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=50)
    return write_past_outage(scenario_url, now)


@pytest.fixture(scope="module")
def dashboard_url(scenario_url: str, outage: PastOutage) -> Iterator[str]:
    with running_dashboard(scenario_url, refresh_s=30) as url:
        yield url


def test_the_map_at_a_past_moment_and_the_village_timeline(
    dashboard_url: str, outage: PastOutage
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    vi = {k: v[0] for k, v in CATALOGUE.items()}
    en = {k: v[1] for k, v in CATALOGUE.items()}
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        login(page, dashboard_url, "viewer", PASSWORDS["viewer"])
        assert wait_map_drawn(page) > 200
        page.get_by_text(vi["history.look_back"]).click()
        banner = page.get_by_text("thôn mất sóng", exact=False)
        banner.first.wait_for(timeout=60_000)
        assert (
            f"{outage.dark_then:,}".replace(",", ".") + " thôn mất sóng"
            in banner.first.inner_text()
        )
        assert wait_map_drawn(page) > 200
        settle(page)
        page.screenshot(path=ARTIFACTS / "coverage-at-map-vi.png", full_page=True)

        page.get_by_text("English").click()
        page.get_by_text("villages dark:", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text(en["history.raster_hidden"]).wait_for(timeout=60_000)
        assert wait_map_drawn(page) > 200
        settle(page)
        page.screenshot(path=ARTIFACTS / "coverage-at-map-en.png", full_page=True)
        page.get_by_role("button", name=en["history.back_to_live"]).click()
        page.get_by_text("villages dark:", exact=False).first.wait_for(
            state="detached", timeout=60_000
        )

        page.goto(f"{dashboard_url}/village?village={outage.village['village_id']}")
        page.get_by_text(en["history.outages"]).wait_for(timeout=60_000)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
        settle(page)
        page.screenshot(path=ARTIFACTS / "coverage-at-village-en.png", full_page=True)
        browser.close()
