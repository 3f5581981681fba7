"""Small radio worlds for the coverage engine's tests: sectors, sites and a two-operator scene
around (LAT0, LON0), computed on a grid over the test outline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator, Technology
from devices.radio import LandUse
from ioc.configs import coverage_config
from processing.coverage import CoverageEngine, Grid, Place
from processing.coverage.sites import SectorInput, SiteInput
from tests.support.coverage_scene import LAT0, LON0, OUTLINE
from tests.support.coverage_scene import offset as _offset

T0 = datetime(2026, 5, 31, tzinfo=UTC)
F32 = npt.NDArray[np.float32]


def sector(n: int, az: float, *, tech: Technology = Technology.G4, band: float = 1800.0,
           power: float = 44.5, tilt: float = 4.0) -> SectorInput:  # fmt: skip
    return SectorInput(n, az, tilt, band, tech, power, 65.0)


def site(device_id: str, op: Operator, lat: float, lon: float, *sectors: SectorInput,
         height: float = 35.0) -> SiteInput:  # fmt: skip
    secs = sectors or (sector(1, 0.0), sector(2, 120.0), sector(3, 240.0))
    return SiteInput(device_id, op, lat, lon, height, secs)


def random_sites(n: int, seed: int) -> list[SiteInput]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        op = list(Operator)[i % 4]
        turn = float(rng.uniform(0, 120))
        secs = [sector(k + 1, round((turn + 120 * k) % 360, 1), tilt=float(rng.uniform(2, 8)))
                for k in range(3)]  # fmt: skip
        if rng.random() < 0.5:
            secs += [sector(4 + k, round((turn + 120 * k) % 360, 1), tech=Technology.G3,
                            band=2100.0, power=42.5) for k in range(3)]  # fmt: skip
        if rng.random() < 0.3:
            secs.append(sector(len(secs) + 1, 90.0, tech=Technology.G4, band=900.0))
        lat = float(rng.uniform(13.88, 14.12))
        lon = float(rng.uniform(108.78, 109.02))
        out.append(site(f"S{i:03d}", op, lat, lon, *secs, height=float(rng.uniform(25, 45))))
    return out


def engine(sites: list[SiteInput], *, res: float = 200.0, land: LandUse = LandUse.RURAL_OPEN,
           ground: F32 | None = None, **cfg: object) -> CoverageEngine:  # fmt: skip
    """``ground``: heights on the grid over OUTLINE at ``res`` (terrain); none: flat."""
    grid = Grid.around(OUTLINE, res)
    lu = np.full(grid.shape, land, np.int8)
    lu[: grid.rows // 3] = LandUse.SUBURBAN  # some variety for the land-use corrections
    config = coverage_config(resolution_m=res, **cfg)  # type: ignore[arg-type]
    eng = CoverageEngine(grid, lu, sites, config, ground)
    eng.recompute_full()
    return eng


def _village(name: str, lat: float, lon: float, pop: int = 500) -> Place:
    return Place("village", name, name, 547, 21808, lat, lon, pop)


def two_operator_scene() -> tuple[CoverageEngine, list[Place]]:
    """Viettel site V; Mobifone site M 9 km east: both reach "both", only M reaches "mbf"."""
    v = site("V", Operator.VIETTEL, LAT0, LON0)
    m = site("M", Operator.MOBIFONE, *_offset(LAT0, LON0, 9000, 0))
    places = [
        _village("both", *_offset(LAT0, LON0, 4500, 300), 700),
        _village("mbf", *_offset(LAT0, LON0, 16000, 0), 400),
        _village("far", *_offset(LAT0, LON0, -14000, -14000), 90),
    ]
    return engine([v, m], res=100.0), places
