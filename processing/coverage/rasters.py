"""The engine's raster as the map shows it: per operator (and for any operator), the best
predicted level of the broadband technologies in each cell, for store/coverage_rasters.py.

Broadband only (3G/4G, ``CoverageConfig.broadband``), as the dead-spot verdict counts: a cell
lit by 2G alone would read as covered around a village ringed as a dead spot. A level at its
technology's floor is no signal (the engine keeps nothing weaker). The prediction only: probe
measurements are judged per place, not per cell of the map.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator
from processing.coverage.engine import CoverageEngine
from processing.coverage.grid import UTM49N, Grid, to_latlon
from store.coverage_rasters import CoverageRaster, RasterGrid, encode

F32 = npt.NDArray[np.float32]
ANY = "any"


def operator_levels(engine: CoverageEngine) -> dict[str, F32]:
    """operator (and "any") → (rows, cols) best broadband level in dBm, NaN for no signal."""
    broadband = engine.config.broadband
    out: dict[str, F32] = {}
    for op in Operator:
        best = np.full(engine.grid.shape, np.nan, np.float32)
        for k, (o, tech) in enumerate(engine.layers):
            if o is op and tech in broadband:
                lit = engine.value[k] > engine.floors[k]
                best = np.where(lit, np.fmax(best, engine.value[k]), best)
        out[op.value] = best
    out[ANY] = np.fmax.reduce([out[op.value] for op in Operator])
    return out


def raster_grid(grid: Grid) -> RasterGrid:
    """The grid with the lon/lat box that holds it (its edges sampled: UTM's are curved there)."""
    xs = grid.x0 + np.linspace(0.0, grid.cols * grid.res, 65)
    ys = grid.y0 - np.linspace(0.0, grid.rows * grid.res, 65)
    bx = np.concatenate([xs, xs, np.full(65, xs[0]), np.full(65, xs[-1])])
    by = np.concatenate([np.full(65, ys[0]), np.full(65, ys[-1]), ys, ys])
    lat, lon = to_latlon(bx, by)
    return RasterGrid(
        UTM49N, grid.x0, grid.y0, grid.res, grid.rows, grid.cols,
        float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()),
    )  # fmt: skip


def operator_rasters(engine: CoverageEngine, computed_at: datetime) -> list[CoverageRaster]:
    grid = raster_grid(engine.grid)
    return [
        CoverageRaster(op, grid, encode(levels), computed_at)
        for op, levels in operator_levels(engine).items()
    ]
