"""Measured coverage: probe samples binned into the raster, replacing the prediction where a
cell has enough recent samples of an operator and technology, from enough distinct probes.

A sample is kept when it is recent (``CoverageConfig.measured_window_s``), inside the raster and
physical; the rest are refused and counted by reason. A kept sample counts only while the
sectors that reach its cell are unchanged since it was taken (the engine dates every change
over the tiles of the emitter's window): an old drive test never masks an outage, and a new
tower on air clears a measured dead spot at once. A cell's measured level is the median of its
counting samples, a "no service" sample counting as NO_SERVICE_DBM, so that a cell where most
phones found nothing reads as uncovered whatever a few lucky samples said.
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
class MeasuredCells:
    """Per layer index: the cells (flat index) with enough samples, their level and count."""

    cells: dict[int, npt.NDArray[np.int64]]
    levels: dict[int, npt.NDArray[np.float32]]
    counts: dict[int, npt.NDArray[np.int64]]

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


@dataclass(frozen=True, slots=True)
class Measured:
    """The accepted samples, one entry each, sorted by (layer, cell, level): any subset of
    them (those still valid after a tower's change) yields its medians without a new sort."""

    layer: npt.NDArray[np.int64]
    flat: npt.NDArray[np.int64]
    ts: npt.NDArray[np.float64]  # epoch seconds
    level: npt.NDArray[np.float64]
    probe: npt.NDArray[np.int64]  # the probe that took it, numbered
    min_samples: int
    min_probes: int
    used: int
    rejected: Counter[str]

    def cells(self, valid: npt.NDArray[np.bool_] | None = None) -> MeasuredCells:
        """The cells with at least ``min_samples`` valid samples from ``min_probes`` probes."""
        keep = np.ones(self.layer.shape, bool) if valid is None else valid
        layer, flat = self.layer[keep], self.flat[keep]
        level, probe = self.level[keep], self.probe[keep]
        cells: dict[int, npt.NDArray[np.int64]] = {}
        levels: dict[int, npt.NDArray[np.float32]] = {}
        counts: dict[int, npt.NDArray[np.int64]] = {}
        if layer.size == 0:
            return MeasuredCells(cells, levels, counts)
        starts = np.flatnonzero(np.r_[True, (layer[1:] != layer[:-1]) | (flat[1:] != flat[:-1])])
        n = np.diff(np.r_[starts, layer.size])
        run = np.repeat(np.arange(starts.size), n)
        pairs = np.unique(run * (int(probe.max()) + 1) + probe)
        probes = np.bincount(pairs // (int(probe.max()) + 1), minlength=starts.size)
        enough = (n >= self.min_samples) & (probes >= self.min_probes)
        # median of each run (levels are sorted within a run)
        med = (level[starts + (n - 1) // 2] + level[starts + n // 2]) / 2.0
        run_layer = layer[starts]
        for k in np.unique(run_layer[enough]):
            mine = enough & (run_layer == k)
            cells[int(k)] = flat[starts][mine]
            levels[int(k)] = med[mine].astype(np.float32)
            counts[int(k)] = n[mine]
        return MeasuredCells(cells, levels, counts)


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
    probe_no: dict[str, int] = {}
    keep_layer, keep_lat, keep_lon, keep_val, keep_ts, keep_probe = [], [], [], [], [], []
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
            keep_ts.append(s.ts.timestamp())
            keep_probe.append(probe_no.setdefault(s.device_id, len(probe_no)))
    rows, cols, inside = grid.cell_of(
        np.array(keep_lat, np.float64), np.array(keep_lon, np.float64)
    )
    if not inside.all():
        rejected["outside_raster"] += int((~inside).sum())
    layer_a = np.array(keep_layer, np.int64)[inside]
    flat = (rows * grid.cols + cols)[inside]
    vals = np.array(keep_val, np.float64)[inside]
    order = np.lexsort((vals, flat, layer_a))
    return Measured(
        layer=layer_a[order],
        flat=flat[order],
        ts=np.array(keep_ts, np.float64)[inside][order],
        level=vals[order],
        probe=np.array(keep_probe, np.int64)[inside][order],
        min_samples=config.measured_min_samples,
        min_probes=config.measured_min_probes,
        used=int(inside.sum()),
        rejected=rejected,
    )


def _physical(v: float | None) -> bool:
    return v is not None and _finite(v) and NO_SERVICE_DBM <= v <= MAX_DBM


def _finite(v: float) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
