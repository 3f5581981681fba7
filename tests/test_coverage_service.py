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
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.service import CoverageService
from processing.coverage.serving import Why
from store import coverage as q
from tests.support.clients import mqtt_client
from tests.support.coverage_scene import (
    bts_reading,
    coverage_events,
    drive_test,
    mbf_lost_by,
    publish,
    village_rows,
)
from tests.support.polling import wait_until


async def test_tower_offline_to_village_event_in_seconds(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    now = village_rows(database_url)
    assert now["mbf"]["operators"] == ["mobifone"] and now["far"]["dead_spot"]
    assert now["both"]["operators"] == ["viettel", "mobifone"]
    assert now["both"]["district"] == "Huyện Tây Sơn"
    with psycopg.connect(database_url) as conn:
        refused = q.rejections(conn)
        assert [(r["device_id"], r["sector"]) for r in refused] == [("BAD", 1)]
        assert "unknown band 1234 MHz" in refused[0]["reason"]
        assert {r["device_id"] for r in q.critical_top(conn, 10)} == {"V", "M"}
    assert coverage_events(database_url) == []

    status = topics.device(Kind.BTS, "M", Channel.STATUS)
    loop = asyncio.get_running_loop()
    async with mqtt_client(mqtt_url, mqtt_protocol) as c:
        started = loop.time()
        await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1, retain=True)

        async def lost() -> bool:
            return any(e["kind"] == "lost" for e in coverage_events(database_url))

        await wait_until(lost, timeout_s=15)
        latency = loop.time() - started
        events = {e["village_id"]: e for e in coverage_events(database_url)}
        assert set(events) == {"mbf", "both"}
        assert events["mbf"]["kind"] == "lost" and events["mbf"]["towers"] == ["M"]
        assert events["mbf"]["operators_lost"] == ["mobifone"]
        assert events["mbf"]["population"] == 400
        assert (events["both"]["kind"], events["both"]["operators_now"]) == (
            "degraded",
            ["viettel"],
        )
        assert village_rows(database_url)["mbf"]["dead_spot"]
        print(f"offline status → village event: {latency:.2f} s")

        await c.publish(status, encode({"device_id": "M", "state": "online"}), qos=1, retain=True)

        async def restored() -> bool:
            return any(e["kind"] == "restored" for e in coverage_events(database_url))

        await wait_until(restored, timeout_s=15)
        await c.publish(status, b"", qos=1, retain=True)  # leave no retained state behind
    with psycopg.connect(database_url) as conn:
        history = conn.execute(
            "SELECT operators FROM coverage_history WHERE place_id = 'mbf' ORDER BY ts"
        ).fetchall()
    assert [h[0] for h in history] == [["mobifone"], [], ["mobifone"]]


async def test_probes_reporting_no_service_make_a_dead_spot(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    mbf = village_rows(database_url)["mbf"]
    assert not mbf["dead_spot"]
    with psycopg.connect(database_url) as conn:
        lat, lon = conn.execute("SELECT lat, lon FROM villages WHERE village_id = 'mbf'").fetchone()  # type: ignore[misc]
    off_raster = {"device_id": "P1", "ts": datetime.now(UTC).isoformat(), "seq": 100,
                  "lat": 10.0, "lon": 100.0, "operator": "mobifone", "technology": "4G",
                  "rsrp_dbm": -90.0}  # fmt: skip
    await drive_test(mqtt_url, mqtt_protocol, topics, lat, lon, no_service=True)
    async with mqtt_client(mqtt_url, mqtt_protocol) as c:
        await c.publish(
            topics.device(Kind.PROBE, "P1", Channel.MEASUREMENTS), encode([off_raster]), qos=1
        )

    async def judged() -> bool:
        return bool(village_rows(database_url)["mbf"]["dead_spot"])

    await wait_until(judged, timeout_s=20)
    mbf = village_rows(database_url)["mbf"]
    assert mbf["measured"] == ["mobifone"] and mbf["operators"] == []
    events = coverage_events(database_url)
    assert [(e["village_id"], e["kind"], e["towers"]) for e in events] == [("mbf", "lost", [])]
    with psycopg.connect(database_url) as conn:
        probe = [r for r in q.rejections(conn) if r["source"] == "probe"]
    assert [(r["reason"], r["count"]) for r in probe] == [("outside_raster", 1)]


async def test_a_drive_test_before_an_outage_does_not_mask_it(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    with psycopg.connect(database_url) as conn:
        lat, lon = conn.execute("SELECT lat, lon FROM villages WHERE village_id = 'mbf'").fetchone()  # type: ignore[misc]
    await drive_test(mqtt_url, mqtt_protocol, topics, lat, lon, ago=timedelta(minutes=30))

    async def measured() -> bool:
        return bool(village_rows(database_url)["mbf"]["measured"] == ["mobifone"])

    await wait_until(measured, timeout_s=20)
    status = topics.device(Kind.BTS, "M", Channel.STATUS)
    await publish(mqtt_url, mqtt_protocol, status, {"device_id": "M", "state": "offline"})
    await mbf_lost_by(database_url, "M")
    assert village_rows(database_url)["mbf"]["measured"] == []


async def test_a_tower_reporting_its_backhaul_down_does_not_serve(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    topic = topics.device(Kind.BTS, "M", Channel.TELEMETRY)
    await publish(mqtt_url, mqtt_protocol, topic, bts_reading("M", backhaul_up=False))
    await mbf_lost_by(database_url, "M")


async def test_a_fibre_cut_behind_the_feeding_node_takes_its_towers_off_air(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    # OLT-1 feeds commune 21808, where V and M stand; they report nothing wrong themselves.
    topic = topics.device(Kind.BROADBAND, "OLT-1", Channel.TELEMETRY)
    await publish(mqtt_url, mqtt_protocol, topic, bts_reading("OLT-1", uplink_up=False))

    async def lost() -> bool:
        return {e["village_id"] for e in coverage_events(database_url) if e["kind"] == "lost"} == {
            "mbf",
            "both",
        }

    await wait_until(lost, timeout_s=15)
    events = {e["village_id"]: e for e in coverage_events(database_url)}
    assert events["both"]["towers"] == ["M", "V"] and events["both"]["population"] == 700

    async def judged() -> bool:  # verdicts are published just after their events commit
        return coverage_service.verdicts["M"].why is Why.UPLINK_DOWN

    await wait_until(judged, timeout_s=15)
    spliced = bts_reading("OLT-1", uplink_up=True) | {"seq": 2}
    await publish(mqtt_url, mqtt_protocol, topic, spliced)

    async def restored() -> bool:
        return {
            e["village_id"] for e in coverage_events(database_url) if e["kind"] == "restored"
        } == {
            "mbf",
            "both",
        }

    await wait_until(restored, timeout_s=15)


async def test_a_tower_never_heard_from_is_unknown_not_covered(
    loaded: str, ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int,
    topics: Topics,
) -> None:  # fmt: skip
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE devices SET state = 'unknown', state_since = NULL WHERE device_id = 'M'"
        )
    svc = CoverageService(
        coverage_service_config(
            database_url=database_url,
            coverage=coverage_config(resolution_m=200.0, unknown_grace_s=0.0),
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)
        mbf = village_rows(database_url)["mbf"]
        assert (mbf["operators"], mbf["unknown"], mbf["dead_spot"]) == ([], ["mobifone"], False)
        with psycopg.connect(database_url) as conn:
            head = headline(snapshot(conn))
        assert head is not None  # the headline does not call them covered:
        assert head.population_unknown == pytest.approx(400 / (700 + 400 + 90))
        assert head.population_covered["any"] == pytest.approx(700 / (700 + 400 + 90))
        status = topics.device(Kind.BTS, "M", Channel.STATUS)
        await publish(mqtt_url, mqtt_protocol, status, {"device_id": "M", "state": "online"})

        async def heard() -> bool:
            return bool(village_rows(database_url)["mbf"]["operators"] == ["mobifone"])

        await wait_until(heard, timeout_s=15)
        assert coverage_events(database_url) == []  # a tower first heard from is not news
        async with mqtt_client(mqtt_url, mqtt_protocol) as c:
            await c.publish(status, b"", qos=1, retain=True)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_restart_writes_no_events_for_nothing(
    coverage_service: CoverageService, database_url: str
) -> None:
    again = CoverageService(
        coverage_service_config(
            database_url=database_url, coverage=coverage_config(resolution_m=200.0)
        )
    )
    stop = asyncio.Event()
    stop.set()  # build, write, and stop at the first wait
    await asyncio.wait_for(again.run(stop), 60)
    assert again.coverage is not None and again.ready.is_set()
    assert coverage_events(database_url) == []


async def test_sectors_reported_down_in_telemetry_take_their_coverage_away(
    coverage_service: CoverageService,
    database_url: str,
    mqtt_url: str,
    mqtt_protocol: int,
    topics: Topics,
) -> None:
    reading = {"device_id": "M", "ts": datetime.now(UTC).isoformat(), "seq": 1,
               "power_source": "battery", "sectors_up": [False, False, False]}  # fmt: skip
    async with mqtt_client(mqtt_url, mqtt_protocol) as c:
        await c.publish(topics.device(Kind.BTS, "M", Channel.TELEMETRY), encode(reading), qos=1)
    await mbf_lost_by(database_url, "M")
