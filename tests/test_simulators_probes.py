"""Drive-test probes: routes on the scenario's roads, levels from devices.radio (the model
processing uses), shadow fading, towers that go dark, and measurements over a real broker."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import UTC, datetime

import numpy as np
import pytest

from devices import Channel, Codec, Kind, Operator, Readings, Technology, Topics
from devices.radio import MAX_RANGE_KM, bearing_deg, rsrp_dbm
from seeds import load_scenario
from seeds.geo import haversine_km, to_km
from simulators import DeviceCondition, Fleet, MqttEndpoint
from simulators.probes import SHADOW_SIGMA_DB, ProbeValues, RadioScene, probe_values
from simulators.routes import tour
from tests.support.simulated import watching

SCENARIO = load_scenario()


@pytest.fixture(scope="module")
def scene() -> RadioScene:
    return RadioScene(SCENARIO)


def exact(scene: RadioScene, operator: Operator, lat: float, lon: float) -> ProbeValues:
    """A probe without fading or handset noise: the model's median, nothing else."""
    route = tour((lat, lon), [])  # measure() needs no road
    return ProbeValues("PRB-T", operator, route, scene, shadow_sigma_db=0, measurement_sigma_db=0)


def model_best_4g(scene: RadioScene, operator: Operator, lat: float, lon: float) -> float:
    """The strongest 4G sector here, computed sector by sector with devices.radio."""
    x, y = (float(v) for v in to_km(lat, lon))
    use = scene.land_use_at(x, y)
    best = -math.inf
    for site in SCENARIO.bts:
        if site.operator is not operator:
            continue
        sx, sy = (float(v) for v in to_km(site.lat, site.lon))
        dist = math.hypot(x - sx, y - sy)
        if dist > MAX_RANGE_KM:
            continue
        for s in site.sectors:
            if s.technology is not Technology.G4:
                continue
            level = rsrp_dbm(
                tx_power_dbm=s.tx_power_dbm, technology=s.technology, freq_mhz=s.band_mhz,
                dist_km=dist, h_bs_m=site.antenna_height_m,
                az_offset_deg=float(bearing_deg(x - sx, y - sy)) - s.azimuth_deg,
                tilt_deg=s.tilt_deg, beamwidth_deg=s.beamwidth_deg, land_use=use,
            )  # fmt: skip
            best = max(best, float(level))
    return best


def test_a_probe_reports_the_radio_models_level_of_its_best_cell(scene: RadioScene) -> None:
    site = next(b for b in SCENARIO.bts if b.operator is Operator.VIETTEL)
    for d_lat, d_lon in [(0.004, 0.0), (0.0, -0.02), (-0.03, 0.01)]:
        lat, lon = site.lat + d_lat, site.lon + d_lon
        x, y = (float(v) for v in to_km(lat, lon))
        got = exact(scene, Operator.VIETTEL, lat, lon).measure(x, y)
        assert got["technology"] == "4G" and got["no_service"] is False
        assert got["rsrp_dbm"] == pytest.approx(model_best_4g(scene, Operator.VIETTEL, lat, lon))
        assert -34 <= got["rsrq_db"] <= 2.5 and -23 <= got["sinr_db"] <= 40


def test_dead_spot_villages_get_no_broadband_and_commune_centres_do(scene: RadioScene) -> None:
    def broadband(lat: float, lon: float) -> list[str]:
        x, y = (float(v) for v in to_km(lat, lon))
        found = []
        for op in Operator:
            m = exact(scene, op, lat, lon).measure(x, y)
            if not m["no_service"] and m["technology"] in ("3G", "4G"):
                found.append(op.value)
        return found

    assert [broadband(v.lat, v.lon) for v in SCENARIO.dead_spot_villages()] == [[]] * 5
    assert all(broadband(c.lat, c.lon) for c in SCENARIO.communes)


def test_a_dark_tower_stops_serving_and_no_tower_is_no_service(scene: RadioScene) -> None:
    site = next(b for b in SCENARIO.bts if b.operator is Operator.MOBIFONE)
    lat, lon = site.lat + 0.002, site.lon + 0.002
    x, y = (float(v) for v in to_km(lat, lon))
    probe = exact(scene, Operator.MOBIFONE, lat, lon)
    before = probe.measure(x, y)
    try:
        scene.bind({site.device_id: DeviceCondition(online=False)})
        assert probe.measure(x, y)["rsrp_dbm"] < before["rsrp_dbm"] - 3
        dark = {b.device_id: DeviceCondition(online=False) for b in SCENARIO.bts}
        scene.bind(dark)
        assert probe.measure(x, y) == {"technology": "4G", "rsrp_dbm": None, "rsrq_db": None,
                                       "sinr_db": None, "no_service": True}  # fmt: skip
        scene.bind({site.device_id: DeviceCondition(sectors_down={s.sector for s in site.sectors})})
        assert probe.measure(x, y)["rsrp_dbm"] < before["rsrp_dbm"] - 3
    finally:
        scene.bind({})


def test_shadow_fading_has_its_spread_and_is_correlated_along_the_road(scene: RadioScene) -> None:
    probe = ProbeValues("PRB-T", Operator.VIETTEL, tour((0.0, 0.0), []), scene, seed=7)
    fades = []
    for _step in range(4000):
        probe._fade(55.0)  # one sample every 55 m
        fades.append(probe._fading_db)
    assert statistics.pstdev(fades) == pytest.approx(SHADOW_SIGMA_DB, rel=0.1)
    a, b = np.array(fades[:-1]), np.array(fades[1:])
    assert float(np.corrcoef(a, b)[0, 1]) == pytest.approx(math.exp(-55 / 50), abs=0.06)


def test_a_route_tours_the_local_roads_out_to_the_dead_spot_villages() -> None:
    probe = next(p for p in SCENARIO.probes if p.device_id == "PRB-002")  # Vĩnh Thạnh
    route = tour((probe.lat, probe.lon), SCENARIO.roads)
    assert route.synthetic and route.length_km > 50
    assert route.position(0) == pytest.approx((probe.lat, probe.lon))
    assert route.position(route.length_km) == pytest.approx((probe.lat, probe.lon))  # a loop
    points = [route.position(km) for km in np.arange(0, route.length_km, 0.5)]
    for village in ("Kon Trú", "Làng O2"):
        v = next(x for x in SCENARIO.dead_spot_villages() if x.name == village)
        closest = min(float(haversine_km(v.lat, v.lon, lat, lon)) for lat, lon in points)
        assert closest < 0.5, village
    steps = [float(haversine_km(*a, *b)) for a, b in itertools.pairwise(points)]
    assert max(steps) < 0.52  # continuous: never a jump


async def test_probes_publish_measurements_the_codec_accepts(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    scene = RadioScene(SCENARIO)
    sources = probe_values(SCENARIO, scene, ids=["PRB-001", "PRB-004"])
    specs = [d for d in SCENARIO.devices() if d.device_id in sources]
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    fleet = Fleet(specs, endpoint, topics=topics, speed=60, probes=sources)
    assert sorted(fleet.models) == ["PRB-001", "PRB-004"]
    codec = Codec(topics)
    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        fleet.start()
        try:
            await live.until(
                lambda: all(len(live.on(Kind.PROBE, i, Channel.MEASUREMENTS)) >= 5 for i in sources)
            )
        finally:
            await fleet.stop()
    for device_id, source in sources.items():
        (meta,) = live.on(Kind.PROBE, device_id, Channel.META)[:1]
        assert codec.decode(meta.topic, meta.payload, datetime.now(UTC)).rejections == []
        samples = []
        for seen in live.on(Kind.PROBE, device_id, Channel.MEASUREMENTS):
            decoded = codec.decode(seen.topic, seen.payload, datetime.now(UTC))
            assert decoded.rejections == [] and isinstance(decoded.record, Readings)
            samples += decoded.record.items
        assert {s.operator for s in samples} == {source.operator.value}
        start = next(p for p in SCENARIO.probes if p.device_id == device_id)
        # it drives: positions change, and stay on its tour near where it started
        assert len({(s.lat, s.lon) for s in samples}) > 1
        assert all(float(haversine_km(start.lat, start.lon, s.lat, s.lon)) < 30 for s in samples)
