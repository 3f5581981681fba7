"""How fast the IOC view is at a month of fleet telemetry: each page's database queries, and the
time from navigation to the map drawn (coverage layer on) in headless chromium.

    python -m bench.dashboard [--quick] [--days 30] [--interval-s 900] [--url URL] [--no-layers]

``map_ready_s`` is the median, over 3 navigations (5 without --quick), of the time from a click
on the map's link to its canvas showing both the online towers and the pre-rendered background.
``layer_ms`` is each layer's share of it, measured by removal: a second dashboard started with
``IOC_DASHBOARD_MAP_SKIP=<layer id>`` is navigated in turn with the whole map's (same browser,
same load on the machine; after a warm-up pair, each first in turn), and the layer's figure is
the median of the paired differences (5 pairs with --quick, 7 without).
Differences within about +-150 ms are noise (a negative one is). The tower layer stays in
every run, since the map counts as drawn when towers show.

Builds a throwaway database (TimescaleDB when IOC_TEST_TSDB_URL is set, else the local
PostgreSQL) with the scenario, DAYS of readings every INTERVAL_S for all 3,108 devices, rejects,
alerts and coverage verdicts. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from dashboard import coverage_view
from devices.kinds import DeviceState, Kind
from store import alerts, coverage, places, readings, registry, users
from store.alert_engine import NewAlert, open_alert
from store.db import aconnect
from tests.support.databases import scratch_database
from tests.support.environment import harness
from tests.support.fleet_history import (
    fleet,
    generate_history,
    load_scenario_db,
    set_states,
    write_sample_coverage,
)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def open_alerts(url: str, now: datetime, towers: list[str]) -> None:
    conn = await aconnect(url)
    try:
        for device_id in towers:
            alert = NewAlert("bts_offline", device_id, "bts", "major", f"{device_id} offline",
                             f"{device_id} mất kết nối", {}, None)  # fmt: skip
            await open_alert(conn, alert, now)
    finally:
        await conn.close()


def page_queries(
    conn: psycopg.Connection, now: datetime
) -> dict[str, dict[str, Callable[[], Any]]]:
    tower = fleet()[Kind.BTS][100]
    return {
        "map": {
            "map_devices": lambda: registry.map_devices(conn, now),
            "ingest_health": lambda: readings.ingest_health(conn, now),
            "open_alert_counts": lambda: alerts.open_counts(conn),
            "coverage_snapshot": lambda: coverage_view.snapshot(conn),
        },
        "alerts": {
            "district_names": lambda: places.district_names(conn),
            "list_alerts": lambda: alerts.list_alerts(
                conn, alerts.AlertFilter(states=alerts.UNRESOLVED, limit=500)
            ),
            "transitions": lambda: alerts.transitions(conn, 1),
        },
        "device": {
            "search_devices": lambda: registry.search_devices(conn, "BTS-VTL-01"),
            "device_detail": lambda: registry.device_detail(conn, tower),
            "status_events": lambda: registry.status_events(conn, tower),
            "device_alerts": lambda: alerts.list_alerts(conn, alerts.AlertFilter(subject=tower)),
            "rollup_24h": lambda: readings.rollup_series(
                conn, Kind.BTS, tower, now - timedelta(days=1), now
            ),
            "rollup_30d": lambda: readings.rollup_series(
                conn, Kind.BTS, tower, now - timedelta(days=30), now
            ),
            "tower_criticality": lambda: coverage_view.tower_criticality(conn, tower),
        },
        "coverage": {
            "coverage_snapshot": lambda: coverage_view.snapshot(conn),
            "critical_top": lambda: coverage.critical_top(conn, 50),
        },
        "ingest": {
            "ingest_health": lambda: readings.ingest_health(conn, now),
            "ingest_series": lambda: readings.ingest_series(conn, now),
            "reject_counts": lambda: readings.reject_counts(conn, now - timedelta(hours=24)),
            "reject_samples": lambda: readings.reject_samples(conn, now - timedelta(hours=24)),
        },
    }


def time_queries(url: str, now: datetime, repeat: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per query, per page (after one warm-up run)."""
    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for page, named in page_queries(conn, now).items():
            out[page] = {}
            for name, run in named.items():
                run()
                samples = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    run()
                    samples.append((time.perf_counter() - start) * 1000)
                out[page][name] = round(statistics.median(samples), 2)
    return out


# Each layer's cost is timed by leaving it out (IOC_DASHBOARD_MAP_SKIP): the deck draws all its
# layers in one frame, so removal is what an operator would save. The towers stay, since the
# map counts as drawn when they show.
LAYERS = ("background", "labels", "coverage-any", "villages", "dead-spots", "devices-broadband",
          "devices-camera")  # fmt: skip
BACKGROUND_PIXEL = (236, 240, 241)  # dashboard.background.OUTLINE: the province's edge


def wait_background(page: Any, timeout_s: float = 30) -> None:
    """Wait until the pre-rendered background shows too: it is an image the browser decodes
    after the first frame, and a map without its districts is not drawn yet."""
    import io

    import numpy as np
    from PIL import Image

    canvas = page.locator("canvas").first
    deadline = time.monotonic() + timeout_s
    while True:
        shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=int)
        edge = int((np.abs(shot - np.array(BACKGROUND_PIXEL)) < 12).all(axis=2).sum())
        if edge > 400:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"background not drawn ({edge} edge pixels)")
        page.wait_for_timeout(100)  # poll the condition again, up to the deadline


class MapPage:
    """A dashboard of its own (``skip``: the layer it leaves out) and a page logged in to it,
    on the shared browser; ``navigate`` times one click on the map's link to the map drawn."""

    def __init__(self, browser: Any, url: str, password: str, skip: str = "") -> None:
        from tests.support.browser import start_dashboard, wait_http

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        os.environ["IOC_DASHBOARD_MAP_SKIP"] = skip  # start_dashboard passes our environment on
        try:
            self.proc = start_dashboard(url, port, refresh_s=30)
        finally:
            del os.environ["IOC_DASHBOARD_MAP_SKIP"]
        self.skip = skip
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health")
            self.page = browser.new_page(viewport={"width": 1500, "height": 1100})
            self.login_s = self._login(f"http://127.0.0.1:{port}", password)
        except BaseException:
            self.close()
            raise

    def _drawn(self) -> None:
        from tests.support.browser import wait_map_drawn

        assert wait_map_drawn(self.page) > 200
        if self.skip != "background":
            wait_background(self.page)

    def _login(self, base: str, password: str) -> float:
        from tests.support.browser import login

        start = time.perf_counter()
        login(self.page, base, "bench", password)
        self._drawn()
        took = time.perf_counter() - start
        self.page.get_by_label("Vùng phủ sóng").click()
        self.page.get_by_role("option", name="bất kỳ nhà mạng").click()
        self._drawn()
        self._away()
        return took

    def _away(self) -> None:
        self.page.get_by_role("link", name="Cảnh báo").click()
        self.page.get_by_text("Chọn cảnh báo").wait_for()

    def navigate(self) -> float:
        start = time.perf_counter()
        self.page.get_by_role("link", name="Bản đồ trực tiếp").click()
        self._drawn()
        took = time.perf_counter() - start
        self._away()
        return took

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def map_ready(url: str, password: str, navigations: int, layers: bool) -> dict[str, Any]:
    """map_ready_s (and login_to_map_s) of the whole map; with ``layers``, layer_ms."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch

    with sync_playwright() as p:
        browser = launch(p)
        full = MapPage(browser, url, password)
        try:
            runs = [full.navigate() for _ in range(navigations)]
            out: dict[str, Any] = {
                "login_to_map_s": round(full.login_s, 2),
                "map_ready_s": round(statistics.median(runs), 2),
            }
            log(f"map_ready_s {out['map_ready_s']} ({', '.join(f'{r:.2f}' for r in runs)})")
            if layers:
                pairs = navigations + 2
                out["layer_ms"] = {layer: layer_cost(browser, full, url, password, layer, pairs)
                                   for layer in LAYERS}  # fmt: skip
        finally:
            full.close()
            browser.close()
    return out


def layer_cost(
    browser: Any, full: MapPage, url: str, password: str, layer: str, navigations: int
) -> int:
    """Median over paired navigations (whole map and the map without ``layer`` one after the
    other, so both see the same load on the machine) of the difference, in milliseconds."""
    without = MapPage(browser, url, password, skip=layer)
    try:
        for page in (full, without):  # a warm-up pair: the first after a login runs slow
            page.navigate()
        diffs = []
        for i in range(navigations):  # each first in turn, so that order cancels out
            if i % 2:
                alone = without.navigate()
                diffs.append(full.navigate() - alone)
            else:
                diffs.append(full.navigate() - without.navigate())
    finally:
        without.page.close()
        without.close()
    cost = round(statistics.median(diffs) * 1000)
    log(f"layer {layer:<18} {cost:5d} ms ({', '.join(f'{d * 1000:.0f}' for d in diffs)})")
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 day every 30 min, 3 navigations")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--interval-s", type=int, default=900, help="reporting interval")
    parser.add_argument("--url", help="server URL (default: IOC_TEST_TSDB_URL, else local)")
    parser.add_argument("--no-browser", action="store_true", help="skip map_ready_s, layer_ms")
    parser.add_argument("--no-layers", action="store_true", help="skip layer_ms")
    args = parser.parse_args()
    days = 1 if args.quick else args.days
    interval_s = 1800 if args.quick else args.interval_s
    server = args.url or harness().tsdb_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    with scratch_database(server, "ioc_bench_dashboard") as url:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        load_scenario_db(url)
        ids = fleet()
        states = {i: DeviceState.ONLINE for kind_ids in ids.values() for i in kind_ids}
        states.update({i: DeviceState.OFFLINE for i in ids[Kind.BTS][:60]})
        set_states(url, now - timedelta(minutes=10), states, rejects=2000)
        asyncio.run(open_alerts(url, now, ids[Kind.BTS][:60]))
        asyncio.run(write_sample_coverage(url, now))
        rows = generate_history(url, now, days=days, interval_s=interval_s, progress=log)
        with psycopg.connect(url, autocommit=True) as conn:
            refreshed = readings.refresh_rollups(conn)
            conn.execute("ANALYZE")
            flavor = "timescale" if refreshed else "plain"
            password = "bench-pass-1"
            users.add_user(conn, "bench", password, "operator")
        log(f"data ready in {time.perf_counter() - t0:.0f} s ({rows:,} rows, {flavor})")
        pages = time_queries(url, now, repeat=3 if args.quick else 5)
        for page, timings in pages.items():
            log(f"{page:<9} total {sum(timings.values()):7.1f} ms  " + ", ".join(
                f"{k} {v}" for k, v in timings.items()))  # fmt: skip
        slowest_page, slowest, worst = max(
            ((p, n, ms) for p, t in pages.items() for n, ms in t.items()), key=lambda x: x[2]
        )
        browser: dict[str, Any] = {}
        if not args.no_browser:
            browser = map_ready(url, password, 3 if args.quick else 5, not args.no_layers)
        result = {
            **browser,
            "max_query_ms": worst,
            "slowest_query": f"{slowest_page}.{slowest}",
            "page_total_ms": {p: round(sum(t.values()), 1) for p, t in pages.items()},
            "telemetry_rows": rows,
            "devices": sum(len(v) for v in ids.values()),
            "days": days,
            "interval_s": interval_s,
            "database": flavor,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
