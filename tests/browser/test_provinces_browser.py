"""A national deployment of three provinces with accounts scoped to provinces, in a real
browser (headless chromium through playwright; issue 19, part 2).

Bắc Giang, Thái Nguyên and Bình Định are loaded into one database. The Ministry's account
(national) opens on the national map, the three provinces and their summed figures, and drills
into Bắc Giang by a link; a Bắc Giang operator's map is Bắc Giang alone, with no province to
choose, and a Bình Định tower or alert linked directly reads like one that does not exist,
while its own open. Screenshots go to test-artifacts/browser/. Skips where no chromium is
installed (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ioc.scenario import load_into
from store import users
from store.alert_engine import NewAlert, open_alert
from store.db import aconnect, connect
from store.migrate import upgrade
from tests.support.browser import (
    ARTIFACTS,
    launch,
    login,
    running_dashboard,
    settle,
    wait_map_drawn,
)
from tests.support.databases import scratch_database

sync_api = pytest.importorskip("playwright.sync_api")

THREE = "Bắc Giang, Thái Nguyên, Bình Định"
BAC_GIANG, THAI_NGUYEN, BINH_DINH = 24, 19, 52
PASSWORDS = {"ministry": "ministry-pass-1", "bg-ops": "bac-giang-pass-1"}
BG_TOWER, BD_TOWER = "BTS-VTL-24-0001", "BTS-VTL-0001"
# Sites per province in the scenarios: the national headline sums them.
SITES = {BAC_GIANG: 1614, THAI_NGUYEN: 1512, BINH_DINH: 1723}


async def _alerts(url: str) -> dict[str, int]:
    """An open alert on a tower of Bắc Giang and one on a tower of Bình Định."""
    conn = await aconnect(url)
    ids = {}
    try:
        for tower in (BG_TOWER, BD_TOWER):
            cur = await conn.execute(
                "SELECT district_code FROM devices WHERE device_id = %s", (tower,)
            )
            row = await cur.fetchone()
            assert row is not None
            alert = NewAlert("bts_offline", tower, "bts", "major", f"{tower} is down",
                             f"{tower} mất kết nối", {}, row[0])  # fmt: skip
            found = await open_alert(conn, alert, datetime.now(UTC))
            assert found is not None
            ids[tower] = found
        await conn.commit()
    finally:
        await conn.close()
    return ids


@pytest.fixture(scope="module")
def deployment(pg_server_url: str) -> Iterator[tuple[str, dict[str, int]]]:
    with scratch_database(pg_server_url) as url:
        with connect(url, autocommit=True) as conn:
            upgrade(conn)
            load_into(conn, THREE)
            conn.execute(
                "UPDATE devices SET state = 'online', state_since = now(), last_seen = now()"
            )
            users.add_user(conn, "ministry", PASSWORDS["ministry"], "admin")
            users.add_user(conn, "bg-ops", PASSWORDS["bg-ops"], "operator", provinces=[BAC_GIANG])
        yield url, asyncio.run(_alerts(url))


def _acknowledged_by(url: str, alert_id: int) -> str | None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT acknowledged_by FROM alerts WHERE alert_id = %s", (alert_id,)
        ).fetchone()
    return None if row is None else row[0]


def _total(n: int) -> str:
    return f"{n:,}".replace(",", ".")  # Vietnamese digit grouping, the dashboard's default


def _picker_label(page: Any) -> Any:
    """The label of the map's province picker ("Tỉnh"), there only for several provinces."""
    return page.locator('[data-testid="stWidgetLabel"]').get_by_text("Tỉnh", exact=True)


def _sites_metric(page: Any, n: int) -> Any:
    return page.get_by_text(f"(trên {_total(n)})").first


def test_national_deployment_with_roles_scoped_to_provinces(deployment) -> None:
    url, alert_ids = deployment
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_dashboard(url) as base, sync_api.sync_playwright() as p:
        browser = launch(p)
        ministry = browser.new_page(viewport={"width": 1500, "height": 1400})
        ops = browser.new_context(viewport={"width": 1500, "height": 1400}).new_page()
        try:
            # The Ministry: the national view, every province's sites summed, a province picker.
            login(ministry, base, "ministry", PASSWORDS["ministry"])
            _sites_metric(ministry, sum(SITES.values())).wait_for(timeout=60_000)
            ministry.get_by_text("Số liệu theo tỉnh").wait_for()
            assert ministry.title() == "IOC Việt Nam"
            settle(ministry)
            ministry.screenshot(path=ARTIFACTS / "provinces-national.png", full_page=True)
            assert _picker_label(ministry).count() == 1
            ministry.locator('[data-testid="stSelectbox"]').first.click()
            options = ministry.get_by_role("option")
            options.first.wait_for()
            names = set(options.all_inner_texts())
            assert {"Tỉnh Bắc Giang", "Tỉnh Thái Nguyên", "Tỉnh Bình Định"} <= names, names
            ministry.keyboard.press("Escape")

            # Drilled into Bắc Giang by its link: its sites only, its towers drawn.
            ministry.goto(f"{base}/?province={BAC_GIANG}")
            _sites_metric(ministry, SITES[BAC_GIANG]).wait_for(timeout=60_000)
            assert wait_map_drawn(ministry) > 200
            settle(ministry)
            ministry.screenshot(path=ARTIFACTS / "provinces-bac-giang.png", full_page=True)
            # The Ministry sees Bình Định's alert.
            ministry.goto(f"{base}/alerts?alert={alert_ids[BD_TOWER]}")
            ministry.locator("h3").filter(has_text=f"#{alert_ids[BD_TOWER]} ·").wait_for(
                timeout=60_000
            )

            # Bắc Giang's operator: Bắc Giang alone, nothing to choose.
            login(ops, base, "bg-ops", PASSWORDS["bg-ops"])
            _sites_metric(ops, SITES[BAC_GIANG]).wait_for(timeout=60_000)
            assert wait_map_drawn(ops) > 200
            settle(ops)
            assert ops.title() == "IOC Bắc Giang"
            assert _picker_label(ops).count() == 0
            assert ops.get_by_text(f"(trên {_total(sum(SITES.values()))})").count() == 0
            ops.screenshot(path=ARTIFACTS / "provinces-bac-giang-operator.png", full_page=True)

            # Its own tower and alert open; Bình Định's read like ones that do not exist.
            ops.goto(f"{base}/device?device={BG_TOWER}")
            ops.locator("h3").filter(has_text=BG_TOWER).wait_for(timeout=60_000)
            ops.goto(f"{base}/device?device={BD_TOWER}")
            ops.get_by_text("Không tìm thấy thiết bị.").wait_for(timeout=60_000)
            ops.goto(f"{base}/alerts?alert={alert_ids[BG_TOWER]}")
            ops.locator("h3").filter(has_text=f"#{alert_ids[BG_TOWER]} ·").wait_for(timeout=60_000)
            # It acknowledges its own: the database checked the session's province.
            settle(ops)
            ops.get_by_role("button", name="Xác nhận", exact=True).click()
            deadline = time.monotonic() + 60
            while _acknowledged_by(url, alert_ids[BG_TOWER]) != "bg-ops":
                assert time.monotonic() < deadline, "the acknowledgement never reached the alert"
                ops.wait_for_timeout(200)  # poll the condition again, up to the deadline
            ops.goto(f"{base}/alerts?alert={alert_ids[BD_TOWER]}")
            ops.get_by_text(f"Không có cảnh báo #{alert_ids[BD_TOWER]}.").wait_for(timeout=60_000)
            settle(ops)
            assert ops.get_by_text(BD_TOWER).count() == 0
            ops.screenshot(path=ARTIFACTS / "provinces-foreign-alert.png", full_page=True)
        except Exception:
            ministry.screenshot(path=ARTIFACTS / "provinces-failed-ministry.png", full_page=True)
            ops.screenshot(path=ARTIFACTS / "provinces-failed-operator.png", full_page=True)
            raise
        finally:
            browser.close()
