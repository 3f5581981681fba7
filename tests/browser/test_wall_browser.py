"""The video wall (``?wall=1``) and the language switch in a real browser (headless chromium
through playwright): the wall is drawn without sidebar or header in large type; a click on the
language switch while the map refreshes itself twice a second takes and stays. Screenshots go
to test-artifacts/browser/. Skips where no chromium is installed (.ci/run installs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.dashboard import PASSWORDS
from tests.support.browser import (
    ARTIFACTS,
    launch,
    running_dashboard,
    wait_map_drawn,
)

sync_api = pytest.importorskip("playwright.sync_api")

REFRESH_S = 0.5  # the map's fragment reruns back to back: the race a click must win


@pytest.fixture
def busy_dashboard(scenario_url: str) -> Iterator[str]:
    with running_dashboard(scenario_url, refresh_s=REFRESH_S) as url:
        yield url


def log_in(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Tên đăng nhập").fill("viewer")
    page.get_by_label("Mật khẩu").fill(PASSWORDS["viewer"])
    page.get_by_role("button", name="Đăng nhập").click()


def test_wall_in_large_type_without_sidebar(busy_dashboard, alert_ids):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        log_in(page, busy_dashboard + "/?wall=1&lang=en")
        try:
            page.get_by_text(f"Open alerts ({len(alert_ids)})").wait_for(timeout=60_000)
        except Exception:
            page.screenshot(path=ARTIFACTS / "wall-failed.png")
            raise
        assert wait_map_drawn(page) > 200, "the wall's map shows online towers"
        page.get_by_text("BTS-VTL-0001").first.wait_for()
        assert page.locator('[data-testid="stSidebar"]').count() == 0
        assert not page.locator('[data-testid="stHeader"]').is_visible()
        size = page.locator('[data-testid="stMetricValue"]').first.evaluate(
            "e => parseFloat(getComputedStyle(e).fontSize)"
        )
        assert size >= 40, f"metric values in {size}px type, too small for a wall"
        page.screenshot(path=ARTIFACTS / "wall-en.png")
        page.goto(busy_dashboard + "/?wall=1&lang=vi")  # the session cookie logs it in again
        page.get_by_text(f"Cảnh báo đang mở ({len(alert_ids)})").wait_for(timeout=60_000)
        wait_map_drawn(page)
        page.screenshot(path=ARTIFACTS / "wall-vi.png")
        browser.close()


def snippet(page, word: str) -> str:
    """The text from ``word`` on (the map's "updated at" time), or "" before it shows."""
    return str(page.evaluate(
        "w => { const t = document.body.innerText; const i = t.indexOf(w);"
        " return i < 0 ? '' : t.slice(i, i + 40); }", word))  # fmt: skip


def wait_refreshed(page, word: str) -> None:
    """Until the map's fragment has rerun once more (its "updated at" time moved)."""
    old = snippet(page, word)
    page.wait_for_function(
        "([w, old]) => { const t = document.body.innerText; const i = t.indexOf(w);"
        " return i >= 0 && t.slice(i, i + 40) !== old; }",
        arg=[word, old],
        timeout=30_000,
    )


def test_language_switch_takes_while_the_map_refreshes(busy_dashboard):
    """Clicked while the map's fragment reruns twice a second, the switch takes and stays, and
    the layer chips follow it ("Trạm BTS" was left in English); a reload keeps the language."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        log_in(page, busy_dashboard + "/")
        wait_map_drawn(page)
        steps = (("en", "English", "Layers", "Updated ", "Trạm BTS"),
                 ("vi", "Tiếng Việt", "Lớp bản đồ", "Cập nhật ", "BTS"))  # fmt: skip
        for code, language, layers, updated, foreign_chip in steps * 2:
            page.get_by_text(language, exact=True).click()
            page.get_by_text(layers, exact=True).wait_for(timeout=30_000)
            for _ in range(2):  # and it holds through the refreshes that follow
                wait_refreshed(page, updated)
            assert page.get_by_text(layers, exact=True).is_visible()
            chips = page.locator(".react-aria-ComboBox [data-tag]").all_inner_texts()
            assert chips and foreign_chip not in chips, chips
            page.screenshot(path=ARTIFACTS / f"language-switch-{code}.png")
        # The choice outlives the session: a reload (a new Streamlit session) keeps English.
        page.get_by_text("English", exact=True).click()
        page.get_by_text("Layers", exact=True).wait_for(timeout=30_000)
        page.reload()
        wait_map_drawn(page)
        page.get_by_text("Layers", exact=True).wait_for(timeout=30_000)
        assert page.get_by_text("Lớp bản đồ", exact=True).count() == 0
        browser.close()
