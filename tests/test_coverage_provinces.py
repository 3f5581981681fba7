"""The coverage service over several provinces (issue 19, part 2): one engine per province,
on a real database holding Bắc Giang and Thái Nguyên (generated, 1,614 and 1,512 sites) at a
coarse 500 m so that the test stays quick. A serving change reaches its province's engine
only; a registry change rebuilds only its province; the rasters are kept per province."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import psycopg
import pytest
from typer.testing import CliRunner

from ioc.cli import app
from ioc.cli_coverage import province_code
from ioc.configs import coverage_config, coverage_service_config
from ioc.scenario import load_into
from processing.coverage.service import CoverageService
from store import coverage_rasters
from store.db import connect
from store.migrate import upgrade
from store.scope import NATIONAL
from tests.support.coverage_scene import running
from tests.support.polling import wait_until

BAC_GIANG, THAI_NGUYEN = 24, 19
OPERATORS = {"any", "viettel", "mobifone", "vinaphone", "vietnamobile"}


@pytest.fixture
def two_provinces(database_url: str) -> Iterator[str]:
    with connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        load_into(conn, "Bắc Giang, Thái Nguyên")
        # Every tower heard from two hours ago: none rests on the start-up grace.
        conn.execute(
            "UPDATE devices SET state = 'online', state_since = now() - interval '2h'"
            " WHERE kind IN ('bts', 'broadband')"
        )
    yield database_url


@pytest.fixture
async def service(two_provinces: str) -> AsyncIterator[CoverageService]:
    svc = CoverageService(
        coverage_service_config(
            database_url=two_provinces, coverage=coverage_config(resolution_m=500.0)
        )
    )
    t0 = time.perf_counter()
    async with running(svc):
        print(f"two provinces built in {time.perf_counter() - t0:.1f} s")
        yield svc


def _villages(url: str) -> dict[int, set[str]]:
    """Province → its village ids, as loaded."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT d.province_code, v.village_id FROM villages v"
            " JOIN districts d ON d.code = v.district_code"
        ).fetchall()
    out: dict[int, set[str]] = {}
    for province, village in rows:
        out.setdefault(province, set()).add(village)
    return out


def _places(url: str) -> dict[str, tuple[bool, datetime]]:
    """Village id → (dead spot, updated_at), as the service wrote them."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT place_id, dead_spot, updated_at FROM coverage_places"
            " WHERE place_kind = 'village'"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _recomputes(svc: CoverageService, province: int, kind: str) -> float:
    value = svc.metrics.registry.get_sample_value(
        "ioc_coverage_province_recomputes_total", {"province": str(province), "kind": kind}
    )
    return value or 0.0


async def test_each_province_has_its_engine_its_places_and_its_rasters(
    service: CoverageService, two_provinces: str
) -> None:
    assert sorted(service.engines) == [THAI_NGUYEN, BAC_GIANG]
    villages = _villages(two_provinces)
    places = _places(two_provinces)
    assert places.keys() == villages[BAC_GIANG] | villages[THAI_NGUYEN]
    for province, ids in villages.items():
        # On its own grid every province is mostly covered; a grid around another
        # province's outline would leave it all dark.
        dark = sum(1 for v in ids if places[v][0])
        assert dark < len(ids) / 2, (province, dark, len(ids))
        engine = service.engines[province]
        assert {p.place_id for p in engine.places if p.kind == "village"} == ids
    with psycopg.connect(two_provinces) as conn:
        stamps = coverage_rasters.stamps(conn, scope=NATIONAL)
        assert set(stamps) == {(p, op) for p in (BAC_GIANG, THAI_NGUYEN) for op in OPERATORS}
        for province, cov in service.engines.items():
            raster = coverage_rasters.read_raster(conn, "any", province=province)
            assert raster is not None
            assert (raster.grid.rows, raster.grid.cols) == cov.engine.grid.shape
            assert (raster.grid.x0_m, raster.grid.y0_m) == (cov.engine.grid.x0, cov.engine.grid.y0)
    dark_now = service.metrics.registry.get_sample_value("ioc_coverage_villages_dark")
    assert dark_now == sum(1 for dead, _ in places.values() if dead)  # every province summed


async def test_a_tower_offline_recomputes_its_province_only(
    service: CoverageService, two_provinces: str
) -> None:
    bac_giang = service.engines[BAC_GIANG]
    worst = max(await asyncio.to_thread(bac_giang.criticality), key=lambda c: c.villages_all)
    assert worst.villages_all > 0  # its loss alone leaves villages with no signal
    villages = _villages(two_provinces)
    before = _places(two_provinces)
    thai_nguyen = service.engines[THAI_NGUYEN]
    with psycopg.connect(two_provinces, autocommit=True) as conn:
        conn.execute(
            "UPDATE devices SET state = 'offline', state_since = now() WHERE device_id = %s",
            (worst.device_id,),
        )
        conn.execute("SELECT pg_notify('ioc_coverage', 'state')")

    async def events() -> list[tuple[str, str, list[str]]]:
        with psycopg.connect(two_provinces) as conn:
            rows = conn.execute("SELECT village_id, kind, towers FROM coverage_events").fetchall()
        return [(r[0], r[1], list(r[2])) for r in rows]

    async def lost() -> bool:
        return sum(1 for _, kind, _ in await events() if kind == "lost") == worst.villages_all

    await wait_until(lost, timeout_s=60)
    for village, _, towers in await events():
        assert village in villages[BAC_GIANG] and towers == [worst.device_id]
    assert _recomputes(service, BAC_GIANG, "incremental") == 1
    assert _recomputes(service, THAI_NGUYEN, "incremental") == 0
    assert service.engines[THAI_NGUYEN] is thai_nguyen
    after = _places(two_provinces)
    assert {v: after[v] for v in villages[THAI_NGUYEN]} == {
        v: before[v] for v in villages[THAI_NGUYEN]
    }
    assert any(after[v] != before[v] for v in villages[BAC_GIANG])


async def test_a_registry_change_rebuilds_its_province_only(
    service: CoverageService, two_provinces: str
) -> None:
    thai_nguyen = service.engines[THAI_NGUYEN]
    with psycopg.connect(two_provinces, autocommit=True) as conn:
        (tower,) = conn.execute(
            "SELECT v.device_id FROM devices v JOIN districts d ON d.code = v.district_code"
            " WHERE v.kind = 'bts' AND d.province_code = %s ORDER BY 1 LIMIT 1",
            (BAC_GIANG,),
        ).fetchone() or ("",)
        # A taller mast: the radio model reads it, so the birth record's trigger wakes us.
        conn.execute(
            "UPDATE devices SET meta = jsonb_set(meta, '{antenna_height_m}', '61')"
            " WHERE device_id = %s",
            (tower,),
        )
    await wait_until(lambda: _recomputes(service, BAC_GIANG, "full") == 2, timeout_s=120)
    assert _recomputes(service, THAI_NGUYEN, "full") == 1
    assert service.engines[THAI_NGUYEN] is thai_nguyen
    assert service.engines[BAC_GIANG].engine.sites[
        service.engines[BAC_GIANG].engine.site_index[tower]
    ].antenna_height_m == pytest.approx(61.0)


def test_a_command_works_on_one_of_the_deployments_provinces(monkeypatch) -> None:
    monkeypatch.setenv("IOC_PROVINCE", "Bắc Giang, Thái Nguyên")
    assert province_code(None) == BAC_GIANG  # the first named
    assert province_code("thai_nguyen") == THAI_NGUYEN
    refused = CliRunner().invoke(
        app, ["coverage", "critical", "--scenario", "--province", "Bình Định"]
    )
    assert "not among this deployment's provinces: Bắc Giang, Thái Nguyên" in refused.output
