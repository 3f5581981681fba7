"""Coverage on Dask: the full recompute and N-1 of many provinces, here and on 1 and 2 workers.

    python -m bench.scale [--quick] [--resolution-m 100]

Full run: the national scenario, every province's generated scenario (``seeds.load_scenario``
for each GSO code; each province its own raster, as processing is partitioned by province);
``--quick``: three provinces (Bình Định, Bắc Giang, Thái Nguyên). Its own Dask scheduler and
workers, each a separate process on loopback (``tests/support/dask_cluster.py``): first one
worker, then a second added. Before each timed pass every worker has imported the coverage
code and run the compiled kernel (checked on each), so numba's loading is not in the times.

Timed, summed over the provinces, the best of ``--repeats``:
``single_s``: ``CoverageEngine.recompute_full`` in this process on one thread (``single_2t_s``:
the engine's default two threads); ``dask1_s``, ``dask2_s``: the same on the cluster, CHUNK
provinces submitted together (``cluster.recompute_many``), pickling and shipping included.
``n1_*_s``: the covering towers of every place (``refresh_covering`` and ``plan``, what N-1
criticality reads). ``equal``: every province's rasters (level and best emitter) and
covering towers from the cluster are those of the single-process engine.
``speedup_2`` = dask1_s / dask2_s. ``per_site_ms``: single-thread recompute per site. The
projection: ``national_sites`` × per-site cost ÷ (K × the 2-worker efficiency), for K workers.
Prints, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from distributed import Client

from ioc.configs import coverage_config
from processing.coverage import Coverage, CoverageEngine
from processing.coverage.cluster import recompute_many
from processing.coverage.config import CoverageConfig
from processing.coverage.scenario import Inputs, scenario_inputs
from seeds import load_scenario
from tests.support.dask_cluster import start_cluster

QUICK = ("Bình Định", "Bắc Giang", "Thái Nguyên")
CHUNK = 8  # provinces recomputed together on the cluster (their rasters held at once)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Province:
    name: str
    inputs: Inputs
    digest: str = ""  # of the single-process rasters
    covering: Any = None  # the single-process covering and planned towers


def digest(eng: CoverageEngine) -> str:
    return hashlib.sha256(eng.value.tobytes() + eng.best.tobytes()).hexdigest()


def provinces(quick: bool) -> list[str | int]:
    if quick:
        return list(QUICK)
    from seeds.national import all_codes

    return list(all_codes())


def one_pass(
    todo: list[Province], config: CoverageConfig, client: Client | None
) -> tuple[float, float, bool, dict[str, float]]:
    """(recompute seconds, covering seconds, all equal to single-process, cluster costs)."""
    full_s = n1_s = 0.0
    equal = True
    costs = {"ship_s": 0.0, "ship_mb": 0.0, "tasks": 0.0}
    for k in range(0, len(todo), CHUNK):
        chunk = todo[k : k + CHUNK]
        engines = [
            CoverageEngine(p.inputs.grid, p.inputs.land_use, p.inputs.sites, config) for p in chunk
        ]
        t0 = time.perf_counter()
        if client is None:
            for eng in engines:
                eng.recompute_full()
        else:
            for run in recompute_many(engines, client):
                costs["ship_s"] += run.ship_s
                costs["ship_mb"] += run.ship_bytes / 2**20
                costs["tasks"] += run.tasks
        full_s += time.perf_counter() - t0
        for p, eng in zip(chunk, engines, strict=True):
            cov = Coverage(eng, p.inputs.places)
            t0 = time.perf_counter()
            cov.refresh_covering(client=client)
            cov.plan(client)
            n1_s += time.perf_counter() - t0
            if client is None and config.threads == 1:
                p.digest, p.covering = digest(eng), (cov.covering, cov.planned)
            else:
                equal &= digest(eng) == p.digest and (cov.covering, cov.planned) == p.covering
        del engines, eng, cov
        gc.collect()
    return full_s, n1_s, equal, costs


def best_of(repeats: int, run: Callable[[], tuple[float, float, bool, dict[str, float]]]) -> Any:
    results = [run() for _ in range(repeats)]
    full = min(r[0] for r in results)
    n1 = min(r[1] for r in results)
    return full, n1, all(r[2] for r in results), results[-1][3]


def coarse(p: Province) -> CoverageEngine:
    """The province on 1 km cells: a second's work that loads every compiled kernel."""
    config = coverage_config(resolution_m=1000.0)
    inputs = scenario_inputs(load_scenario(p.name), config)
    return CoverageEngine(inputs.grid, inputs.land_use, inputs.sites, config)


def warm(client: Client | None, p: Province, workers: int) -> None:
    """Every worker (or this process) has imported the code and loaded the compiled kernel
    (numba's cache) on both paths, window and point."""

    def compiled() -> bool:
        from processing.coverage import kernel

        return bool(kernel._levels.signatures and kernel._merge.signatures)

    for _ in range(10):
        eng = coarse(p)
        eng.recompute_full(client)
        cov = Coverage(eng, p.inputs.places)
        cov.refresh_covering(client=client)
        if client is None:
            return
        ready = client.run(compiled)
        if len(ready) == workers and all(ready.values()):
            return
    raise RuntimeError(f"workers not warm after ten passes: {ready}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three provinces (< 1 min)")
    parser.add_argument("--resolution-m", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=None, help="default: 1 quick, 2 full")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    config = coverage_config(resolution_m=args.resolution_m)
    one_thread = replace(config, threads=1)

    t0 = time.perf_counter()
    todo = []
    for name in provinces(args.quick):
        scenario = load_scenario(name)
        todo.append(Province(str(name), scenario_inputs(scenario, config)))
    sites = sum(len(p.inputs.sites) for p in todo)
    cells = sum(p.inputs.grid.rows * p.inputs.grid.cols for p in todo)
    say(f"{len(todo)} provinces, {sites} sites, {cells} cells ({time.perf_counter() - t0:.0f} s)")

    # single process: one thread first (it records what the cluster must reproduce)
    warm(None, todo[0], 1)
    single_s, n1_single_s, _, _ = best_of(repeats, lambda: one_pass(todo, one_thread, None))
    say(f"single process, one thread: {single_s:.2f} s; covering {n1_single_s:.2f} s")
    single_2t_s, _, equal_2t, _ = best_of(1, lambda: one_pass(todo, config, None))
    say(f"single process, {config.threads} threads: {single_2t_s:.2f} s")

    out: dict[int, Any] = {}
    with start_cluster(workers=1) as cluster:
        for workers in (1, 2):
            if workers == 2:
                cluster.add_workers(1)
            warm(cluster.client, todo[0], workers)
            full, n1, equal, costs = best_of(
                repeats, lambda: one_pass(todo, config, cluster.client)
            )
            out[workers] = (full, n1, equal, costs)
            say(f"{workers} worker(s): {full:.2f} s; covering {n1:.2f} s; equal {equal}; {costs}")

    (dask1_s, n1_dask1_s, eq1, _), (dask2_s, n1_dask2_s, eq2, costs2) = out[1], out[2]
    speedup = dask1_s / dask2_s
    per_site_ms = single_s / sites * 1000
    n1_per_site_ms = n1_single_s / sites * 1000
    from seeds.national import all_codes

    national_sites = sites if not args.quick else round(sites / len(todo) * len(all_codes()))
    efficiency = speedup / 2
    projection = {
        f"k{k}": {
            "recompute_s": round(national_sites * per_site_ms / 1000 / (k * efficiency), 1),
            "n1_s": round(national_sites * n1_per_site_ms / 1000 / (k * efficiency), 1),
        }
        for k in (1, 2, 8, 32)
    }
    result = {
        "provinces": len(todo),
        "resolution_m": args.resolution_m,
        "sites": sites,
        "cells": cells,
        "single_s": round(single_s, 3),
        "single_2t_s": round(single_2t_s, 3),
        "dask1_s": round(dask1_s, 3),
        "dask2_s": round(dask2_s, 3),
        "speedup_2": round(speedup, 3),
        "equal": bool(eq1 and eq2 and equal_2t),
        "per_site_ms": round(per_site_ms, 3),
        "n1_single_s": round(n1_single_s, 3),
        "n1_dask1_s": round(n1_dask1_s, 3),
        "n1_dask2_s": round(n1_dask2_s, 3),
        "n1_per_site_ms": round(n1_per_site_ms, 3),
        "ship_s_2": round(costs2["ship_s"], 3),
        "ship_mb_2": round(costs2["ship_mb"], 1),
        "tasks_2": int(costs2["tasks"]),
        "national_sites": national_sites,
        "efficiency_2": round(efficiency, 3),
        "projection": projection,
        "note": "projection: national_sites × per-site cost ÷ (K × efficiency_2); quick: "
        "national_sites scaled from the three provinces' mean",
        "quick": args.quick,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
