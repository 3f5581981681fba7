"""The kernel: one emitter's received level over a window of cells or a set of cells.

An emitter is the sectors of one site that share a technology and band, so they share the path
loss. Sites stand at the centre of their raster cell (≤ res/√2 off, below the raster's own
resolution), which lets every site read its geometry from one precomputed template of
offsets: no trigonometry or logarithm per cell and site. The window path (slices) and the
point path (gathers) feed the same float32 inputs to the same compiled code (numba), so the
incremental recompute reproduces the full one bit for bit. The terrain's loss comes off after
the path loss (``_shade``), from the site's sweep along the cell's nearest radial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numba
import numpy as np
import numpy.typing as npt

from devices.diffraction import LIGHT_M_MHZ
from devices.kinds import Operator, Technology
from devices.radio import (
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
from processing.coverage.sites import SectorInput
from processing.coverage.terrain import (
    NU_CLEAR,
    bullington32,
    flat_loss_db,
    radial_of,
    radials,
    radials_of,
    radials_over_box,
    sweep,
)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
T = TypeVar("T", bound=np.generic)
I32 = npt.NDArray[np.int32]
KV = np.float32(12.0 / VERTICAL_BEAMWIDTH_DEG**2)
AM = np.float32(FRONT_TO_BACK_DB)
SLAV = np.float32(SIDE_LOBE_V_DB)
F360 = np.float32(360.0)
ELEVATION_CACHE = 64  # antenna heights whose elevation grid is kept
F20 = np.float32(20.0)


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
    # Terrain (processing.coverage.terrain): 1/√λ turns a sweep's ν·√λ into ν; ``smooth`` is
    # the Bullington loss over smooth earth at each distance (cells), which Okumura-Hata's
    # median already holds: the terrain adds only what the real ground costs beyond it.
    inv_sqrt_lambda: np.float32
    smooth: F32
    step_km: float  # a cell, km: the distance of a sweep's sample
    floor: np.float32  # its technology's floor: a level below it is "no signal"

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
    sectors: list[SectorInput],
    floor_dbm: float,
    max_range_m: float,
    best_land_use: LandUse,
    res: float,
) -> Emitter:
    """An emitter; its ``smooth`` losses are computed to its window's edge."""
    intercept, slope = hata_terms(band_mhz, height_m, MOBILE_HEIGHT_M)
    level0 = np.array(
        [s.tx_power_dbm + s.antenna_gain_dbi + REFERENCE_SHARE_DB[technology] for s in sectors]
    )
    # Farthest a cell could be above the floor: best sector at boresight over the most open
    # land use the window holds (the loss is never below the Hata line, so this bounds it).
    budget = float(level0.max()) - floor_dbm
    open_loss = float(intercept) - float(land_use_correction_db(band_mhz, best_land_use))
    reach_km = 10 ** ((budget - open_loss) / float(slope))
    radius_m = min(reach_km * 1000.0, max_range_m)
    radius = int(np.ceil(radius_m / res))
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
        radius=radius,
        sector_numbers=tuple(s.sector for s in sectors),
        azimuth=np.array([s.azimuth_deg for s in sectors], np.float32),
        tilt=np.array([s.tilt_deg for s in sectors], np.float32),
        level0=level0.astype(np.float32),
        kh=np.array([12.0 / s.beamwidth_deg**2 for s in sectors], np.float32),
        intercept=np.float32(intercept),
        slope=np.float32(slope),
        free0=np.float32(32.45 + 20.0 * np.log10(band_mhz)),
        inv_sqrt_lambda=np.float32(1.0 / np.sqrt(LIGHT_M_MHZ / band_mhz)),
        smooth=flat_loss_db(radius, res, height_m, MOBILE_HEIGHT_M, band_mhz),
        step_km=res / 1000.0,
        floor=np.float32(floor_dbm),
    )


@dataclass(frozen=True, slots=True)
class Templates:
    """Geometry of every cell offset (di, dj) within ``half`` cells of a site's cell."""

    half: int
    res: float
    k: I32  # di² + dj²
    log_d: F32  # log10(distance, km), distance clamped to MIN_DISTANCE_KM
    bearing: F32  # degrees clockwise from north, 0–360
    ring: I32  # distance in cells, rounded: the sample of a terrain sweep's radial
    _elevation: dict[float, F32] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, half: int, res: float) -> Templates:
        di, dj = np.mgrid[-half : half + 1, -half : half + 1]
        k = (di * di + dj * dj).astype(np.int32)
        d_m = np.maximum(res * np.sqrt(k), 1000.0 * MIN_DISTANCE_KM)
        bearing = np.degrees(np.arctan2(dj * res, -di * res)) % 360.0  # row index grows south
        ring = np.floor(np.sqrt(k) + 0.5).astype(np.int32)
        log_d = np.log10(d_m / 1000.0).astype(np.float32)
        return cls(half, res, k, log_d, bearing.astype(np.float32), ring)

    @property
    def nbytes(self) -> int:
        grids = self.k.nbytes + self.log_d.nbytes + self.bearing.nbytes + self.ring.nbytes
        return grids + sum(g.nbytes for g in self._elevation.values())

    def elevation(self, height_m: float) -> F32:
        """Angle below the horizon, degrees, at every offset, for an antenna this high. The
        last ELEVATION_CACHE heights are kept (41 in Bình Định: 26 MB at 100 m)."""
        grid = self._elevation.pop(height_m, None)
        if grid is None:
            k = np.arange(2 * self.half * self.half + 1)
            d_m = np.maximum(self.res * np.sqrt(k), 1000.0 * MIN_DISTANCE_KM)
            table = np.degrees(np.arctan2(height_m - MOBILE_HEIGHT_M, d_m)).astype(np.float32)
            grid = table[self.k]
            if len(self._elevation) >= ELEVATION_CACHE:
                del self._elevation[next(iter(self._elevation))]
        self._elevation[height_m] = grid  # most recently used last
        return grid


def window_levels(
    e: Emitter,
    active: npt.NDArray[np.bool_],
    templates: Templates,
    corr: F32,
    box: tuple[int, int, int, int],
    scratch: F32 | None = None,
    shadow: F32 | None = None,
) -> F32:
    """Best level over the emitter's active sectors, dBm, over a box of raster cells.
    ``corr`` is the land-use correction of the emitter's band over the whole raster;
    ``shadow`` the terrain sweep of the emitter's site (``terrain.sweep``, its radials over
    the box at least), none: no terrain. With
    ``scratch`` (1-D, at least the box's cells) the result is a view of it: a worker under a
    Dask nanny (MALLOC_TRIM_THRESHOLD_ set, so glibc maps every large block afresh) ran the
    tiles 1.5× slower allocating a window per call."""
    r0, r1, c0, c1 = box
    shape = (r1 - r0, c1 - c0)
    out = np.empty(shape, np.float32) if scratch is None else scratch[: shape[0] * shape[1]]
    out = out.reshape(shape)
    h = templates.half
    tr, tc = r0 - e.row + h, c0 - e.col + h
    geometry = (templates.log_d, templates.bearing, templates.elevation(e.height_m), templates.ring)
    _run(e, active, geometry, (tr, tc), corr, (r0, c0), out, shadow)
    return out


def point_levels(
    e: Emitter,
    active: npt.NDArray[np.bool_],
    templates: Templates,
    corr: F32,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    shadow: F32 | None = None,
) -> F32:
    """The same at a list of cells (each within the emitter's window)."""
    h = templates.half
    di, dj = rows - e.row + h, cols - e.col + h

    def gather(g: npt.NDArray[T]) -> npt.NDArray[T]:
        return np.ascontiguousarray(g[di, dj]).reshape(1, -1)

    geometry = (
        gather(templates.log_d),
        gather(templates.bearing),
        gather(templates.elevation(e.height_m)),
        gather(templates.ring),
    )
    here = np.ascontiguousarray(corr[rows, cols]).reshape(1, -1)
    out = np.empty((1, rows.size), np.float32)
    _run(e, active, geometry, (0, 0), here, (0, 0), out, shadow)
    return out.reshape(-1)


def emitter_shadow(
    ground: F32, e: Emitter, res: float, box: tuple[int, int, int, int] | None = None
) -> F32:
    """The terrain sweep from the emitter's site out to its window's edge (``terrain.sweep``):
    every radial, or those a box of cells reads, out to its farthest cell."""
    which = reach = None
    if box is not None:
        which, reach = radials_over_box(e.row, e.col, box, radials(e.radius))
    return sweep(ground, e.row, e.col, e.radius, res, e.height_m, MOBILE_HEIGHT_M, which, reach)


def shadow_at(
    ground: F32,
    e: Emitter,
    templates: Templates,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
) -> F32:
    """The same along the radials these cells read (each within the emitter's window); the
    radials no cell reads are left unset."""
    return Sweeps(ground, templates).at(e, rows, cols)


class Sweeps:
    """Terrain sweeps kept over one batch of work (a repair of several layers): each site is
    swept once for all the radials asked of it, each radial to the farthest sample asked."""

    def __init__(self, ground: F32, templates: Templates) -> None:
        self.ground, self.templates = ground, templates
        self._kept: dict[tuple[int, int, int, float], tuple[F32, npt.NDArray[np.int64]]] = {}

    def at(self, e: Emitter, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> F32:
        """``shadow_at``'s sweep, from what is kept where it holds them."""
        h = self.templates.half
        di, dj = rows - e.row + h, cols - e.col + h
        n_rad = radials(e.radius)
        ids = radials_of(np.ascontiguousarray(self.templates.bearing[di, dj]), n_rad)
        want = np.full(n_rad, -1, np.int64)
        np.maximum.at(want, ids, self.templates.ring[di, dj])
        key = (e.row, e.col, e.radius, e.height_m)
        kept = self._kept.get(key)
        if kept is None:
            # what no cell asked for is never read: left unset
            blank = np.empty((n_rad, e.radius + 1), np.float32)
            kept = self._kept[key] = (blank, np.full(n_rad, -1, np.int64))
        shadow, done = kept
        need = np.flatnonzero(want > done)
        if need.size:
            reach = int(want[need].max())
            sweep(self.ground, e.row, e.col, e.radius, self.templates.res, e.height_m,
                  MOBILE_HEIGHT_M, need, reach, out=shadow)  # fmt: skip
            done[need] = min(reach, e.radius)
        return shadow


_NO_MASK = np.zeros((1, 1), np.bool_)
Geometry = tuple[F32, F32, F32, I32]  # log10 distance, bearing, elevation angle, ring


def _run(
    e: Emitter,
    active: npt.NDArray[np.bool_],
    geometry: Geometry,
    at: tuple[int, int],
    corr: F32,
    corr_at: tuple[int, int],
    out: F32,
    shadow: F32 | None,
) -> None:
    on = np.flatnonzero(active)
    assert on.size, "an emitter's levels need an active sector"
    log_d, bearing, elev, ring = geometry
    sectors = (e.azimuth[on], e.tilt[on], e.kh[on], e.level0[on])
    _levels(log_d, bearing, elev, ring, *at, corr, *corr_at, *sectors, e.slope, e.intercept,
            e.free0, e.radius, out)  # fmt: skip
    if shadow is not None:
        _shade(bearing, ring, *at, shadow, e.inv_sqrt_lambda, e.smooth,
               np.float32(0.02 * e.step_km), e.floor, _NO_MASK, False, out)  # fmt: skip


def shade(
    e: Emitter,
    templates: Templates,
    box: tuple[int, int, int, int],
    shadow: F32,
    levels: F32,
    where: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Take the terrain's loss off ``levels`` (a window over ``box`` computed without
    terrain), at the cells ``where`` says or all: the same float32 steps, in the same order,
    as a window computed with the ``shadow``, so those cells read the same bit for bit."""
    h = templates.half
    tr, tc = box[0] - e.row + h, box[2] - e.col + h
    mask = _NO_MASK if where is None else where
    _shade(templates.bearing, templates.ring, tr, tc, shadow, e.inv_sqrt_lambda, e.smooth,
           np.float32(0.02 * e.step_km), e.floor, mask, where is not None, levels)  # fmt: skip


def reach_by_radial(
    e: Emitter, templates: Templates, box: tuple[int, int, int, int], levels: F32, into: I64
) -> None:
    """Raise ``into`` (one per radial of the emitter's sweep, −1: none) to the farthest ring
    at which ``levels`` (its flat window over ``box``) has signal: the terrain can only take
    it away, so the sweep need not go farther."""
    h = templates.half
    tr, tc = box[0] - e.row + h, box[2] - e.col + h
    _reach(templates.bearing, templates.ring, tr, tc, levels, e.floor, into)


@numba.njit(cache=True, nogil=True)
def _reach(  # pragma: no cover - compiled
    bearing: F32, ring: I32, tr: int, tc: int, levels: F32, floor: np.float32, into: I64
) -> None:
    rows, cols = levels.shape
    n_rad = into.size
    for i in range(rows):
        for j in range(cols):
            if levels[i, j] >= floor:
                k = radial_of(bearing[tr + i, tc + j], n_rad)
                into[k] = max(into[k], ring[tr + i, tc + j])


# Per sector one pass over the window, fused (no temporaries), float32 throughout, IEEE
# arithmetic (no fastmath): the window and the point paths run this same code on the same
# float32 inputs, so they agree bit for bit. The inputs are whole C-contiguous arrays read at
# an offset, so the inner loop is unit-stride and LLVM vectorises it (2D indexing at an
# offset measured 3× slower). nogil: the full recompute's threads run it side by side.
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _levels(  # pragma: no cover - compiled
    log_d: F32,
    bearing: F32,
    elev: F32,
    ring: I32,
    tr: int,
    tc: int,
    corr: F32,
    cr: int,
    cc: int,
    azimuth: F32,
    tilt: F32,
    kh: F32,
    level0: F32,
    slope: np.float32,
    intercept: np.float32,
    free0: np.float32,
    radius: int,
    out: F32,
) -> None:
    rows, cols = out.shape
    out[:] = -np.inf
    for s in range(azimuth.size):
        az, tl, k, l0 = azimuth[s], tilt[s], kh[s], level0[s]
        for i in range(rows):
            b_row = bearing[tr + i, tc : tc + cols]
            e_row = elev[tr + i, tc : tc + cols]
            o_row = out[i]
            for j in range(cols):
                a = abs(b_row[j] - az)
                a = min(a, F360 - a)  # |bearing − azimuth| folded to 0–180°
                a = a * a * k  # horizontal 12 (φ/φ3dB)²; its cap at Am is implied below
                v = e_row[j] - tl
                v = min(v * v * KV, SLAV)  # vertical: min(12 ((θ − tilt)/θ3dB)², SLAv)
                o_row[j] = max(o_row[j], l0 - min(a + v, AM))
    for i in range(rows):
        d_row = log_d[tr + i, tc : tc + cols]
        c_row = corr[cr + i, cc : cc + cols]
        r_row = ring[tr + i, tc : tc + cols]
        o_row = out[i]
        for j in range(cols):
            ld = d_row[j]
            o_row[j] -= max(ld * slope + intercept - c_row[j], ld * F20 + free0)
            if r_row[j] > radius:
                o_row[j] = -np.inf  # the window's corners: beyond its reach (or Hata's range)


# The terrain's loss (processing.coverage.terrain): the cell's nearest radial and ring pick
# ν·√λ from the site's sweep; the Bullington loss in excess of smooth earth's comes off.
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _shade(  # pragma: no cover - compiled
    bearing: F32,
    ring: I32,
    tr: int,
    tc: int,
    shadow: F32,
    inv_sqrt_lambda: np.float32,
    smooth: F32,
    ramp: np.float32,
    floor: np.float32,
    mask: npt.NDArray[np.bool_],
    masked: bool,
    out: F32,
) -> None:
    rows, cols = out.shape
    n_rad, n_ring = shadow.shape
    for i in range(rows):
        b_row = bearing[tr + i, tc : tc + cols]
        r_row = ring[tr + i, tc : tc + cols]
        o_row = out[i]
        for j in range(cols):
            if o_row[j] < floor or (masked and not mask[i, j]):
                continue  # no signal already (terrain only takes away), or not asked
            n = r_row[j]
            if n >= n_ring or n >= smooth.size:
                continue  # beyond the sweep: beyond the window's reach, below the floor
            nu = shadow[radial_of(b_row[j], n_rad), n] * inv_sqrt_lambda
            if nu <= NU_CLEAR:
                continue  # J = 0: nothing in the way, and never below the smooth earth's
            loss = bullington32(nu, np.float32(n) * ramp) - smooth[n]
            if loss > 0:
                o_row[j] -= loss


def merge_best(
    v: F32,
    value: F32,
    best: npt.NDArray[np.int32],
    at: tuple[int, int],
    eid: int,
    *,
    tie_break: bool = False,
    where: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Keep ``v`` (a window at ``at`` of one layer's ``value``) where it beats the level there,
    and ``eid`` as the best emitter; with ``tie_break`` a tie goes to the lower id, as in a full
    recompute in emitter order; ``where`` limits it to some cells of the window."""
    mask = np.ones((1, 1), np.bool_) if where is None else where
    _merge(v, value, best, at[0], at[1], eid, tie_break, mask, where is not None)


@numba.njit(cache=True, nogil=True)
def _merge(  # pragma: no cover - compiled
    v: F32,
    value: F32,
    best: npt.NDArray[np.int32],
    r0: int,
    c0: int,
    eid: int,
    tie_break: bool,
    mask: npt.NDArray[np.bool_],
    masked: bool,
) -> None:
    rows, cols = v.shape
    for i in range(rows):
        v_row, cur = v[i], value[r0 + i, c0 : c0 + cols]
        ids = best[r0 + i, c0 : c0 + cols]
        for j in range(cols):
            win = v_row[j] > cur[j] or (tie_break and v_row[j] == cur[j] and ids[j] > eid)
            if win and (not masked or mask[i, j]):
                cur[j] = v_row[j]
                ids[j] = eid
