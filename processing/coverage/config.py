"""The coverage engine's config, built by the ``ioc`` shell from its settings tree (ioc/settings.py
holds those defaults, the ones the seed facts are calibrated against); the defaults here are the
engine's own, not settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from devices.kinds import Technology


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageConfig:
    resolution_m: float
    thresholds_dbm: dict[Technology, float]  # the coverage edge of each technology
    # The seed documents count villages without mobile *broadband*: 2G is in the raster but
    # does not save a village from being a dead spot.
    broadband: frozenset[Technology] = frozenset({Technology.G4, Technology.G3})
    # The raster keeps levels down to this far below each technology's threshold; weaker is
    # "no signal", which is what bounds each sector's window.
    floor_margin_db: float = 5.0
    max_range_km: float = 20.0  # Hata's range; no prediction beyond
    tile_cells: int = 32  # spatial index tiles, in cells
    # Judge urban cells as a metropolitan centre: COST-231 Hata's Cm = 3 dB (devices.radio)
    metropolitan: bool
    threads: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))  # full recompute
    measured_window_s: float  # probe samples younger than this count
    measured_min_samples: int  # per raster cell, operator and technology
    # ...taken by at least this many probes: one phone with a bad antenna is not a dead spot
    measured_min_probes: int
    # Towers never heard from serve this long after the service starts (the fleet may still
    # be connecting), and not after.
    unknown_grace_s: float
    # The ground heights (processing.coverage.dem.load_dem); None: no terrain.
    dem_path: Path | None = None
    dem_province: int | None = None  # the GSO province that reads it; None: every province

    def __post_init__(self) -> None:
        if not 10.0 <= self.resolution_m <= 1000.0:
            raise ValueError(f"resolution_m: {self.resolution_m} m is not within 10–1000 m")
        if self.measured_min_samples < 1 or self.measured_min_probes < 1:
            raise ValueError("measured_min_samples and measured_min_probes: must be at least 1")
        if self.unknown_grace_s < 0:
            raise ValueError("unknown_grace_s: must not be negative")
        if self.max_range_km <= 0 or self.tile_cells < 1:
            raise ValueError("max_range_km and tile_cells must be positive")

    def floor_dbm(self, tech: Technology) -> float:
        return self.thresholds_dbm[tech] - self.floor_margin_db
