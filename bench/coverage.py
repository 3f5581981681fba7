"""Coverage raster speed: full province recompute, one tower's change, and a naive baseline.

    python -m bench.coverage [--quick]

The Bình Định scenario (1,723 sites, every sector, 4 operators × 3 technologies) at 100 m.
In one run: the full recompute; towers taken offline and back one at a time (incremental);
and a straightforward per-sector numpy computation over the whole raster with
``devices.radio`` (timed on a sample of sectors and scaled to all of them). Memory: the peak
that tracemalloc sees during engine build and full recompute (numpy allocations included).
Prints, as its last line, a JSON object with ``full_s``, ``one_tower_s``,
``incremental_ratio`` (one_tower_s / full_s), ``cell_evals_per_s``, ``naive_ratio``
(full_s / naive_s) and ``peak_mb``, and more.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import tracemalloc

import numpy as np

from devices.radio import bearing_deg
from ioc.configs import coverage_config
from processing.coverage import CoverageEngine, SiteState
from processing.coverage.scenario import scenario_inputs
from seeds import load_scenario


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer towers and samples (< 1 min)")
    args = parser.parse_args()
    towers = 8 if args.quick else 40
    naive_sample = 3 if args.quick else 12
    repeats = 1 if args.quick else 3

    say("loading the scenario…")
    scenario = load_scenario()
    config = coverage_config()
    inputs = scenario_inputs(scenario, config)

    # Memory first, traced (numpy reports its buffers to tracemalloc); the times below are
    # taken afterwards, untraced, on the same engine.
    tracemalloc.start()
    t0 = time.perf_counter()
    eng = CoverageEngine(inputs.grid, inputs.land_use, inputs.sites, config)
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
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
