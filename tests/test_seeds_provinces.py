"""Any of the 63 provinces as a synthetic scenario (``seeds.province``, ``ioc scenario
generate``, ``ioc up --province``), and Bình Định left exactly as published."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from shapely import contains_xy
from shapely.geometry import Polygon

from devices import Topics
from devices.topics import DEVICE_ID_PATTERN
from seeds import Scenario, geo, load_scenario, national
from seeds.generate import render
from seeds.province import (
    BD_AREA_KM2,
    BD_POPULATION,
    CENSUS_2019_POPULATION,
    generate_places,
    province_population,
    site_count,
)
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

# Every province but Bình Định (all 62 build in about 20 s here, one at a time, uncached).
GENERATED = [code for code in national.all_codes() if code != national.BINH_DINH]


@pytest.fixture(scope="module")
def bac_giang() -> Scenario:
    return load_scenario("Bắc Giang")


@pytest.fixture(scope="module")
def thai_nguyen() -> Scenario:
    return load_scenario("Thái Nguyên")


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ioc", *args], env={**clean_environ(), **env},
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def _outline(s: Scenario) -> Polygon:
    return Polygon([(lon, lat) for lat, lon in s.outline])


@pytest.mark.parametrize("code", GENERATED)
def test_every_province_generates_with_every_commune_and_the_rules(code: int) -> None:
    s = load_scenario.__wrapped__(code)  # uncached: 62 scenarios at once would hold them all
    real = national.province(code)
    assert [c.code for c in s.communes] == [c["code"] for c in real["communes"]]
    assert {c.name for c in s.communes} == {c["name"] for c in real["communes"]}
    pop = sum(c.population for c in s.communes)
    assert pop == province_population(code)
    with geo.centred_on(real["lat"], real["lon"]):  # the generator's projection
        area = float(Polygon(geo.polygon_km(s.outline)).area)
    assert abs(len(s.bts) - site_count(pop, area)) <= 2  # outline vertices are rounded
    assert all(v.synthetic and not v.seed_dead_spot for v in s.villages)
    assert not s.seed_places and not s.dead_spot_villages()
    inside = contains_xy(_outline(s), [c.lon for c in s.communes], [c.lat for c in s.communes])
    assert all(inside), [c.code for c, ok in zip(s.communes, inside, strict=True) if not ok]
    ids = [d.device_id for d in s.devices()]
    assert len(ids) == len(set(ids)) and all(DEVICE_ID_PATTERN.match(i) for i in ids)


def test_generation_is_deterministic_same_bytes_twice() -> None:
    assert render(generate_places(24)) == render(generate_places(24))
    again = load_scenario.__wrapped__(24)  # a fresh build, not the cached one
    assert again.devices() == load_scenario(24).devices()


def test_bac_giang_and_thai_nguyen_lie_inside_their_outlines(
    bac_giang: Scenario, thai_nguyen: Scenario
) -> None:
    for s in (bac_giang, thai_nguyen):
        outline = _outline(s)
        for rows in (s.communes, s.villages, s.bts, s.cameras):
            lon = [r.lon for r in rows]
            lat = [r.lat for r in rows]
            assert contains_xy(outline, lon, lat).all(), s.province_name
        assert not generate_places(s.province_code)["about"]["communes_moved_inside"]


def test_device_ids_are_unique_across_provinces_and_carry_the_province_code(
    bac_giang: Scenario, thai_nguyen: Scenario
) -> None:
    ids = [d.device_id for s in (load_scenario(), bac_giang, thai_nguyen) for d in s.devices()]
    assert len(ids) == len(set(ids))
    bts = [b.device_id for b in bac_giang.bts]
    assert bts[0] == "BTS-VTL-24-0001" and all("-24-" in i for i in bts)
    assert {c.device_id[:7] for c in thai_nguyen.cameras} == {"CAM-19-"}
    assert [p.device_id for p in thai_nguyen.probes][:2] == ["PRB-19-001", "PRB-19-002"]
    assert all(n.device_id.startswith("OLT-") for n in bac_giang.broadband)  # commune codes


def test_site_count_follows_the_stated_rule_calibrated_on_binh_dinh(
    bac_giang: Scenario, thai_nguyen: Scenario
) -> None:
    assert site_count(BD_POPULATION, BD_AREA_KM2) == 1723
    for s in (bac_giang, thai_nguyen):
        pop = sum(c.population for c in s.communes)
        with geo.centred_on(*generate_places(s.province_code)["about"]["projection_centre"]):
            area = float(Polygon(geo.polygon_km(s.outline)).area)
        assert abs(len(s.bts) - site_count(pop, area)) <= 2, (len(s.bts), site_count(pop, area))
    # Both are about 3,500–3,900 km² (GSO: Bắc Giang 3,896, Thái Nguyên 3,522): the synthetic
    # outline is not a survey, but it must not be wildly off.
    for s, real_km2 in ((bac_giang, 3896), (thai_nguyen, 3522)):
        area = generate_places(s.province_code)["about"]["area_km2"]
        assert 0.8 * real_km2 < area < 1.2 * real_km2


def test_every_commune_centre_has_a_site_close_by(
    bac_giang: Scenario, thai_nguyen: Scenario
) -> None:
    for s in (bac_giang, thai_nguyen):
        site = np.array([[b.lat, b.lon] for b in s.bts])
        for c in s.communes:
            km = geo.haversine_km(c.lat, c.lon, site[:, 0], site[:, 1]).min()
            assert km <= 1.5, (c.name, km)


def test_population_is_the_census_total_spread_over_the_country() -> None:
    total = sum(province_population(code) for code in national.all_codes())
    assert abs(total - CENSUS_2019_POPULATION) <= 63  # one rounding per province


def test_mountainous_by_the_stated_rule(bac_giang: Scenario) -> None:
    mountain = {d.name for d in bac_giang.districts if d.mountainous}
    assert "Huyện Sơn Động" in mountain and "Thành phố Bắc Giang" not in mountain
    assert not any(d.mountainous for d in load_scenario("Cà Mau").districts)  # the delta


def test_binh_dinh_is_unchanged_whatever_it_is_called() -> None:
    s = load_scenario()
    assert load_scenario("Bình Định") is s and load_scenario(52) is s
    assert load_scenario("binh_dinh") is s and load_scenario("Tỉnh Bình Định") is s
    assert len(s.bts) == 1723 and s.bts[0].device_id == "BTS-VTL-0001"
    assert len(s.dead_spot_villages()) == 5
    with pytest.raises(ValueError, match="committed"):
        generate_places(52)


def test_names_codes_and_codenames_find_one_province(bac_giang: Scenario) -> None:
    for name in ("Tỉnh Bắc Giang", "Bac Giang", "bac_giang", "tinh_bac_giang", 24, "24"):
        assert load_scenario(name) is bac_giang
    with pytest.raises(national.UnknownProvince, match="did you mean Tỉnh Bắc Giang"):
        load_scenario("Bac Gang")


def test_generate_from_the_command_line(tmp_path: Path) -> None:
    done = ioc("scenario", "generate", "--province", "Thái Nguyên", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "Tỉnh Thái Nguyên (19): 9 districts, 172 communes" in done.stdout
    written = tmp_path / "places_19_thai_nguyen.json"
    assert written.read_text(encoding="utf-8") == render(generate_places(19))


def test_an_unknown_province_is_one_clear_line_and_exit_2() -> None:
    done = ioc("scenario", "generate", "--province", "Thai Ngyen")
    assert done.returncode == 2
    assert "no province 'Thai Ngyen'" in done.stderr and "Tỉnh Thái Nguyên" in done.stderr
    assert "Traceback" not in done.stderr
    refused = ioc("up", "--province", "Bắc Giang", "--demo")
    assert refused.returncode == 2 and "Bình Định's devices" in refused.stderr


def _seen(url: str) -> tuple[str | None, int]:
    with psycopg.connect(url) as conn:
        if not conn.execute("SELECT to_regclass('telemetry_bts') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            return None, 0
        outline = conn.execute("SELECT name FROM map_features WHERE kind = 'outline'").fetchone()
        n = conn.execute("SELECT count(*) FROM telemetry_bts WHERE device_id LIKE 'BTS-%-24-%'")
        return (outline[0] if outline else None), int(n.fetchone()[0])  # type: ignore[index]


async def test_ioc_up_brings_bac_giang_up(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**clean_environ(), "IOC_DATABASE_URL": database_url, "IOC_MQTT_URL": mqtt_url,
           "IOC_MQTT_PROTOCOL": str(mqtt_protocol), "IOC_TOPIC_ROOT": topics.root}  # fmt: skip
    log = tmp_path / "up.log"
    with log.open("w") as out:
        up = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ioc", "up", "--province", "Bắc Giang", "--limit", "5",
            "--port", str(port), env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_until(lambda: _seen(database_url)[1] > 0, 120, every_s=0.5,
                         state=log.read_text)  # fmt: skip
        assert _seen(database_url)[0] == "Tỉnh Bắc Giang"
        assert up.returncode is None, log.read_text()
        up.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(up.wait(), 60) == 0, log.read_text()
    finally:
        if up.returncode is None:
            up.kill()
