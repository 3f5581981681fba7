"""The coverage service's little world: one district, three villages, two towers that
cover them (and one refused), two probes and a fibre node; the service running on it
(``running_coverage``, ``built_once``, ``Live``); and the MQTT and database helpers its tests
use. Positions are metres from (LAT0, LON0), converted through UTM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg

from devices import Channel, Kind, Topics, encode
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.grid import to_latlon, to_utm
from processing.coverage.service import CoverageService
from store import coverage as q
from store.places import load_places
from store.registry import device_row, register_devices
from store.scope import NATIONAL
from tests.support.clients import mqtt_client
from tests.support.polling import wait_until

LAT0, LON0 = 14.0, 108.9
OUTLINE = ((13.85, 108.75), (13.85, 109.05), (14.15, 109.05), (14.15, 108.75))
SECTORS: list[dict[str, Any]] = [
    {"sector": k + 1, "azimuth_deg": 120.0 * k, "tilt_deg": 4.0, "band_mhz": 1800.0,
     "technology": "4G", "tx_power_dbm": 44.5, "beamwidth_deg": 65.0}
    for k in range(3)
]  # fmt: skip


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    x, y = to_utm(lat, lon)
    a, b = to_latlon(x + east_m, y + north_m)
    return float(a), float(b)


def bts_doc(device_id: str, operator: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
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


def load_scene(url: str) -> None:
    villages = [
        ("both", *offset(LAT0, LON0, 4500, 300), 700),
        ("mbf", *offset(LAT0, LON0, 16000, 0), 400),
        ("far", *offset(LAT0, LON0, -14000, -14000), 90),
    ]
    with psycopg.connect(url) as conn:
        load_places(
            conn,
            provinces=[{"code": 52, "name": "Tỉnh Bình Định", "lat": LAT0, "lon": LON0,
                        "synthetic": False}],
            districts=[{"code": 547, "name": "Huyện Tây Sơn", "town": "Phú Phong", "lat": LAT0,
                        "lon": LON0, "mountainous": False, "polygon": [list(p) for p in OUTLINE],
                        "province_code": 52}],
            communes=[{"code": 21808, "name": "Thị trấn Phú Phong", "district_code": 547,
                       "division_type": "xã", "lat": LAT0, "lon": LON0, "population": 1190,
                       "has_fibre": True}],
            villages=[{"village_id": v, "name": v, "commune_code": 21808, "district_code": 547,
                       "lat": la, "lon": lo, "population": p, "synthetic": True,
                       "seed_dead_spot": False} for v, la, lo, p in villages],
            features=[{"name": "test", "kind": "outline", "points": [list(p) for p in OUTLINE],
                       "synthetic": True, "province_code": 52}],
        )  # fmt: skip
        bad = dict(SECTORS[0], band_mhz=1234.0)
        register_devices(
            conn,
            [
                device_row(Kind.BTS, bts_doc("V", "viettel", LAT0, LON0)),
                device_row(Kind.BTS, bts_doc("M", "mobifone", *offset(LAT0, LON0, 9000, 0))),
                device_row(Kind.BTS, bts_doc("BAD", "vinaphone", LAT0, LON0, sectors=[bad])),
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


def coverage_events(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return q.events_since(conn)


def village_rows(url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        return {r["place_id"]: r for r in q.coverage_rows(conn, "village", scope=NATIONAL)}


async def drive_test(mqtt_url: str, protocol: int, topics: Topics, lat: float, lon: float,
                      *, no_service: bool = False, rsrp_dbm: float = -80.0,
                      ago: timedelta = timedelta(0)) -> None:  # fmt: skip
    """Six samples at one spot on mobifone 4G, by two probes."""
    ts = (datetime.now(UTC) - ago).isoformat()
    level: dict[str, Any] = {"no_service": True} if no_service else {"rsrp_dbm": rsrp_dbm}
    async with mqtt_client(mqtt_url, protocol) as c:
        for probe in ("P1", "P2"):
            samples = [
                {"device_id": probe, "ts": ts, "seq": i, "lat": lat, "lon": lon,
                 "operator": "mobifone", "technology": "4G", **level}
                for i in range(3)
            ]  # fmt: skip
            await c.publish(
                topics.device(Kind.PROBE, probe, Channel.MEASUREMENTS), encode(samples), qos=1
            )


async def publish(mqtt_url: str, protocol: int, topic: str, doc: dict[str, Any]) -> None:
    async with mqtt_client(mqtt_url, protocol) as c:
        await c.publish(topic, encode(doc), qos=1)


async def mbf_lost_by(url: str, tower: str) -> None:
    """Village "mbf" (Mobifone only, from M) gets one event: lost, by ``tower``."""

    async def lost() -> bool:
        return any(e["village_id"] == "mbf" for e in coverage_events(url))

    await wait_until(lost, timeout_s=15)
    events = [(e["kind"], e["towers"]) for e in coverage_events(url) if e["village_id"] == "mbf"]
    assert events == [("lost", [tower])]


def bts_reading(device_id: str, **metrics: Any) -> dict[str, Any]:
    return {"device_id": device_id, "ts": datetime.now(UTC).isoformat(), "seq": 1, **metrics}


def _service(
    database_url: str, measured_poll_s: float | None = None, **coverage: Any
) -> CoverageService:
    """The service on 200 m cells; ``coverage`` overrides the coverage settings."""
    poll: dict[str, Any] = {} if measured_poll_s is None else {"measured_poll_s": measured_poll_s}
    return CoverageService(
        coverage_service_config(
            database_url=database_url,
            coverage=coverage_config(resolution_m=200.0, **coverage),
            **poll,
        )
    )


@contextlib.asynccontextmanager
async def running_coverage(
    database_url: str, measured_poll_s: float | None = None, **coverage: Any
) -> AsyncIterator[CoverageService]:
    """The service running on ``database_url``, ready (its first picture written)."""
    async with running(_service(database_url, measured_poll_s, **coverage)) as svc:
        yield svc


@contextlib.asynccontextmanager
async def running(svc: CoverageService) -> AsyncIterator[CoverageService]:
    """``svc`` running until the block ends, ready (its first picture written)."""
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def built_once(database_url: str) -> CoverageService:
    """The service built, its picture written, and stopped at its first wait."""
    svc = _service(database_url)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(svc.run(stop), 60)
    return svc


@dataclass
class Live:
    """The running service and what its tests talk to: its database, the broker, the topics."""

    service: CoverageService
    database_url: str
    mqtt_url: str
    protocol: int
    topics: Topics

    def client(self) -> aiomqtt.Client:
        return mqtt_client(self.mqtt_url, self.protocol)

    async def publish(self, kind: Kind, device_id: str, channel: Channel, doc: Any) -> None:
        await publish(
            self.mqtt_url, self.protocol, self.topics.device(kind, device_id, channel), doc
        )

    async def drive_test(self, village_id: str, **options: Any) -> None:
        await drive_test(
            self.mqtt_url, self.protocol, self.topics, *self.village_at(village_id), **options
        )

    def village_at(self, village_id: str) -> tuple[float, float]:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT lat, lon FROM villages WHERE village_id = %s", (village_id,)
            ).fetchone()
        assert row is not None, village_id
        return float(row[0]), float(row[1])

    def events(self) -> list[dict[str, Any]]:
        return coverage_events(self.database_url)

    def villages(self) -> dict[str, dict[str, Any]]:
        return village_rows(self.database_url)

    async def mbf_lost_by(self, tower: str) -> None:
        await mbf_lost_by(self.database_url, tower)
