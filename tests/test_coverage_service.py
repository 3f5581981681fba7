"""The coverage service against a real broker, ingester and database: a tower's offline status
becomes a village event within seconds; probe measurements overrule the prediction; backhaul,
fibre and sectors reported down take coverage away; a restart does not repeat events. The
scene is tests/support/coverage_scene.py; the running service, tests/fixtures/coverage.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from dashboard.coverage_view import headline, snapshot
from devices import Channel, Kind, Topics, encode
from ingest import Ingester
from processing.coverage.service import CoverageService
from processing.coverage.serving import Why
from store import coverage as q
from store.scope import NATIONAL
from tests.support.coverage_scene import (
    Live,
    bts_reading,
    built_once,
    coverage_events,
    running_coverage,
)
from tests.support.polling import wait_until


async def test_tower_offline_to_village_event_in_seconds(live: Live) -> None:
    now = live.villages()
    assert now["mbf"]["operators"] == ["mobifone"] and now["far"]["dead_spot"]
    assert now["both"]["operators"] == ["viettel", "mobifone"]
    assert now["both"]["district"] == "Huyện Tây Sơn"
    with psycopg.connect(live.database_url) as conn:
        refused = q.rejections(conn)
        assert [(r["device_id"], r["sector"]) for r in refused] == [("BAD", 1)]
        assert "unknown band 1234 MHz" in refused[0]["reason"]
        assert {r["device_id"] for r in q.critical_top(conn, 10, scope=NATIONAL)} == {"V", "M"}
    assert live.events() == []

    status = live.topics.device(Kind.BTS, "M", Channel.STATUS)
    loop = asyncio.get_running_loop()
    async with live.client() as c:
        started = loop.time()
        await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1, retain=True)

        async def lost() -> bool:
            return any(e["kind"] == "lost" for e in live.events())

        await wait_until(lost, timeout_s=15)
        latency = loop.time() - started
        events = {e["village_id"]: e for e in live.events()}
        assert set(events) == {"mbf", "both"}
        assert events["mbf"]["kind"] == "lost" and events["mbf"]["towers"] == ["M"]
        assert events["mbf"]["operators_lost"] == ["mobifone"]
        assert events["mbf"]["population"] == 400
        assert (events["both"]["kind"], events["both"]["operators_now"]) == (
            "degraded",
            ["viettel"],
        )
        assert live.villages()["mbf"]["dead_spot"]
        print(f"offline status → village event: {latency:.2f} s")

        await c.publish(status, encode({"device_id": "M", "state": "online"}), qos=1, retain=True)

        async def restored() -> bool:
            return any(e["kind"] == "restored" for e in live.events())

        await wait_until(restored, timeout_s=15)
        await c.publish(status, b"", qos=1, retain=True)  # leave no retained state behind
    with psycopg.connect(live.database_url) as conn:
        history = conn.execute(
            "SELECT operators FROM coverage_history WHERE place_id = 'mbf' ORDER BY ts"
        ).fetchall()
    assert [h[0] for h in history] == [["mobifone"], [], ["mobifone"]]


async def test_probes_reporting_no_service_make_a_dead_spot(live: Live) -> None:
    assert not live.villages()["mbf"]["dead_spot"]
    off_raster = {"device_id": "P1", "ts": datetime.now(UTC).isoformat(), "seq": 100,
                  "lat": 10.0, "lon": 100.0, "operator": "mobifone", "technology": "4G",
                  "rsrp_dbm": -90.0}  # fmt: skip
    await live.drive_test("mbf", no_service=True)
    await live.publish(Kind.PROBE, "P1", Channel.MEASUREMENTS, [off_raster])

    async def judged() -> bool:
        return bool(live.villages()["mbf"]["dead_spot"])

    await wait_until(judged, timeout_s=20)
    mbf = live.villages()["mbf"]
    assert mbf["measured"] == ["mobifone"] and mbf["operators"] == []
    events = live.events()
    assert [(e["village_id"], e["kind"], e["towers"]) for e in events] == [("mbf", "lost", [])]
    with psycopg.connect(live.database_url) as conn:
        probe = [r for r in q.rejections(conn) if r["source"] == "probe"]
    assert [(r["reason"], r["count"]) for r in probe] == [("outside_raster", 1)]


async def test_a_drive_test_before_an_outage_does_not_mask_it(live: Live) -> None:
    await live.drive_test("mbf", ago=timedelta(minutes=30))

    async def measured() -> bool:
        return bool(live.villages()["mbf"]["measured"] == ["mobifone"])

    await wait_until(measured, timeout_s=20)
    await live.publish(Kind.BTS, "M", Channel.STATUS, {"device_id": "M", "state": "offline"})
    await live.mbf_lost_by("M")
    assert live.villages()["mbf"]["measured"] == []


@pytest.mark.parametrize(
    "down",
    [
        pytest.param({"backhaul_up": False}, id="backhaul"),
        pytest.param({"power_source": "battery", "sectors_up": [False] * 3}, id="sectors"),
    ],
)
async def test_a_tower_reporting_its_backhaul_or_sectors_down_does_not_serve(
    live: Live, down: dict[str, object]
) -> None:
    await live.publish(Kind.BTS, "M", Channel.TELEMETRY, bts_reading("M", **down))
    await live.mbf_lost_by("M")


async def test_a_fibre_cut_behind_the_feeding_node_takes_its_towers_off_air(live: Live) -> None:
    # OLT-1 feeds commune 21808, where V and M stand; they report nothing wrong themselves.
    cut = bts_reading("OLT-1", uplink_up=False)
    await live.publish(Kind.BROADBAND, "OLT-1", Channel.TELEMETRY, cut)

    def villages(kind: str) -> set[str]:
        return {e["village_id"] for e in live.events() if e["kind"] == kind}

    async def lost() -> bool:
        return villages("lost") == {"mbf", "both"}

    await wait_until(lost, timeout_s=15)
    events = {e["village_id"]: e for e in live.events()}
    assert events["both"]["towers"] == ["M", "V"] and events["both"]["population"] == 700

    async def judged() -> bool:  # verdicts are published just after their events commit
        return live.service.verdicts["M"].why is Why.UPLINK_DOWN

    await wait_until(judged, timeout_s=15)
    spliced = bts_reading("OLT-1", uplink_up=True) | {"seq": 2}
    await live.publish(Kind.BROADBAND, "OLT-1", Channel.TELEMETRY, spliced)

    async def restored() -> bool:
        return villages("restored") == {"mbf", "both"}

    await wait_until(restored, timeout_s=15)


async def test_a_tower_never_heard_from_is_unknown_not_covered(
    loaded: str, ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int,
    topics: Topics,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE devices SET state = 'unknown', state_since = NULL WHERE device_id = 'M'"
        )
    async with running_coverage(database_url, unknown_grace_s=0.0) as svc:
        live = Live(svc, database_url, mqtt_url, mqtt_protocol, topics)
        mbf = live.villages()["mbf"]
        assert (mbf["operators"], mbf["unknown"], mbf["dead_spot"]) == ([], ["mobifone"], False)
        with psycopg.connect(database_url) as conn:
            head = headline(snapshot(conn, scope=NATIONAL))
        assert head is not None  # the headline does not call them covered:
        assert head.population_unknown == pytest.approx(400 / (700 + 400 + 90))
        assert head.population_covered["any"] == pytest.approx(700 / (700 + 400 + 90))
        await live.publish(Kind.BTS, "M", Channel.STATUS, {"device_id": "M", "state": "online"})

        async def heard() -> bool:
            return bool(live.villages()["mbf"]["operators"] == ["mobifone"])

        await wait_until(heard, timeout_s=15)
        assert live.events() == []  # a tower first heard from is not news
        async with live.client() as c:
            await c.publish(topics.device(Kind.BTS, "M", Channel.STATUS), b"", qos=1, retain=True)


async def test_a_restart_writes_no_events_for_nothing(
    coverage_service: CoverageService, database_url: str
) -> None:
    again = await built_once(database_url)
    assert again.coverage is not None and again.ready.is_set()
    assert coverage_events(database_url) == []
