"""Coverage raster speed: full province recompute, one tower's change, and a naive baseline.

    python -m bench.coverage [--quick] [--terrain]

The Bình Định scenario (1,723 sites, every sector, 4 operators × 3 technologies) at 100 m.
In one run: the full recompute; towers taken offline and back one at a time (incremental);
and a straightforward per-sector numpy computation over the whole raster with
``devices.radio`` (timed on a sample of sectors and scaled to all of them). Memory: the peak
that tracemalloc sees during engine build and full recompute (numpy allocations included).
Prints, as its last line, a JSON object with ``full_s``, ``one_tower_s``,
``incremental_ratio`` (one_tower_s / full_s), ``cell_evals_per_s``, ``naive_ratio``
(full_s / naive_s) and ``peak_mb``, and more.

``--terrain``: the same over the scenario's DEM (``IOC_COVERAGE_DEM``'s default, the synthetic
terrain; Bullington diffraction, processing/coverage/terrain.py), with the flat recompute timed
beside it in the same run (``flat_full_s``, ``terrain_ratio``) and
``reference_max_error_db``: the sweep's largest error against the ITU-R P.1812 validation
values in tests/data/itu_p1812_bullington.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from devices.radio import bearing_deg
from ioc.configs import coverage_config
from processing.coverage import CoverageEngine, SiteState
from processing.coverage.scenario import scenario_inputs
from processing.coverage.terrain import profile_nu1, sweep_loss_db
from seeds import load_scenario

VALIDATION = Path(__file__).parent.parent / "tests" / "data" / "itu_p1812_bullington.json"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def sector_cell_evals(eng: CoverageEngine) -> int:
    total = 0
    for e in eng.emitters:
        r0, r1, c0, c1 = e.box(*eng.grid.shape)
        total += (r1 - r0) * (c1 - c0) * int(eng.active[e.eid].sum())
    return total


def naive_seconds_per_sector(eng: CoverageEngine, sample: int, seed: int) -> float:
    """Every sector over the whole raster, float64, exact geometry from devices.radio."""
    g = eng.grid
    x, y = np.meshgrid(g.col_x(), g.row_y())
    best = np.full(g.shape, -200.0)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(eng.sites), size=sample, replace=False)
    from processing.coverage.grid import to_utm

    t0 = time.perf_counter()
    n = 0
    for i in picks:
        site = eng.sites[int(i)]
        sx, sy = to_utm(site.lat, site.lon)
        d_km = np.hypot(x - sx, y - sy) / 1000.0
        level = site.sectors[0].level_dbm(
            dist_km=d_km,
            bearing=bearing_deg(x - sx, y - sy),
            h_bs_m=site.antenna_height_m,
            land_use=eng.land_use,
        )
        np.maximum(best, level, out=best)
        n += 1
    return (time.perf_counter() - t0) / n


def reference_max_error_db() -> float:
    """The engine's sweep against the ITU-R's published Bullington losses."""
    doc = json.loads(VALIDATION.read_text(encoding="utf-8"))
    worst = 0.0
    for case in doc["cases"]:
        p = doc["profiles"][case["profile"]]
        d, g = np.array(p["d_km"]), np.array(p["ground_m"]) + np.array(p["cover_m"])
        g[0], g[-1] = p["ground_m"][0], p["ground_m"][-1]
        nu1 = profile_nu1(d, g, case["tx_agl_m"], case["rx_agl_m"], case["ae_km"])
        got = float(sweep_loss_db(nu1[-1], case["f_mhz"], d[-1] - d[0]))
        worst = max(worst, abs(got - case["lbulla_db"]))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer towers and samples (< 1 min)")
    parser.add_argument("--terrain", action="store_true", help="over the scenario's DEM")
    args = parser.parse_args()
    towers = 8 if args.quick else 40
    naive_sample = 3 if args.quick else 12
    repeats = 1 if args.quick else 3

    say("loading the scenario…")
    scenario = load_scenario()
    config = coverage_config() if args.terrain else coverage_config(dem_path=None)
    inputs = scenario_inputs(scenario, config)
    if args.terrain and inputs.ground is None:
        sys.exit("bench: --terrain needs IOC_COVERAGE_DEM's scenario DEM (seeds/data)")

    # Memory first, traced (numpy reports its buffers to tracemalloc); the times below are
    # taken afterwards, untraced, on the same engine.
    tracemalloc.start()
    t0 = time.perf_counter()
    eng = CoverageEngine(inputs.grid, inputs.land_use, inputs.sites, config, inputs.ground)
    register_s = time.perf_counter() - t0
    eng.recompute_full()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    say(f"{len(eng.sites)} sites, {len(eng.emitters)} emitters; traced peak {peak / 2**20:.0f} MB")
    full_times, full_cpu = [], []
    for k in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        eng.recompute_full()
        full_times.append(time.perf_counter() - t0)
        full_cpu.append(time.process_time() - c0)
        say(f"full recompute {k + 1}/{repeats}: {full_times[-1]:.2f} s ({full_cpu[-1]:.2f} s CPU)")
    full_s = min(full_times)
    terrain: dict[str, object] = {}
    if args.terrain:
        flat = CoverageEngine(inputs.grid, inputs.land_use, inputs.sites, config)
        flat_times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            flat.recompute_full()
            flat_times.append(time.perf_counter() - t0)
        shadowed = (eng.value < flat.value - 1.0).mean()
        terrain = {
            "flat_full_s": round(min(flat_times), 3),
            "terrain_ratio": round(full_s / min(flat_times), 2),
            "cells_shadowed_share": round(float(shadowed), 4),
            "reference_max_error_db": round(reference_max_error_db(), 4),
        }
        say(f"flat recompute {min(flat_times):.2f} s; terrain costs {terrain['terrain_ratio']}x")
        del flat
    evals = sector_cell_evals(eng)
    sectors = sum(int(a.sum()) for a in eng.active)

    rng = np.random.default_rng(20220531)
    ids = [s.device_id for s in eng.sites]
    off_times, on_times = [], []
    for device_id in rng.choice(ids, size=towers, replace=False):
        t0 = time.perf_counter()
        eng.apply({str(device_id): SiteState(serving=False)})
        off_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        eng.apply({str(device_id): SiteState(serving=True)})
        on_times.append(time.perf_counter() - t0)
    one_tower_s = statistics.fmean(off_times + on_times)
    say(f"one tower: offline {statistics.fmean(off_times) * 1000:.0f} ms mean, "
        f"online {statistics.fmean(on_times) * 1000:.0f} ms mean over {towers} towers")  # fmt: skip

    say(f"naive baseline: {naive_sample} sectors over the whole raster…")
    naive_s = naive_seconds_per_sector(eng, naive_sample, seed=1) * sectors
    say(f"naive baseline, scaled to {sectors} sectors: {naive_s:.0f} s")

    result = {
        "raster": f"{eng.grid.cols}x{eng.grid.rows} cells at {eng.grid.res:.0f} m",
        "sites": len(eng.sites),
        "sectors": sectors,
        "layers": len(eng.layers),
        "register_s": round(register_s, 3),
        "full_s": round(full_s, 3),
        "full_cpu_s": round(min(full_cpu), 3),
        "threads": config.threads,
        "one_tower_s": round(one_tower_s, 4),
        "one_tower_offline_s": round(statistics.fmean(off_times), 4),
        "one_tower_online_s": round(statistics.fmean(on_times), 4),
        "one_tower_max_s": round(max(off_times + on_times), 4),
        "incremental_ratio": round(one_tower_s / full_s, 5),
        "cell_evals": evals,
        "cell_evals_per_s": round(evals / full_s),
        "naive_s_estimated": round(naive_s, 1),
        "naive_ratio": round(full_s / naive_s, 5),
        "raster_mb": round(eng.nbytes / 2**20, 1),
        "peak_mb": round(peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "quick": args.quick,
        "terrain": args.terrain,
        **terrain,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
