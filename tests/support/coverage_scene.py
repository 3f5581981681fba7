"""The coverage service's little world: one district, three villages, two towers that
cover them (and one refused), two probes and a fibre node; and the MQTT and database helpers
its tests use. Positions are metres from (LAT0, LON0), converted through UTM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from devices import Channel, Kind, Topics, encode
from processing.coverage.grid import to_latlon, to_utm
from store import coverage as q
from store.places import load_places
from store.registry import device_row, register_devices
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
        return {r["place_id"]: r for r in q.coverage_rows(conn, "village")}


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
