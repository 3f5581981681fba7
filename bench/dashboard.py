"""How fast the IOC view is at a month of fleet telemetry: each page's database queries, and the
time from navigation to the map drawn (coverage layer on) in headless chromium.

    python -m bench.dashboard [--quick] [--days 30] [--interval-s 60] [--url URL] [--no-layers]
                              [--no-map] [--repeat N]

``map_ready_s`` is the median, over 3 navigations (5 without --quick), of the time from a click
on the map's link to its canvas showing both the online towers and the pre-rendered background.
``layer_ms`` is each layer's share of it, measured by removal: a second dashboard started with
``IOC_DASHBOARD_MAP_SKIP=<layer id>`` is navigated in turn with the whole map's (same browser,
same load on the machine; after a warm-up pair, each first in turn), and the layer's figure is
the median of the paired differences (5 pairs with --quick, 7 without).
Differences within about +-150 ms are noise (a negative one is). The tower layer stays in
every run, since the map counts as drawn when towers show.

Builds a throwaway database (TimescaleDB when IOC_TEST_TSDB_URL is set, else the local
PostgreSQL) with the scenario, DAYS of readings every INTERVAL_S for all 3,108 devices (generated
by the server), rejects, alerts and coverage verdicts. On TimescaleDB the background jobs are
paused and their work done before timing, as a fleet that has run DAYS has it: the hourly
rollups over everything, the per-minute ones over the 6 hours they are read for, and every
chunk older than its compression policy compressed (so DAYS > 8 to see a whole compressed
day). Each page's queries (the store functions the pages call) then run REPEAT times:
``query_ms`` holds each one's p50/p95/max, ``max_query_ms`` and ``p95_query_ms`` the worst.
``--no-map`` leaves the browser out. The last line printed is one JSON object.
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
from psycopg import sql

from dashboard import coverage_view
from devices.health import KEY_METRICS, latest_metrics
from devices.kinds import DeviceState, Kind
from store import (
    alerts,
    broadband,
    cameras,
    coverage,
    places,
    readings,
    registry,
    users,
    villages,
)
from store.alert_engine import NewAlert, open_alert
from store.db import Flavor, aconnect, detect_flavor
from store.readings import LATEST_WINDOW
from store.scope import NATIONAL
from store.tables import READING_TABLES
from tests.support.databases import scratch_database
from tests.support.environment import harness
from tests.support.fleet_history import (
    fleet,
    generate_history_sql,
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
    village = places.villages(conn, scope=NATIONAL)[0]
    return {
        "map": {
            "map_devices": lambda: registry.map_devices(conn, now, scope=NATIONAL),
            "ingest_health": lambda: readings.ingest_health(conn, now),
            "open_alert_counts": lambda: alerts.open_counts(conn, scope=NATIONAL),
            "coverage_snapshot": lambda: coverage_view.snapshot(conn, scope=NATIONAL),
        },
        "alerts": {
            "district_names": lambda: places.district_names(conn, scope=NATIONAL),
            "list_alerts": lambda: alerts.list_alerts(
                conn, alerts.AlertFilter(states=alerts.UNRESOLVED, limit=500), scope=NATIONAL
            ),
            "transitions": lambda: alerts.transitions(conn, 1, scope=NATIONAL),
        },
        "device": {
            "search_devices": lambda: registry.search_devices(conn, "BTS-VTL-01", scope=NATIONAL),
            "device_detail": lambda: registry.device_detail(conn, tower, scope=NATIONAL),
            "status_events": lambda: registry.status_events(conn, tower, scope=NATIONAL),
            "device_alerts": lambda: alerts.list_alerts(
                conn, alerts.AlertFilter(subject=tower), scope=NATIONAL
            ),
            "rollup_6h": lambda: readings.rollup_series(
                conn, Kind.BTS, tower, now - timedelta(hours=6), now, scope=NATIONAL
            ),
            "rollup_24h": lambda: readings.rollup_series(
                conn, Kind.BTS, tower, now - timedelta(days=1), now, scope=NATIONAL
            ),
            "rollup_30d": lambda: readings.rollup_series(
                conn, Kind.BTS, tower, now - timedelta(days=30), now, scope=NATIONAL
            ),
            "tower_criticality": lambda: coverage_view.tower_criticality(
                conn, tower, scope=NATIONAL
            ),
        },
        "coverage": {
            "coverage_snapshot": lambda: coverage_view.snapshot(conn, scope=NATIONAL),
            "critical_top": lambda: coverage.critical_top(conn, 50, scope=NATIONAL),
        },
        "broadband": {
            "commune_fibre": lambda: broadband.commune_fibre(conn, scope=NATIONAL),
            "olts": lambda: broadband.olts(conn, now, scope=NATIONAL),
        },
        "cameras": {"cameras": lambda: cameras.cameras(conn, now, scope=NATIONAL)},
        "village": {
            "villages": lambda: places.villages(conn, scope=NATIONAL),
            "village": lambda: villages.village(conn, village["village_id"], scope=NATIONAL),
            "village_events": lambda: villages.village_events(
                conn, village["village_id"], scope=NATIONAL
            ),
            "nearest_towers": lambda: villages.nearest_towers(
                conn, village["lat"], village["lon"], scope=NATIONAL
            ),
            "tower_villages": lambda: villages.tower_villages(conn, tower, scope=NATIONAL),
        },
        "ingest": {
            "ingest_health": lambda: readings.ingest_health(conn, now),
            "ingest_series": lambda: readings.ingest_series(conn, now),
            "reject_counts": lambda: readings.reject_counts(
                conn, now - timedelta(hours=24), scope=NATIONAL
            ),
            "reject_samples": lambda: readings.reject_samples(
                conn, now - timedelta(hours=24), scope=NATIONAL
            ),
        },
    }


def latest_readings(conn: psycopg.Connection, now: datetime, last_state: bool) -> None:
    """For comparison, the database's side of the map's latest readings (as text, so that no
    client parsing counts): from the last-state tables as map_devices reads them, or searched
    in the readings hypertables (each device's newest within the window, through its
    (device_id, ts, seq) index), as map_devices did before them."""
    for kind in KEY_METRICS:
        columns = sql.SQL(", ").join(sql.Identifier(m) for m in latest_metrics(kind))
        if last_state:
            found = sql.SQL(
                "LEFT JOIN (SELECT device_id, {columns} FROM {table} WHERE ts > %(since)s) r"
                " ON r.device_id = d.device_id"
            ).format(columns=columns, table=sql.Identifier(readings.latest_table(kind)))
        else:
            found = sql.SQL(
                "LEFT JOIN LATERAL (SELECT {columns} FROM {table} t"
                " WHERE t.device_id = d.device_id AND t.ts > %(since)s"
                " ORDER BY t.ts DESC LIMIT 1) r ON true"
            ).format(columns=columns, table=sql.Identifier(READING_TABLES[kind].name))
        query = sql.SQL(
            "SELECT d.device_id, to_jsonb(r)::text FROM devices d {found}"
            " WHERE d.kind = %(kind)s AND d.lat IS NOT NULL"
        ).format(found=found)
        conn.execute(query, {"since": now - LATEST_WINDOW, "kind": kind.value}).fetchall()


Timings = dict[str, dict[str, float]]  # query → p50_ms, p95_ms, max_ms


def time_queries_of(named: dict[str, Callable[[], Any]], repeat: int) -> Timings:
    """Per query, p50/p95/max milliseconds over ``repeat`` runs (after a warm-up)."""
    out = {}
    for name, run in named.items():
        run()
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        out[name] = {
            "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(p95, 2),
            "max_ms": round(samples[-1], 2),
        }
    return out


def time_queries(url: str, now: datetime, repeat: int) -> dict[str, Timings]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {p: time_queries_of(named, repeat) for p, named in page_queries(conn, now).items()}


def pause_policies(url: str) -> None:
    """Stop this database's background jobs (TimescaleDB): the bulk load would have them
    materialise and compress weeks at once while queries are timed, which a fleet in service
    never sees; what they would have done by now is done before timing instead."""
    with psycopg.connect(url, autocommit=True) as conn:
        if detect_flavor(conn) is Flavor.TIMESCALE:
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                " WHERE hypertable_name IS NOT NULL"
            )


def compress_as_policy(conn: psycopg.Connection) -> dict[str, Any]:
    """Compress every chunk the compression policies would have by now (each hypertable's
    chunks older than its ``compress_after``), as a fleet running that long has them; the
    compressed chunks and their size before and after (TimescaleDB; nothing elsewhere)."""
    if detect_flavor(conn) is not Flavor.TIMESCALE:
        return {"compressed_chunks": 0}
    policies = conn.execute(
        "SELECT hypertable_name, (config->>'compress_after')::interval"
        " FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'"
    ).fetchall()
    chunks = 0
    for table, after in policies:
        for (chunk,) in conn.execute(
            "SELECT c FROM show_chunks(%s::regclass, older_than => %s) c", (table, after)
        ).fetchall():
            conn.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,))
            chunks += 1
    before, after_bytes = conn.execute(
        "SELECT coalesce(sum(s.before_compression_total_bytes), 0),"
        " coalesce(sum(s.after_compression_total_bytes), 0)"
        " FROM timescaledb_information.hypertables h,"
        " LATERAL chunk_compression_stats(format('%I.%I', h.hypertable_schema,"
        " h.hypertable_name)::regclass) s"
        " WHERE s.compression_status = 'Compressed'"
    ).fetchone() or (0, 0)
    return {
        "compressed_chunks": chunks,
        "compressed_mb_before": round(int(before) / 2**20, 1),
        "compressed_mb_after": round(int(after_bytes) / 2**20, 1),
        "compression_ratio": round(int(before) / int(after_bytes), 1) if after_bytes else None,
    }


# Each layer's cost is timed by leaving it out (IOC_DASHBOARD_MAP_SKIP): the deck draws all its
# layers in one frame, so removal is what an operator would save. The towers stay, since the
# map counts as drawn when they show.
LAYERS = ("background", "labels", "coverage-raster", "villages", "dead-spots", "devices-broadband",
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
    parser.add_argument("--quick", action="store_true",
                        help="8 days hourly (a chunk compressed), 3 navigations")  # fmt: skip
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--interval-s", type=int, default=60, help="reporting interval")
    parser.add_argument("--repeat", type=int, help="runs of each query (default 30, 10 quick)")
    parser.add_argument("--url", help="server URL (default: IOC_TEST_TSDB_URL, else local)")
    parser.add_argument("--no-browser", "--no-map", action="store_true",
                        help="skip map_ready_s, layer_ms (the page queries only)")  # fmt: skip
    parser.add_argument("--no-layers", action="store_true", help="skip layer_ms")
    args = parser.parse_args()
    days = 8 if args.quick else args.days
    interval_s = 3600 if args.quick else args.interval_s
    repeat = args.repeat or (10 if args.quick else 30)
    server = args.url or harness().tsdb_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    with scratch_database(server, "ioc_bench_dashboard") as url:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        load_scenario_db(url)
        pause_policies(url)
        ids = fleet()
        states = {i: DeviceState.ONLINE for kind_ids in ids.values() for i in kind_ids}
        states.update({i: DeviceState.OFFLINE for i in ids[Kind.BTS][:60]})
        set_states(url, now - timedelta(minutes=10), states, rejects=2000)
        asyncio.run(open_alerts(url, now, ids[Kind.BTS][:60]))
        asyncio.run(write_sample_coverage(url, now))
        t1 = time.perf_counter()
        rows = generate_history_sql(url, now, days=days, interval_s=interval_s, progress=log)
        generate_s = time.perf_counter() - t1
        log(f"{rows:,} rows generated in {generate_s:.0f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            t1 = time.perf_counter()
            refreshed = readings.refresh_rollups(conn, minute_since=now - timedelta(hours=6))
            rollups_s = time.perf_counter() - t1
            t1 = time.perf_counter()
            compression = compress_as_policy(conn)
            compress_s = time.perf_counter() - t1
            log(f"rollups {rollups_s:.0f} s, compression {compress_s:.0f} s: {compression}")
            conn.execute("ANALYZE")
            flavor = "timescale" if refreshed else "plain"
            password = "bench-pass-1"
            users.add_user(conn, "bench", password, "operator")
        log(f"data ready in {time.perf_counter() - t0:.0f} s ({rows:,} rows, {flavor})")
        pages = time_queries(url, now, repeat=repeat)
        with psycopg.connect(url, autocommit=True) as conn:
            reference = time_queries_of(
                {
                    "map_latest_from_last_state": lambda: latest_readings(conn, now, True),
                    "map_latest_from_hypertables": lambda: latest_readings(conn, now, False),
                },
                repeat,
            )
        log(f"the map's latest readings, database side: {reference}")
        for page, timings in pages.items():
            figures = (f"{k} {v['p50_ms']}/{v['p95_ms']}/{v['max_ms']}" for k, v in timings.items())
            log(f"{page:<9} p50/p95/max ms: " + ", ".join(figures))
        named = [(f"{p}.{n}", f) for p, t in pages.items() for n, f in t.items()]
        slowest, worst = max(named, key=lambda x: x[1]["max_ms"])
        browser: dict[str, Any] = {}
        if not args.no_browser:
            browser = map_ready(url, password, 3 if args.quick else 5, not args.no_layers)
        result = {
            **browser,
            "max_query_ms": worst["max_ms"],
            "slowest_query": slowest,
            "p95_query_ms": max(f["p95_ms"] for _, f in named),
            "page_total_ms": {
                p: round(sum(f["p50_ms"] for f in t.values()), 1) for p, t in pages.items()
            },
            "query_ms": dict(named),
            "reference_ms": reference,
            "query_runs": repeat,
            "telemetry_rows": rows,
            "devices": sum(len(v) for v in ids.values()),
            "days": days,
            "interval_s": interval_s,
            "database": flavor,
            "generate_s": round(generate_s, 1),
            "rollups_s": round(rollups_s, 1),
            "compress_s": round(compress_s, 1),
            **compression,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
