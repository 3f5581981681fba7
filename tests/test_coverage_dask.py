"""Coverage on Dask (issue 19): against a real scheduler and two workers, each its own process
(``dask scheduler``, ``dask worker`` on loopback), the tiled full recompute equals the
single-process engine cell for cell (level and best emitter), the engine it leaves takes
incremental changes as a local one does, N-1 and the siting advisor as tasks give the local
answers, and the coverage service uses the cluster when told to and falls back, saying so,
when the scheduler cannot be reached."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest

from devices.kinds import Operator
from ioc.brokers import free_port
from ioc.configs import advisor_setup, coverage_config, coverage_service_config
from ioc.settings import Settings
from processing.coverage import Coverage, CoverageEngine, SiteState
from processing.coverage.advise import ground_from_coverage
from processing.coverage.cluster import advise_each, tiles
from processing.coverage.scenario import Inputs, scenario_inputs
from processing.coverage.service import CoverageService
from seeds import load_scenario
from tests.support.coverage_scene import running, village_rows
from tests.support.dask_cluster import DASK, DaskCluster, start_cluster

pytestmark = pytest.mark.skipif(not DASK.exists(), reason=f"no dask CLI at {DASK}")
RES_M = 200.0  # Bình Định in 671 × 356 cells: a full recompute in about a second


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskCluster]:
    with start_cluster(workers=2) as c:
        yield c


@cache
def inputs() -> Inputs:
    return scenario_inputs(load_scenario(), coverage_config(resolution_m=RES_M))


def engine() -> CoverageEngine:
    """Over the scenario's terrain (the default): the tiles sweep it as the engine does."""
    i = inputs()
    assert i.ground is not None
    return CoverageEngine(
        i.grid, i.land_use, i.sites, coverage_config(resolution_m=RES_M), i.ground
    )


def test_tiles_cover_the_raster_once_and_outnumber_the_workers() -> None:
    shape = (671, 356)
    boxes = tiles(shape, 2, 32)
    assert len(boxes) >= 8 and all((r1 - r0) % 32 == 0 for r0, r1, _, _ in boxes[:-1])
    seen = np.zeros(shape, np.int64)
    for r0, r1, c0, c1 in boxes:
        seen[r0:r1, c0:c1] += 1
    assert (seen == 1).all()


def test_cluster_recompute_equals_the_single_process_engine(cluster: DaskCluster) -> None:
    local, remote = engine(), engine()
    local.recompute_full()
    remote.value[:] = 0.0  # nothing left over from the constructor could pass for a result
    remote.best[:] = 7
    remote.recompute_full(cluster.client)
    run = remote.cluster_run
    assert run is not None and run.workers == 2 and run.tasks > 2 and run.ship_bytes > 0
    np.testing.assert_array_equal(remote.value, local.value)
    np.testing.assert_array_equal(remote.best, local.best)
    assert (local.best >= 0).sum() > 0.5 * local.best.size  # a real picture, not two blanks


def test_engine_after_a_cluster_recompute_takes_incremental_changes(cluster: DaskCluster) -> None:
    remote = engine()
    remote.recompute_full(cluster.client)
    # the busiest towers of the raster: their loss moves many cells
    counts = np.bincount(remote.best[remote.best >= 0].ravel())
    busiest = [remote.emitters[int(e)].device_id for e in np.argsort(counts)[::-1][:3]]
    down = {d: SiteState(serving=False) for d in busiest}
    assert remote.apply(down) == set(busiest)
    local = engine()
    local.apply(down)
    local.recompute_full()
    np.testing.assert_array_equal(remote.value, local.value)
    np.testing.assert_array_equal(remote.best, local.best)
    back = {busiest[0]: SiteState(serving=True)}
    remote.apply(back)
    local.apply(back)
    local.recompute_full()
    np.testing.assert_array_equal(remote.value, local.value)
    np.testing.assert_array_equal(remote.best, local.best)


def test_n_minus_1_as_tasks_equals_the_local_answer(cluster: DaskCluster) -> None:
    eng = engine()
    eng.apply({eng.sites[5].device_id: SiteState(serving=False)})  # one emitter set inactive
    eng.recompute_full()
    local = Coverage(eng, inputs().places)
    local.refresh_covering()
    local.plan()
    remote = Coverage(eng, inputs().places)
    remote.refresh_covering(client=cluster.client)
    remote.plan(cluster.client)
    assert remote.covering == local.covering and len(local.covering) > 1000
    assert remote.planned == local.planned and remote.planned != remote.covering
    assert remote.criticality() == local.criticality()
    # after a change: only the changed sites' part, as tasks
    gone = {eng.sites[9].device_id, eng.sites[40].device_id}
    eng.apply(dict.fromkeys(gone, SiteState(serving=False)))
    local.refresh_covering(gone)
    remote.refresh_covering(gone, client=cluster.client)
    assert remote.covering == local.covering


def test_siting_advisor_per_operator_as_tasks(cluster: DaskCluster) -> None:
    eng = engine()
    eng.recompute_full()
    cov = Coverage(eng, inputs().places, outline=inputs().outline)
    cov.current = cov.evaluate()
    cov.refresh_covering()
    ground = ground_from_coverage(cov, load_scenario())
    site = advisor_setup(Settings.defaults()).site
    asked: list[Operator | None] = [Operator.VIETTEL, Operator.MOBIFONE, None]
    local = advise_each(ground, asked, 3, site=site)
    remote = advise_each(ground, asked, 3, cluster.client, site=site)
    assert remote == local
    assert all(a.picks for a in local)


async def test_service_runs_its_full_recompute_on_the_cluster(
    cluster: DaskCluster, loaded: str
) -> None:
    config = coverage_service_config(
        database_url=loaded,
        coverage=coverage_config(resolution_m=RES_M),
        dask_scheduler=cluster.address,
    )
    async with running(CoverageService(config)) as svc:
        assert svc.ran_on == cluster.address
        assert svc.coverage is not None and svc.coverage.engine.cluster_run is not None
        on_dask = svc.metrics.registry.get_sample_value(
            "ioc_coverage_full_recomputes_total", {"ran_on": "dask"}
        )
        assert on_dask == 1
    villages = village_rows(loaded)
    assert villages["mbf"]["operators"] == ["mobifone"] and villages["far"]["dead_spot"]


async def test_service_falls_back_when_the_scheduler_is_unreachable(
    loaded: str, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"tcp://127.0.0.1:{free_port()}"
    config = coverage_service_config(
        database_url=loaded,
        coverage=coverage_config(resolution_m=RES_M),
        dask_scheduler=nowhere,
        dask_connect_s=1.0,
    )
    with caplog.at_level(logging.WARNING, logger="ioc.coverage"):
        async with running(CoverageService(config)) as svc:
            assert svc.ran_on == "local" and svc.client is None
            assert svc.coverage is not None and svc.coverage.engine.cluster_run is None
    said = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert said and nowhere in said[0] and "in this process" in said[0]
    assert village_rows(loaded)["mbf"]["operators"] == ["mobifone"]
