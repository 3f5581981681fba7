"""The coverage service against a real broker, ingester and database: a tower's offline status
becomes a village event within seconds; probe measurements overrule the prediction; refused
sectors are stored with their reason; a restart does not repeat events."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest

from dashboard.coverage_view import headline, snapshot
from devices import Channel, Kind, Topics, encode
from devices.endpoint import MqttEndpoint
from ingest import Ingester
from processing.coverage import CoverageConfig
from processing.coverage.service import CoverageService, CoverageServiceConfig
from processing.coverage.serving import Why
from store import coverage as q
from store.migrate import upgrade
from store.places import load_places, register_devices
from store.registry import device_row
from tests.conftest import wait_until
from tests.test_coverage_engine import LAT0, LON0, OUTLINE, _offset

SECTORS: list[dict[str, Any]] = [
    {"sector": k + 1, "azimuth_deg": 120.0 * k, "tilt_deg": 4.0, "band_mhz": 1800.0,
     "technology": "4G", "tx_power_dbm": 44.5, "beamwidth_deg": 65.0}
    for k in range(3)
]  # fmt: skip


def _bts(device_id: str, operator: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "name": device_id,
        "lat": lat,
        "lon": lon,
        "district_code": 547,
        "commune_code": 21808,
        "interval_s": 60,
        "operator": operator,
        "antenna_height_m": 35.0,
        "sectors": SECTORS,
    } | extra


def _load(url: str) -> None:
    villages = [
        ("both", *_offset(LAT0, LON0, 4500, 300), 700),
        ("mbf", *_offset(LAT0, LON0, 16000, 0), 400),
        ("far", *_offset(LAT0, LON0, -14000, -14000), 90),
    ]
    with psycopg.connect(url) as conn:
        load_places(
            conn,
            districts=[{"code": 547, "name": "Huyện Tây Sơn", "town": "Phú Phong", "lat": LAT0,
                        "lon": LON0, "mountainous": False, "polygon": [list(p) for p in OUTLINE]}],
            communes=[{"code": 21808, "name": "Thị trấn Phú Phong", "district_code": 547,
                       "division_type": "xã", "lat": LAT0, "lon": LON0, "population": 1190,
                       "has_fibre": True}],
            villages=[{"village_id": v, "name": v, "commune_code": 21808, "district_code": 547,
                       "lat": la, "lon": lo, "population": p, "synthetic": True,
                       "seed_dead_spot": False} for v, la, lo, p in villages],
            features=[{"name": "test", "kind": "outline", "points": [list(p) for p in OUTLINE],
                       "synthetic": True}],
        )  # fmt: skip
        bad = dict(SECTORS[0], band_mhz=1234.0)
        register_devices(
            conn,
            [
                device_row(Kind.BTS, _bts("V", "viettel", LAT0, LON0)),
                device_row(Kind.BTS, _bts("M", "mobifone", *_offset(LAT0, LON0, 9000, 0))),
                device_row(Kind.BTS, _bts("BAD", "vinaphone", LAT0, LON0, sectors=[bad])),
                device_row(Kind.PROBE, {"device_id": "P1", "lat": LAT0, "lon": LON0}),
                device_row(Kind.PROBE, {"device_id": "P2", "lat": LAT0, "lon": LON0}),
                device_row(
                    Kind.BROADBAND,
                    {"device_id": "OLT-1", "lat": LAT0, "lon": LON0, "communes_served": [21808]},
                ),
            ],
        )
        # V and M have been heard from (two hours ago); BAD has not.
        conn.execute(
            "UPDATE devices SET state = 'online', state_since = now() - interval '2h'"
            " WHERE device_id IN ('V', 'M', 'OLT-1')"
        )


def _client(mqtt_url: str, protocol: int) -> aiomqtt.Client:
    endpoint = MqttEndpoint.parse(mqtt_url)
    version = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
    return aiomqtt.Client(endpoint.host, endpoint.port, protocol=version)


@pytest.fixture
def loaded(database_url: str) -> str:
    """Places and devices in the database before the ingester starts and reads the registry."""
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    _load(database_url)
    return database_url


@pytest.fixture
async def service(
    loaded: str, ingester: Ingester, database_url: str
) -> AsyncIterator[CoverageService]:
    svc = CoverageService(
        CoverageServiceConfig(
            database_url=database_url,
            coverage=CoverageConfig(resolution_m=200.0),
            measured_poll_s=0.3,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.wait_for(svc.ready.wait(), 60)
    yield svc
    stop.set()
    await asyncio.wait_for(task, 30)


def _events(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return q.events_since(conn)


def _villages(url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return {r["place_id"]: r for r in q.coverage_rows(conn, "village")}


async def test_tower_offline_to_village_event_in_seconds(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    now = _villages(database_url)
    assert now["mbf"]["operators"] == ["mobifone"] and now["far"]["dead_spot"]
    assert now["both"]["operators"] == ["viettel", "mobifone"]
    assert now["both"]["district"] == "Huyện Tây Sơn"
    with psycopg.connect(database_url) as conn:
        refused = q.rejections(conn)
        assert [(r["device_id"], r["sector"]) for r in refused] == [("BAD", 1)]
        assert "unknown band 1234 MHz" in refused[0]["reason"]
        assert {r["device_id"] for r in q.critical_top(conn, 10)} == {"V", "M"}
    assert _events(database_url) == []

    status = topics.device(Kind.BTS, "M", Channel.STATUS)
    loop = asyncio.get_running_loop()
    async with _client(mqtt_url, mqtt_protocol) as c:
        started = loop.time()
        await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1, retain=True)

        async def lost() -> bool:
            return any(e["kind"] == "lost" for e in _events(database_url))

        await wait_until(lost, timeout_s=15)
        latency = loop.time() - started
        events = {e["village_id"]: e for e in _events(database_url)}
        assert set(events) == {"mbf", "both"}
        assert events["mbf"]["kind"] == "lost" and events["mbf"]["towers"] == ["M"]
        assert events["mbf"]["operators_lost"] == ["mobifone"]
        assert events["mbf"]["population"] == 400
        assert (events["both"]["kind"], events["both"]["operators_now"]) == (
            "degraded",
            ["viettel"],
        )
        assert _villages(database_url)["mbf"]["dead_spot"]
        print(f"offline status → village event: {latency:.2f} s")

        await c.publish(status, encode({"device_id": "M", "state": "online"}), qos=1, retain=True)

        async def restored() -> bool:
            return any(e["kind"] == "restored" for e in _events(database_url))

        await wait_until(restored, timeout_s=15)
        await c.publish(status, b"", qos=1, retain=True)  # leave no retained state behind
    with psycopg.connect(database_url) as conn:
        history = conn.execute(
            "SELECT operators FROM coverage_history WHERE place_id = 'mbf' ORDER BY ts"
        ).fetchall()
    assert [h[0] for h in history] == [["mobifone"], [], ["mobifone"]]


async def test_probes_reporting_no_service_make_a_dead_spot(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    mbf = _villages(database_url)["mbf"]
    assert not mbf["dead_spot"]
    with psycopg.connect(database_url) as conn:
        lat, lon = conn.execute("SELECT lat, lon FROM villages WHERE village_id = 'mbf'").fetchone()  # type: ignore[misc]
    off_raster = {"device_id": "P1", "ts": datetime.now(UTC).isoformat(), "seq": 100,
                  "lat": 10.0, "lon": 100.0, "operator": "mobifone", "technology": "4G",
                  "rsrp_dbm": -90.0}  # fmt: skip
    await _drive_test(mqtt_url, mqtt_protocol, topics, lat, lon, no_service=True)
    async with _client(mqtt_url, mqtt_protocol) as c:
        await c.publish(
            topics.device(Kind.PROBE, "P1", Channel.MEASUREMENTS), encode([off_raster]), qos=1
        )

    async def judged() -> bool:
        return bool(_villages(database_url)["mbf"]["dead_spot"])

    await wait_until(judged, timeout_s=20)
    mbf = _villages(database_url)["mbf"]
    assert mbf["measured"] == ["mobifone"] and mbf["operators"] == []
    events = _events(database_url)
    assert [(e["village_id"], e["kind"], e["towers"]) for e in events] == [("mbf", "lost", [])]
    with psycopg.connect(database_url) as conn:
        probe = [r for r in q.rejections(conn) if r["source"] == "probe"]
    assert [(r["reason"], r["count"]) for r in probe] == [("outside_raster", 1)]


async def _drive_test(mqtt_url: str, protocol: int, topics: Topics, lat: float, lon: float,
                      *, no_service: bool = False, rsrp_dbm: float = -80.0,
                      ago: timedelta = timedelta(0)) -> None:  # fmt: skip
    """Six samples at one spot on mobifone 4G, by two probes."""
    ts = (datetime.now(UTC) - ago).isoformat()
    level: dict[str, Any] = {"no_service": True} if no_service else {"rsrp_dbm": rsrp_dbm}
    async with _client(mqtt_url, protocol) as c:
        for probe in ("P1", "P2"):
            samples = [
                {"device_id": probe, "ts": ts, "seq": i, "lat": lat, "lon": lon,
                 "operator": "mobifone", "technology": "4G", **level}
                for i in range(3)
            ]  # fmt: skip
            await c.publish(
                topics.device(Kind.PROBE, probe, Channel.MEASUREMENTS), encode(samples), qos=1
            )


async def _publish(mqtt_url: str, protocol: int, topic: str, doc: dict[str, Any]) -> None:
    async with _client(mqtt_url, protocol) as c:
        await c.publish(topic, encode(doc), qos=1)


async def _mbf_lost_by(url: str, tower: str) -> None:
    """Village "mbf" (Mobifone only, from M) gets one event: lost, by ``tower``."""

    async def lost() -> bool:
        return any(e["village_id"] == "mbf" for e in _events(url))

    await wait_until(lost, timeout_s=15)
    events = [(e["kind"], e["towers"]) for e in _events(url) if e["village_id"] == "mbf"]
    assert events == [("lost", [tower])]


def _reading(device_id: str, **metrics: Any) -> dict[str, Any]:
    return {"device_id": device_id, "ts": datetime.now(UTC).isoformat(), "seq": 1, **metrics}


async def test_a_drive_test_before_an_outage_does_not_mask_it(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    with psycopg.connect(database_url) as conn:
        lat, lon = conn.execute("SELECT lat, lon FROM villages WHERE village_id = 'mbf'").fetchone()  # type: ignore[misc]
    await _drive_test(mqtt_url, mqtt_protocol, topics, lat, lon, ago=timedelta(minutes=30))

    async def measured() -> bool:
        return bool(_villages(database_url)["mbf"]["measured"] == ["mobifone"])

    await wait_until(measured, timeout_s=20)
    status = topics.device(Kind.BTS, "M", Channel.STATUS)
    await _publish(mqtt_url, mqtt_protocol, status, {"device_id": "M", "state": "offline"})
    await _mbf_lost_by(database_url, "M")
    assert _villages(database_url)["mbf"]["measured"] == []


async def test_a_tower_reporting_its_backhaul_down_does_not_serve(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    topic = topics.device(Kind.BTS, "M", Channel.TELEMETRY)
    await _publish(mqtt_url, mqtt_protocol, topic, _reading("M", backhaul_up=False))
    await _mbf_lost_by(database_url, "M")


async def test_a_fibre_cut_behind_the_feeding_node_takes_its_towers_off_air(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    # OLT-1 feeds commune 21808, where V and M stand; they report nothing wrong themselves.
    topic = topics.device(Kind.BROADBAND, "OLT-1", Channel.TELEMETRY)
    await _publish(mqtt_url, mqtt_protocol, topic, _reading("OLT-1", uplink_up=False))

    async def lost() -> bool:
        return {e["village_id"] for e in _events(database_url) if e["kind"] == "lost"} == {
            "mbf",
            "both",
        }

    await wait_until(lost, timeout_s=15)
    events = {e["village_id"]: e for e in _events(database_url)}
    assert events["both"]["towers"] == ["M", "V"] and events["both"]["population"] == 700

    async def judged() -> bool:  # verdicts are published just after their events commit
        return service.verdicts["M"].why is Why.UPLINK_DOWN

    await wait_until(judged, timeout_s=15)
    spliced = _reading("OLT-1", uplink_up=True) | {"seq": 2}
    await _publish(mqtt_url, mqtt_protocol, topic, spliced)

    async def restored() -> bool:
        return {e["village_id"] for e in _events(database_url) if e["kind"] == "restored"} == {
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
        CoverageServiceConfig(
            database_url=database_url,
            coverage=CoverageConfig(resolution_m=200.0, unknown_grace_s=0.0),
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)
        mbf = _villages(database_url)["mbf"]
        assert (mbf["operators"], mbf["unknown"], mbf["dead_spot"]) == ([], ["mobifone"], False)
        with psycopg.connect(database_url) as conn:
            head = headline(snapshot(conn))
        assert head is not None  # the headline does not call them covered:
        assert head.population_unknown == pytest.approx(400 / (700 + 400 + 90))
        assert head.population_covered["any"] == pytest.approx(700 / (700 + 400 + 90))
        status = topics.device(Kind.BTS, "M", Channel.STATUS)
        await _publish(mqtt_url, mqtt_protocol, status, {"device_id": "M", "state": "online"})

        async def heard() -> bool:
            return bool(_villages(database_url)["mbf"]["operators"] == ["mobifone"])

        await wait_until(heard, timeout_s=15)
        assert _events(database_url) == []  # a tower first heard from is not news
        async with _client(mqtt_url, mqtt_protocol) as c:
            await c.publish(status, b"", qos=1, retain=True)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_restart_writes_no_events_for_nothing(
    service: CoverageService, database_url: str
) -> None:
    again = CoverageService(
        CoverageServiceConfig(
            database_url=database_url, coverage=CoverageConfig(resolution_m=200.0)
        )
    )
    stop = asyncio.Event()
    stop.set()  # build, write, and stop at the first wait
    await asyncio.wait_for(again.run(stop), 60)
    assert again.coverage is not None and again.ready.is_set()
    assert _events(database_url) == []


async def test_sectors_reported_down_in_telemetry_take_their_coverage_away(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    reading = {"device_id": "M", "ts": datetime.now(UTC).isoformat(), "seq": 1,
               "power_source": "battery", "sectors_up": [False, False, False]}  # fmt: skip
    async with _client(mqtt_url, mqtt_protocol) as c:
        await c.publish(topics.device(Kind.BTS, "M", Channel.TELEMETRY), encode(reading), qos=1)
    await _mbf_lost_by(database_url, "M")


async def test_the_service_runs_on_timescaledb(tsdb_url: str) -> None:
    with psycopg.connect(tsdb_url) as conn:
        upgrade(conn)
    _load(tsdb_url)
    svc = CoverageService(
        CoverageServiceConfig(database_url=tsdb_url, coverage=CoverageConfig(resolution_m=200.0))
    )
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(svc.run(stop), 60)
    villages = _villages(tsdb_url)
    assert villages["mbf"]["operators"] == ["mobifone"] and villages["far"]["dead_spot"]


async def test_only_a_radio_change_in_a_birth_record_rebuilds(
    service: CoverageService, database_url: str
) -> None:
    before = service.coverage

    def register(**extra: Any) -> None:
        with psycopg.connect(database_url) as conn:
            register_devices(
                conn, [device_row(Kind.BTS, _bts("V", "viettel", LAT0, LON0, **extra))]
            )

    register(interval_s=1)  # a fleet announcing its accelerated interval: nothing radio
    wakes = service.wakes

    async def woken() -> bool:
        return service.wakes > wakes

    await wait_until(woken, timeout_s=15)
    assert service.coverage is before
    register(sectors=[dict(SECTORS[0], azimuth_deg=45.0)])

    async def rebuilt() -> bool:
        return service.coverage is not before

    await wait_until(rebuilt, timeout_s=15)
    assert service.coverage is not None
    assert [e.azimuth.tolist() for e in service.coverage.engine.emitters if e.device_id == "V"] == [
        [45.0]
    ]


async def test_a_spoofed_birth_record_does_not_redraw_coverage(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    """One device's credential cannot move a tower, raise its power or change its operator;
    a field change (a re-tuned azimuth) still goes through."""
    before = service.coverage
    meta = topics.device(Kind.BTS, "M", Channel.META)
    m_at = _offset(LAT0, LON0, 9000, 0)
    louder = [dict(s, tx_power_dbm=60.0) for s in SECTORS]
    spoofs = [
        _bts("M", "mobifone", *_offset(LAT0, LON0, 16000, 0)),  # onto the village
        _bts("M", "mobifone", *m_at, sectors=louder),
        _bts("M", "viettel", *m_at),
    ]
    for doc in spoofs:
        await _publish(mqtt_url, mqtt_protocol, meta, doc)

    def refused() -> list[str]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT detail FROM rejects WHERE device_id = 'M' AND reason = 'out_of_range'"
                " ORDER BY received_at"
            ).fetchall()
        return [r[0] for r in rows]

    async def all_refused() -> bool:
        return len(refused()) == len(spoofs)

    await wait_until(all_refused, timeout_s=15)
    details = refused()
    assert re.search(r"moved [\d,]+ m \(more than 500 m\)", details[0]), details[0]
    assert "transmit power raised to 60 dBm" in details[1]
    assert "operator changed from mobifone to viettel" in details[2]
    assert service.coverage is before
    retuned = [dict(s, azimuth_deg=(s["azimuth_deg"] + 10.0) % 360) for s in SECTORS]
    await _publish(mqtt_url, mqtt_protocol, meta, _bts("M", "mobifone", *m_at, sectors=retuned))

    async def rebuilt() -> bool:
        return service.coverage is not before

    await wait_until(rebuilt, timeout_s=15)


async def test_a_flapping_tower_ends_in_its_last_state_with_events_in_step(
    service: CoverageService, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    """Thirty flaps as fast as the broker takes them: the service reads the state once per
    wake, so it may skip some, but it never ends anywhere but the last state, and the village's
    events alternate (never two losses in a row)."""
    status = topics.device(Kind.BTS, "M", Channel.STATUS)
    async with _client(mqtt_url, mqtt_protocol) as c:
        for i in range(30):
            state = "offline" if i % 2 == 0 else "online"
            await c.publish(status, encode({"device_id": "M", "state": state}), qos=1)
        await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1)

    async def settled() -> bool:  # the last status stored, and the service idle after it
        with psycopg.connect(database_url) as conn:
            (state,) = conn.execute("SELECT state FROM devices WHERE device_id = 'M'").fetchone()  # type: ignore[misc]
        return state == "offline" and service.idle.is_set() and service.verdicts["M"].why is (
            Why.OFFLINE
        )

    await wait_until(settled, timeout_s=20)
    assert _villages(database_url)["mbf"]["dead_spot"]
    kinds = [e["kind"] for e in _events(database_url) if e["village_id"] == "mbf"]
    assert kinds and kinds[-1] == "lost"
    assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
    assert service.verdicts["M"].why is Why.OFFLINE
