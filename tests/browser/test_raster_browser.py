"""The coverage raster on the live map in a real browser (headless chromium, playwright): the
coverage service's raster of the whole province, chosen as "any operator", colours most of
the map, with its legend in dBm under it, in Vietnamese and in English; "off" takes it away.
Screenshots go to test-artifacts/browser/. Skips where no chromium is installed."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dashboard.coverage_raster import LEVEL_BANDS
from dashboard.i18n import CATALOGUE
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.service import CoverageService
from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import (
    ARTIFACTS,
    launch,
    login,
    running_dashboard,
    wait_map_drawn,
)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def dashboard_url(scenario_url: str) -> Iterator[str]:
    """A dashboard on the scenario, whose rasters the coverage service has written once."""
    svc = CoverageService(
        coverage_service_config(database_url=scenario_url, coverage=coverage_config(),
                                metrics_port=None)
    )  # fmt: skip
    stop = asyncio.Event()
    stop.set()  # built, written, and stopped at its first wait
    asyncio.run(svc.run(stop))
    assert svc.rasters_written == 1
    with running_dashboard(scenario_url, refresh_s=30) as url:
        yield url


def _banded(page: Any) -> float:
    """Share of the map's pixels tinted by the "good" band: its green, translucent over the
    districts' dark fill, has green well above red and blue (the fill alone has not)."""
    shot = Image.open(io.BytesIO(page.locator("canvas").first.screenshot())).convert("RGB")
    r, g, b = np.moveaxis(np.asarray(shot, dtype=int), 2, 0)
    assert LEVEL_BANDS[0][1][:3] == (39, 174, 96)  # the green this looks for
    return float(((g - r > 40) & (g - b > 20)).mean())


def _wait_share(page: Any, above: bool, bound: float) -> float:
    share = _banded(page)
    for _ in range(120):  # up to 30 s: the image decodes after the deck's first frame
        if (share > bound) == above:
            return share
        page.wait_for_timeout(250)
        share = _banded(page)
    return share


def test_the_raster_colours_the_map_with_a_legend_in_both_languages(dashboard_url: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    vi = {k: v[0] for k, v in CATALOGUE.items()}
    en = {k: v[1] for k, v in CATALOGUE.items()}
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        login(page, dashboard_url, "viewer", PASSWORDS["viewer"])
        assert wait_map_drawn(page) > 200
        without = _banded(page)

        def choose(words: dict[str, str], option: str) -> None:
            page.get_by_label(words["map.coverage_layer"]).click()
            page.get_by_role("option", name=words[option]).click()

        choose(vi, "map.any_operator")
        page.get_by_text(vi["raster.legend"]).first.wait_for(timeout=60_000)
        with_raster = _wait_share(page, True, without + 0.05)
        page.screenshot(path=ARTIFACTS / "raster-any-vi.png")
        assert with_raster > without + 0.05, (without, with_raster)

        choose(vi, "map.none")
        page.get_by_text(vi["raster.legend"]).first.wait_for(state="detached", timeout=60_000)
        assert _wait_share(page, False, without + 0.02) <= without + 0.02

        choose(vi, "map.any_operator")
        page.get_by_text("English").click()
        legend = page.get_by_text(en["raster.legend"]).first
        legend.wait_for(timeout=60_000)
        assert wait_map_drawn(page) > 200
        assert _wait_share(page, True, without + 0.05) > without + 0.05
        legend.scroll_into_view_if_needed()
        page.screenshot(path=ARTIFACTS / "raster-any-en.png")
        browser.close()
