"""Measured coverage: probe samples binned into the raster, replacing the prediction where a
cell has enough recent samples of an operator and technology.

A sample counts when it is recent (``CoverageConfig.measured_window_s``), inside the raster and
physical; the rest are refused and counted by reason. A cell's measured level is the median of
its samples, a "no service" sample counting as NO_SERVICE_DBM, so that a cell where most phones
found nothing reads as uncovered whatever a few lucky samples said.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator, Technology
from processing.coverage.config import CoverageConfig
from processing.coverage.grid import Grid

NO_SERVICE_DBM = -156.0  # the bottom of the reporting range (3GPP TS 36.133), devices.metrics
MAX_DBM = -31.0  # its top: anything stronger is not a phone's measurement
Layer = tuple[Operator, Technology]


@dataclass(frozen=True, slots=True)
class ProbeSample:
    ts: datetime
    lat: float
    lon: float
    operator: str
    technology: str
    rsrp_dbm: float | None
    no_service: bool = False
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class Measured:
    """Per layer index: the cells (flat index) with enough samples, their level and count."""

    cells: dict[int, npt.NDArray[np.int64]]
    levels: dict[int, npt.NDArray[np.float32]]
    counts: dict[int, npt.NDArray[np.int64]]
    used: int
    rejected: Counter[str]

    def lookup(
        self, layer: int, flat: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """(has a measurement, level) for these flat cell indexes of one layer."""
        cells = self.cells.get(layer)
        found = np.zeros(flat.shape, bool)
        out = np.full(flat.shape, np.nan, np.float32)
        if cells is None or cells.size == 0:
            return found, out
        i = np.clip(np.searchsorted(cells, flat), 0, cells.size - 1)
        found = cells[i] == flat
        out[found] = self.levels[layer][i[found]]
        return found, out


def bin_samples(
    samples: Iterable[ProbeSample],
    grid: Grid,
    layers: Sequence[Layer],
    config: CoverageConfig,
    now: datetime,
) -> Measured:
    rejected: Counter[str] = Counter()
    layer_of = {(op.value, tech.value): i for i, (op, tech) in enumerate(layers)}
    oldest = now - timedelta(seconds=config.measured_window_s)
    keep_layer, keep_lat, keep_lon, keep_val = [], [], [], []
    for s in samples:
        layer = layer_of.get((s.operator, s.technology))
        if layer is None:
            rejected["unknown_operator_or_technology"] += 1
        elif s.ts < oldest:
            rejected["too_old"] += 1
        elif not (_finite(s.lat) and _finite(s.lon)):
            rejected["no_position"] += 1
        elif not s.no_service and not _physical(s.rsrp_dbm):
            rejected["non_physical_level"] += 1
        else:
            keep_layer.append(layer)
            keep_lat.append(s.lat)
            keep_lon.append(s.lon)
            keep_val.append(NO_SERVICE_DBM if s.rsrp_dbm is None or s.no_service else s.rsrp_dbm)
    rows, cols, inside = grid.cell_of(
        np.array(keep_lat, np.float64), np.array(keep_lon, np.float64)
    )
    rejected["outside_raster"] += int((~inside).sum())
    if rejected["outside_raster"] == 0:
        del rejected["outside_raster"]
    layer_a = np.array(keep_layer, np.int64)[inside]
    flat = (rows * grid.cols + cols)[inside]
    vals = np.array(keep_val, np.float64)[inside]
    cells, levels, counts = {}, {}, {}
    for layer in np.unique(layer_a):
        mine = layer_a == layer
        f, v = flat[mine], vals[mine]
        order = np.lexsort((v, f))
        f, v = f[order], v[order]
        starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
        n = np.diff(np.r_[starts, f.size])
        enough = n >= config.measured_min_samples
        # median of each run of equal cells (values are sorted within a run)
        lo = starts + (n - 1) // 2
        hi = starts + n // 2
        med = (v[lo] + v[hi]) / 2.0
        cells[int(layer)] = f[starts][enough]
        levels[int(layer)] = med[enough].astype(np.float32)
        counts[int(layer)] = n[enough]
    used = int(inside.sum())
    return Measured(cells, levels, counts, used, rejected)


def _physical(v: float | None) -> bool:
    return v is not None and _finite(v) and NO_SERVICE_DBM <= v <= MAX_DBM


def _finite(v: float) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
