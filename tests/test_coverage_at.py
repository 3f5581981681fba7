"""Coverage at a past moment (issue 18, part 3): `ioc coverage at`, the map's time slider and
the village's outage timeline, over a history the real coverage service wrote.

The history: the coverage scene (tests/support/coverage_scene.py) built at 20:00 on 30/11
(province time), tower M (mobifone) going off air at 20:30 and back at 21:30, the service's
clock set to each moment, the status events written as the ingester writes them. Village "mbf"
(mobifone only, from M) is dark in between; "both" loses mobifone; "far" never had signal.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ioc.cli_coverage_at import PROVINCE_ZONE, parse_moment
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.service import CoverageService
from store.coverage_history import coverage_at, device_states_at, history_span
from store.migrate import upgrade
from tests.support.coverage_scene import coverage_events, load_scene
from tests.support.databases import scratch_database
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

BUILT = datetime(2026, 11, 30, 20, 0, tzinfo=PROVINCE_ZONE)
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
        "ioc: '30/11 21h' is not a time like 2026-11-30T21:00+07:00 (without an offset:"
        " Asia/Ho_Chi_Minh)"
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
        span = history_span(conn)
        assert span is not None and span.earliest == BUILT
        during = coverage_at(conn, DOWN + timedelta(minutes=1))
        at_down = device_states_at(conn, DOWN, ["M", "V", "BAD"])
        before = device_states_at(conn, DOWN - timedelta(seconds=1), ["M"])
    assert [(v.village_id, v.dead_spot, v.lost, v.towers) for v in during.villages] == [
        ("mbf", True, ["mobifone"], ["M"]),
        ("far", True, [], []),
        ("both", False, ["mobifone"], ["M"]),
    ]
    assert (at_down["M"].state, at_down["V"].state) == ("offline", "online")
    assert at_down["BAD"].since is None and at_down["BAD"].state == "unknown"
    assert before["M"].state == "online"


def test_times_without_an_offset_are_read_in_the_dashboards_zone() -> None:
    from dashboard.i18n import ZONE_NAME

    assert str(PROVINCE_ZONE) == ZONE_NAME
    assert parse_moment("2026-11-30T21:00") == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
