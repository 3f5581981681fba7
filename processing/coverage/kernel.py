"""The numpy kernel: one emitter's received level over a window of cells or a set of cells.

An emitter is the sectors of one site that share a technology and band, so they share the path
loss. Sites stand at the centre of their raster cell (≤ res/√2 off, below the raster's own
resolution), which lets every site read its geometry from one precomputed template of
offsets: no trigonometry or logarithm per cell and site. The window path (slices) and the
point path (gathers) feed the same float32 inputs to the same sequence of operations, so the
incremental recompute reproduces the full one bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator, Technology
from devices.radio import (
    ANTENNA_GAIN_DBI,
    FRONT_TO_BACK_DB,
    MIN_DISTANCE_KM,
    MOBILE_HEIGHT_M,
    REFERENCE_SHARE_DB,
    SIDE_LOBE_V_DB,
    VERTICAL_BEAMWIDTH_DEG,
    LandUse,
    hata_terms,
    land_use_correction_db,
)

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
KV = np.float32(12.0 / VERTICAL_BEAMWIDTH_DEG**2)
AM = np.float32(FRONT_TO_BACK_DB)
SLAV = np.float32(SIDE_LOBE_V_DB)


@dataclass(frozen=True, slots=True)
class Emitter:
    eid: int
    site: int  # index of its site
    device_id: str
    operator: Operator
    technology: Technology
    layer: int  # index of (operator, technology) in the engine's layers
    band_mhz: float
    height_m: float
    row: int  # the site's cell
    col: int
    radius: int  # window half-size, cells
    sector_numbers: tuple[int, ...]
    azimuth: F32
    tilt: F32
    level0: F32  # tx power + antenna gain + reference share, per sector
    kh: F32  # 12 / beamwidth², per sector
    intercept: np.float32  # Hata: intercept + slope·log10(d_km) − land-use correction
    slope: np.float32
    free0: np.float32  # free space: free0 + 20·log10(d_km)

    def box(self, rows: int, cols: int) -> tuple[int, int, int, int]:
        r, c, n = self.row, self.col, self.radius
        return max(r - n, 0), min(r + n + 1, rows), max(c - n, 0), min(c + n + 1, cols)


def make_emitter(
    *,
    eid: int,
    site: int,
    device_id: str,
    operator: Operator,
    technology: Technology,
    layer: int,
    band_mhz: float,
    height_m: float,
    row: int,
    col: int,
    sectors: list[tuple[int, float, float, float, float]],  # number, az, tilt, power, beamwidth
    floor_dbm: float,
    max_range_m: float,
    best_land_use: LandUse,
    res: float,
) -> Emitter:
    intercept, slope = hata_terms(band_mhz, height_m, MOBILE_HEIGHT_M)
    level0 = np.array(
        [p + ANTENNA_GAIN_DBI + REFERENCE_SHARE_DB[technology] for _, _, _, p, _ in sectors]
    )
    # Farthest a cell could be above the floor: best sector at boresight over the most open
    # land use the window holds (the loss is never below the Hata line, so this bounds it).
    budget = float(level0.max()) - floor_dbm
    open_loss = float(intercept) - float(land_use_correction_db(band_mhz, best_land_use))
    reach_km = 10 ** ((budget - open_loss) / float(slope))
    radius_m = min(reach_km * 1000.0, max_range_m)
    return Emitter(
        eid=eid,
        site=site,
        device_id=device_id,
        operator=operator,
        technology=technology,
        layer=layer,
        band_mhz=band_mhz,
        height_m=height_m,
        row=row,
        col=col,
        radius=int(np.ceil(radius_m / res)),
        sector_numbers=tuple(n for n, *_ in sectors),
        azimuth=np.array([a for _, a, _, _, _ in sectors], np.float32),
        tilt=np.array([t for _, _, t, _, _ in sectors], np.float32),
        level0=level0.astype(np.float32),
        kh=np.array([12.0 / b**2 for *_, b in sectors], np.float32),
        intercept=np.float32(intercept),
        slope=np.float32(slope),
        free0=np.float32(32.45 + 20.0 * np.log10(band_mhz)),
    )


@dataclass(frozen=True, slots=True)
class Templates:
    """Geometry of every cell offset (di, dj) within ``half`` cells of a site's cell."""

    half: int
    res: float
    k: I32  # di² + dj²: indexes the elevation tables
    log_d: F32  # log10(distance, km), distance clamped to MIN_DISTANCE_KM
    bearing: F32  # degrees clockwise from north, 0–360
    _elevation: dict[float, F32] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, half: int, res: float) -> Templates:
        di, dj = np.mgrid[-half : half + 1, -half : half + 1]
        k = (di * di + dj * dj).astype(np.int32)
        d_m = np.maximum(res * np.sqrt(k), 1000.0 * MIN_DISTANCE_KM)
        bearing = np.degrees(np.arctan2(dj * res, -di * res)) % 360.0  # row index grows south
        return cls(
            half, res, k, np.log10(d_m / 1000.0).astype(np.float32), bearing.astype(np.float32)
        )

    def elevation(self, height_m: float) -> F32:
        """Angle below the horizon, degrees, by k, for an antenna this high (cached)."""
        table = self._elevation.get(height_m)
        if table is None:
            k = np.arange(2 * self.half * self.half + 1)
            d_m = np.maximum(self.res * np.sqrt(k), 1000.0 * MIN_DISTANCE_KM)
            table = np.degrees(np.arctan2(height_m - MOBILE_HEIGHT_M, d_m)).astype(np.float32)
            self._elevation[height_m] = table
        return table


def levels(
    e: Emitter, active: npt.NDArray[np.bool_], log_d: F32, bearing: F32, elev: F32, corr: F32
) -> F32:
    """Best level over the emitter's active sectors, dBm, at cells given by their geometry.

    Every argument array has the same shape (a window or a list of cells); ``corr`` is the
    land-use correction of the emitter's band at those cells.
    """
    loss = log_d * e.slope
    loss += e.intercept
    loss -= corr
    free = log_d * np.float32(20.0)
    free += e.free0
    np.maximum(loss, free, out=loss)
    best: F32 | None = None
    a = np.empty_like(log_d)
    v = np.empty_like(log_d)
    for s in np.nonzero(active)[0]:
        np.subtract(bearing, e.azimuth[s], out=a)
        np.abs(a, out=a)
        np.subtract(np.float32(360.0), a, out=v)
        np.minimum(a, v, out=a)  # |bearing − azimuth| folded to 0–180°
        np.square(a, out=a)
        a *= e.kh[s]  # horizontal 12 (φ/φ3dB)²; its cap at Am is implied by the one below
        np.subtract(elev, e.tilt[s], out=v)
        np.square(v, out=v)
        v *= KV
        np.minimum(v, SLAV, out=v)  # vertical: min(12 ((θ − tilt)/θ3dB)², SLAv)
        a += v
        np.minimum(a, AM, out=a)
        np.subtract(e.level0[s], a, out=a)
        if best is None:
            best, a = a, np.empty_like(log_d)
        else:
            np.maximum(best, a, out=best)
    assert best is not None, "levels() needs an active sector"
    best -= loss
    return best
