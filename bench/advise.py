"""Siting advisor speed: 3 new sites over the province, and the loop it replaces.

    python -m bench.advise [--quick] [--operator viettel] [--towers 3]

The Bình Định scenario at 100 m, every tower online (built first, not timed in ``advise_s``:
the coverage service holds it already). ``advise_s``: the greedy search with its FFT gains and
the kernel's check of each pick, median of the repeats. Beside it, in the same run, the naive
way: every candidate's exact footprint at the uncovered villages with the kernel, one candidate
after another (timed on a sample of candidates, scaled to all of them and to the picks), as
``naive_s`` and ``naive_ratio`` (naive_s / advise_s). Prints, as its last line, a JSON object
with ``advise_s``, ``population_gained`` and the per-pick figures (``picks``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from devices.kinds import Operator
from ioc.cli_advise import parse_operator
from ioc.configs import advisor_setup, coverage_config
from ioc.settings import Settings
from processing.coverage.advise import (
    Ground,
    StandardSite,
    advise,
    candidate_mask,
    footprint_templates,
    ground_from_coverage,
    site_emitter,
)
from processing.coverage.engine import class_corrections
from processing.coverage.kernel import point_levels
from processing.coverage.scenario import scenario_coverage
from seeds import load_scenario


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def naive_seconds_per_candidate(
    ground: Ground, operator: Operator | None, site: StandardSite, sample: int
) -> tuple[float, int]:
    """One candidate's gain the slow way: its exact levels at every uncovered village."""
    grid, cfg = ground.grid, ground.config
    todo = ground.uncovered(operator)
    rows, cols, ok = grid.cell_of([v.lat for v in todo], [v.lon for v in todo])
    rows, cols = rows[ok], cols[ok]
    _, templates = footprint_templates(site, cfg, grid.res)
    corr = class_corrections(site.band_mhz, cfg)[ground.land_use]
    cand = np.flatnonzero(candidate_mask(ground, 1000.0, 0.0))
    picked = np.random.default_rng(7).choice(cand, size=min(sample, cand.size), replace=False)
    t0 = time.perf_counter()
    for flat in picked:
        r, c = divmod(int(flat), grid.cols)
        e = site_emitter(site, cfg, grid.res, r, c)
        near = (np.abs(rows - r) <= e.radius) & (np.abs(cols - c) <= e.radius)
        if near.any():
            point_levels(e, np.ones(len(e.azimuth), bool), templates, corr, rows[near], cols[near])
    return (time.perf_counter() - t0) / len(picked), int(cand.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repeat, a small sample (< 1 min)")
    parser.add_argument("--operator", default="viettel", help="an operator, or any (dead spots)")
    parser.add_argument("--towers", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    operator = parse_operator(args.operator)
    settings = Settings.defaults()
    site = advisor_setup(settings).site

    say("building the scenario's coverage at 100 m, every tower online…")
    t0 = time.perf_counter()
    cov = scenario_coverage(load_scenario(), coverage_config(settings, resolution_m=100.0))
    ground = ground_from_coverage(cov, load_scenario())
    coverage_s = time.perf_counter() - t0

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        advice = advise(ground, operator, args.towers, site=site,
                        spacing_m=settings.coverage.advise_spacing_m)  # fmt: skip
        times.append(time.perf_counter() - t0)
    advise_s = statistics.median(times)
    per_candidate_s, candidates = naive_seconds_per_candidate(
        ground, operator, site, sample=200 if args.quick else 1000
    )
    naive_s = per_candidate_s * candidates * len(advice.picks)
    picks = [
        {
            "rank": p.rank,
            "lat": round(p.lat, 5),
            "lon": round(p.lon, 5),
            "district_code": p.district_code,
            "commune_code": p.commune_code,
            "villages": len(p.villages),
            "people": p.population,
            "fft_estimate": p.estimated_people,
        }
        for p in advice.picks
    ]
    for p in picks:
        say(f"pick {p['rank']}: {p['lat']}, {p['lon']}: {p['villages']} villages, "
            f"{p['people']:,} people (FFT {p['fft_estimate']:,})")  # fmt: skip
    result = {
        "advise_s": round(advise_s, 3),
        "population_gained": advice.population_gained,
        "operator": args.operator,
        "towers": args.towers,
        "picks": picks,
        "uncovered_villages": advice.uncovered_villages,
        "uncovered_population": advice.uncovered_population,
        "candidates": candidates,
        "grid": f"{ground.grid.cols}x{ground.grid.rows} at {ground.grid.res:g} m",
        "coverage_s": round(coverage_s, 2),
        "naive_s": round(naive_s, 2),
        "naive_ratio": round(naive_s / advise_s, 1),
        "repeats": repeats,
        "quick": args.quick,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
