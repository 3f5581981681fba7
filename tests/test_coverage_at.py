"""Coverage at a past moment (issue 18, part 3): `ioc coverage at`, the map's time slider and
the village's outage timeline, over a history the real coverage service wrote.

The history: the coverage scene (tests/support/coverage_scene.py) built at 20:00 on 30/11
(province time), tower M (mobifone) going off air at 20:30 and back at 21:30, the service's
clock set to each moment, the status events written as the ingester writes them. Village "mbf"
(mobifone only, from M) is dark in between; "both" loses mobifone; "far" never had signal.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import history_view
from dashboard.coverage_view import RASTER_LAYER_ID
from dashboard.livemap import STATE_COLOURS
from devices.clock import LOCAL_ZONE
from devices.kinds import Kind
from ioc.cli_coverage_at import parse_moment
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.service import CoverageService
from store import places
from store.coverage_history import coverage_at, device_states_at, history_span
from store.db import connect
from store.migrate import upgrade
from store.scope import NATIONAL
from tests.support.coverage_scene import coverage_events, load_scene
from tests.support.databases import scratch_database
from tests.support.environment import clean_environ
from tests.support.fleet_history import fleet
from tests.support.polling import wait_until
from tests.test_dashboard import app, texts
from tests.test_dashboard_runway import layer, ok

BUILT = datetime(2026, 11, 30, 20, 0, tzinfo=LOCAL_ZONE)
DOWN = BUILT + timedelta(minutes=30)
BACK = BUILT + timedelta(minutes=90)


def _status(url: str, device_id: str, state: str, ts: datetime, reason: str) -> None:
    """A status change as store/writer.py applies one: the device row and its history row."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE devices SET state = %s, state_since = %s, state_reason = %s"
            " WHERE device_id = %s",
            (state, ts, reason, device_id),
        )
        conn.execute(
            "INSERT INTO status_events (ts, device_id, state, reason) VALUES (%s, %s, %s, %s)",
            (ts, device_id, state, reason),
        )


async def _write_outage(url: str) -> None:
    now = [BUILT]
    config = coverage_service_config(
        database_url=url, coverage=coverage_config(resolution_m=200.0), measured_poll_s=3600.0
    )
    svc = CoverageService(config, clock=lambda: now[0])
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)

        def mbf(kind: str) -> bool:
            return any(e["village_id"] == "mbf" and e["kind"] == kind for e in coverage_events(url))

        now[0] = DOWN
        _status(url, "M", "offline", DOWN, "will")
        await wait_until(lambda: mbf("lost"), timeout_s=30)
        now[0] = BACK
        _status(url, "M", "online", BACK, "birth")
        await wait_until(lambda: mbf("restored"), timeout_s=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def build_outage_history(url: str) -> None:
    with psycopg.connect(url) as conn:
        upgrade(conn)
    load_scene(url)
    for tower in ("V", "M", "OLT-1"):
        _status(url, tower, "online", BUILT - timedelta(hours=2), "birth")
    asyncio.run(_write_outage(url))


@pytest.fixture(scope="module")
def outage_url(pg_server_url: str) -> Iterator[str]:
    with scratch_database(pg_server_url) as url:
        build_outage_history(url)
        yield url


def ioc(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**clean_environ(), "IOC_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "ioc", "coverage", "at", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_inside_the_outage_the_dark_village_and_the_tower_down_are_named(outage_url: str) -> None:
    out = ioc(outage_url, "2026-11-30T21:00")  # no offset: the province's time
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == (
        "2026-11-30 21:00 +07:00: 2 villages dark, 490 people, 1 site down"
        " (1 dark by an outage, 1 village short of an operator)"
    )
    text = out.stdout
    dark = text.index("dark (no operator):")
    short = text.index("short of an operator:")
    assert dark < text.index("mbf (mbf) · Thị trấn Phú Phong · Huyện Tây Sơn · 400 people") < short
    assert "lost mobifone at 20:30 30/11" in text
    assert "sites named by the loss events: M (offline since 20:30 30/11, will)" in text
    assert text.index("both (both)") > short and "has viettel" in text
    assert "dead spots, no loss event kept): 1 village, 90 people (--all lists them)" in text
    assert "far (far)" in ioc(outage_url, "2026-11-30T21:00+07:00", "--all").stdout


def test_before_and_after_the_outage_only_the_dead_spot_is_dark(outage_url: str) -> None:
    for moment in ("2026-11-30T20:15+07:00", "2026-11-30T14:45Z", "2026-12-01T08:00"):
        out = ioc(outage_url, moment)
        assert out.returncode == 0, out.stderr
        head = out.stdout.splitlines()[0]
        assert head.endswith(
            ": 1 village dark, 90 people, 0 sites down (0 dark by an outage, 0 villages short of"
            " an operator)"
        ), head
        assert "mbf" not in out.stdout
    assert ioc(outage_url, "2026-11-30T14:45Z").stdout.startswith("2026-11-30 21:45 +07:00:")


def test_a_moment_outside_the_kept_history_is_one_clear_line(outage_url: str) -> None:
    early = ioc(outage_url, "2026-11-30T19:59")
    assert early.returncode == 2 and early.stdout == ""
    assert early.stderr.strip() == (
        "ioc: no coverage history before 2026-11-30 20:00 +07:00: the earliest kept is"
        " 2026-11-30 20:00 +07:00, and 2026-11-30 19:59 +07:00 is earlier"
    )
    future = ioc(outage_url, (datetime.now(UTC) + timedelta(days=2)).isoformat())
    assert future.returncode == 2 and "is in the future (now is " in future.stderr
    assert len(future.stderr.strip().splitlines()) == 1


def test_a_bad_time_is_one_clear_line(outage_url: str, database_url: str) -> None:
    bad = ioc(outage_url, "30/11 21h")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        "ioc: '30/11 21h' is not a date or time like 2026-11-30, 2026-11-30T21:00 or"
        " 2026-11-30T21:00+07:00 (without an offset: Asia/Ho_Chi_Minh)"
    )
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    empty = ioc(database_url, "2026-11-30T21:00")
    assert empty.returncode == 2
    assert empty.stderr.strip() == (
        "ioc: no coverage history kept yet: run `ioc coverage run` (ioc up does) first"
    )


def test_the_store_reads_states_at_a_moment(outage_url: str) -> None:
    with psycopg.connect(outage_url) as conn:
        span = history_span(conn, scope=NATIONAL)
        assert span is not None and span.earliest == BUILT
        during = coverage_at(conn, DOWN + timedelta(minutes=1), scope=NATIONAL)
        at_down = device_states_at(conn, DOWN, ["M", "V", "BAD"], scope=NATIONAL)
        before = device_states_at(conn, DOWN - timedelta(seconds=1), ["M"], scope=NATIONAL)
    assert [(v.village_id, v.dead_spot, v.lost, v.towers) for v in during.villages] == [
        ("mbf", True, ["mobifone"], ["M"]),
        ("far", True, [], []),
        ("both", False, ["mobifone"], ["M"]),
    ]
    assert (at_down["M"].state, at_down["V"].state) == ("offline", "online")
    assert at_down["BAD"].since is None and at_down["BAD"].state == "unknown"
    assert before["M"].state == "online"


def test_times_without_an_offset_are_read_in_vietnams_zone() -> None:
    assert parse_moment("2026-11-30T21:00") == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


# -- the dashboard: the map at a past moment and a village's outage timeline -----------------


@dataclass(frozen=True, slots=True)
class PastOutage:
    built: datetime  # the first picture
    down: datetime  # the village went dark, the tower off air
    back: datetime
    village: dict[str, Any]
    tower: str
    dark_then: int  # villages dark during the outage (the seed dead spots and this one)


def write_past_outage(url: str, now: datetime) -> PastOutage:
    """As the coverage service and the ingester write it: every village's first verdict, one
    village losing both operators when one tower went off air, and its return an hour on."""
    built, down, back = now - timedelta(hours=3), now - timedelta(hours=2), now - timedelta(hours=1)
    with connect(url, autocommit=True) as conn:
        villages = places.villages(conn, scope=NATIONAL)
        rows = conn.execute("SELECT village_id, seed_dead_spot FROM villages").fetchall()
        village = next(v for v in villages if v["village_id"] in {r[0] for r in rows if not r[1]})
        tower = fleet()[Kind.BTS][5]
        conn.execute(
            "INSERT INTO coverage_history (ts, place_kind, place_id, operators, measured,"
            " dead_spot) SELECT %s, 'village', village_id, CASE WHEN seed_dead_spot THEN"
            " '{}'::text[] ELSE '{viettel,mobifone}' END, '{}', seed_dead_spot FROM villages",
            (built,),
        )
        both = ["viettel", "mobifone"]
        for ts, ops, kind, lost, now_ops in (
            (down, [], "lost", both, []),
            (back, both, "restored", [], both),
        ):
            conn.execute(
                "INSERT INTO coverage_history VALUES (%s, 'village', %s, %s, '{}', %s)",
                (ts, village["village_id"], ops, not ops),
            )
            conn.execute(
                "INSERT INTO coverage_events (ts, village_id, kind, operators_lost,"
                " operators_now, towers, population) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (ts, village["village_id"], kind, lost, now_ops, [tower], village["population"]),
            )
        conn.execute(
            "INSERT INTO status_events (ts, device_id, state, reason) SELECT %s, device_id,"
            " 'online', 'birth' FROM devices WHERE kind <> 'probe'",
            (built - timedelta(hours=1),),
        )
        for ts, state in ((down, "offline"), (back, "online")):
            conn.execute(
                "INSERT INTO status_events (ts, device_id, state, reason) VALUES"
                " (%s, %s, %s, 'test')",
                (ts, tower, state),
            )
        seeded = sum(1 for r in rows if r[1])
    return PastOutage(built, down, back, village, tower, seeded + 1)


@pytest.fixture(scope="module")
def past(scenario_url: str) -> PastOutage:
    return write_past_outage(scenario_url, datetime.now(UTC).replace(second=0, microsecond=0))


def look_back(at: AppTest, moment: datetime) -> AppTest:
    local = moment.astimezone(LOCAL_ZONE)
    at.toggle(key=history_view.PAST_ON).set_value(True).run()
    at.date_input(key=history_view.PAST_DATE).set_value(local.date())
    at.time_input(key=history_view.PAST_TIME).set_value(local.time())
    return ok(at.run())


def test_the_map_at_a_past_moment_in_english(scenario_url, past, monkeypatch) -> None:
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="en").run())
    assert not at.warning or not any("As of" in w.value for w in at.warning)
    during = past.down + timedelta(minutes=30)
    at = look_back(at, during)
    (banner,) = [w.value for w in at.warning if w.value.startswith("As of")]
    dark = past.dark_then
    assert banner.startswith(
        f"As of {during.astimezone(LOCAL_ZONE):%H:%M %d/%m}: villages dark: {dark:,}, people: "
    ) and banner.endswith(
        "; sites down: 1. The map does not refresh itself while showing the past."
    )
    spots = {r["id"] for r in layer(at, "dead-spots")["data"]}  # type: ignore[index]
    assert past.village["village_id"] in spots and len(spots) == dark
    towers = {r["id"]: r for r in layer(at, "devices-bts")["data"]}  # type: ignore[index]
    assert towers[past.tower]["colour"] == STATE_COLOURS["offline"]
    assert sum(r["colour"] == STATE_COLOURS["offline"] for r in towers.values()) == 1
    assert layer(at, RASTER_LAYER_ID) is None and "The coverage raster is hidden" in texts(at)
    table = at.dataframe[0].value
    assert list(table["Village"]) == [past.village["name"]]
    assert list(table["Sites that caused it (state then)"]) == [f"{past.tower} (offline)"]
    after = look_back(at, past.back + timedelta(minutes=5))
    assert past.village["village_id"] not in {
        r["id"]
        for r in layer(after, "dead-spots")["data"]  # type: ignore[index]
    }
    live = ok(after.button(key="map_past_back").click().run())
    assert not any(w.value.startswith("As of") for w in live.warning)
    assert live.toggle(key=history_view.PAST_ON).value is False


def test_the_map_at_a_past_moment_in_vietnamese_and_outside_the_history(
    scenario_url, past, monkeypatch
) -> None:
    at = ok(app(scenario_url, monkeypatch, "viewer", lang="vi").run())
    during = past.down + timedelta(minutes=30)
    at = look_back(at, during)
    assert any(
        w.value.startswith(f"Lúc {during.astimezone(LOCAL_ZONE):%H:%M %d/%m}: ")
        and "thôn mất sóng" in w.value
        for w in at.warning
    )
    assert "Về trực tiếp" in [b.label for b in at.button]
    early = look_back(at, past.built - timedelta(days=1))
    (line,) = [e.value for e in early.error]
    assert line.startswith("Không có lịch sử vùng phủ trước thời điểm này: bản ghi sớm nhất")
    assert not early.get("deck_gl_json_chart"), "one clear line, not an empty map"


def test_the_village_page_draws_its_outage_timeline(scenario_url, past, monkeypatch) -> None:
    for lang, all_ops in (("en", "All operators"), ("vi", "Mọi nhà mạng")):
        at = app(scenario_url, monkeypatch, "viewer", lang=lang)
        at.switch_page("../dashboard/pages/village.py")
        at.query_params["village"] = past.village["village_id"]
        at = ok(at.run())
        (chart,) = at.get("vega_lite_chart")
        spec = json.loads(chart.proto.spec)
        assert spec["mark"] == "bar" or spec["mark"]["type"] == "bar"
        frame = periods(chart)
        assert sorted(frame["track"]) == sorted([all_ops, "mobifone", "viettel"])
        assert set(frame["minutes"]) == {60.0}


def periods(chart: Any) -> pd.DataFrame:
    """The rows an Altair chart drew (Streamlit sends them as Arrow beside the spec)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    (dataset,) = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_pandas()


def test_outage_periods_per_operator_and_for_all() -> None:
    t0 = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)
    events = [
        {"ts": t0, "kind": "degraded", "operators_lost": ["viettel"],
         "operators_now": ["mobifone"]},
        {"ts": t0 + timedelta(minutes=10), "kind": "lost", "operators_lost": ["mobifone"],
         "operators_now": []},
        {"ts": t0 + timedelta(minutes=30), "kind": "restored", "operators_lost": [],
         "operators_now": ["mobifone"]},
    ]  # fmt: skip
    got = history_view.outage_periods(reversed(events), until=t0 + timedelta(hours=1))
    assert [(r.track, (r.end - r.start).seconds // 60) for r in got.itertuples()] == [
        ("mobifone", 20),
        ("", 20),
        ("viettel", 60),
    ]
