"""Terrain: diffraction loss over the ground between a site and every cell it reaches.

The method is Bullington's (``devices.diffraction``, ITU-R P.1812-6 §4.3.1); Okumura-Hata's
median is for smooth ground, so what comes off a level is the method's loss in excess of the
same path over smooth earth. Ground cover is not added to the profile, as the clutter is
already in the Hata land-use correction.

``devices.diffraction.bullington_db`` is the method as written, one profile at a time (the
reference the tests hold to the ITU-R's validation examples). The engine runs ``sweep``: from
each site, radials a few cells apart at the window's edge, one sample a cell along each.
Walking a radial outwards, the transmitter's steepest ray is a running maximum; the receiver's
is the tangent from the receiver to the upper convex hull of the profile so far (in a frame
where the earth's bulge is taken out of the heights, slopes from the receiver are slopes of
straight lines), which the walk keeps and finds by a short walk from the last one. So one
radial of n samples costs about O(n), not the O(n²) of a profile per cell. What a radial
keeps per sample is ν·√λ (ν at a 1 m wavelength): the site's emitters of every band share it,
each divides by its own √λ.

Where the sweep departs from the reference: on a line-of-sight path the highest ν is sought
only at the two horizon points (the transmitter's and the receiver's), not at every point,
and a cell takes the nearest radial's nearest sample (at most half a cell off at the window's
edge, where the radials are a cell apart). The tests bound both.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
import numpy.typing as npt

from devices.diffraction import EFFECTIVE_EARTH_RADIUS_KM, LIGHT_M_MHZ, knife_edge_db

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

NO_EDGE = np.float32(-1e9)  # ν·√λ of a path with nothing in the way (J = 0)
NU_CLEAR = np.float32(-0.78)  # J(ν) = 0 at and below
F01, F69, F20, F6, F10 = (np.float32(x) for x in (0.1, 6.9, 20.0, 6.0, 10.0))


def profile_nu1(
    d_km: npt.ArrayLike, ground_m: npt.ArrayLike, tx_agl_m: float, rx_agl_m: float, ae_km: float
) -> F32:
    """The sweep along one profile: ν·√λ for a receiver ``rx_agl_m`` above the ground at every
    point, from a transmitter ``tx_agl_m`` above the first (NO_EDGE where nothing is between)."""
    d = np.ascontiguousarray(d_km, np.float64)
    g = np.ascontiguousarray(ground_m, np.float64)
    out = np.empty(d.size, np.float32)
    hull = np.empty((2, d.size), np.float64)
    _walk((d - d[0]).astype(np.float64), g, g[0] + tx_agl_m, rx_agl_m, 500.0 / ae_km, out, hull)
    return out


def sweep_loss_db(nu1: npt.ArrayLike, f_mhz: float, d_km: npt.ArrayLike) -> F64:
    """The loss a sweep's ν·√λ gives at a frequency and distance (what the kernel adds)."""
    nu = np.asarray(nu1, np.float64) / math.sqrt(LIGHT_M_MHZ / f_mhz)
    j = knife_edge_db(nu)
    return j + (1.0 - np.exp(-j / 6.0)) * (10.0 + 0.02 * np.asarray(d_km, np.float64))


def flat_loss_db(radius: int, res_m: float, tx_agl_m: float, rx_agl_m: float, f_mhz: float) -> F32:
    """Bullington loss over smooth earth (no terrain) at 0..``radius`` cells, float32 as the
    kernel computes it: Okumura-Hata's median is for such ground, so only the excess over
    this is the terrain's (the "delta" of ITU-R P.1812's delta-Bullington, eq. 39). A sample
    does not depend on those beyond it, so one sweep to a round reach serves every radius."""
    reach = max(256, 1 << (radius - 1).bit_length())
    return _flat_loss_db(reach, res_m, tx_agl_m, rx_agl_m, f_mhz)[: radius + 1]


@functools.lru_cache(maxsize=1024)  # a fleet's emitters share few heights and bands
def _flat_loss_db(radius: int, res_m: float, tx_agl_m: float, rx_agl_m: float, f_mhz: float) -> F32:
    d = np.arange(radius + 1) * (res_m / 1000.0)
    nu1 = profile_nu1(d, np.zeros(radius + 1), tx_agl_m, rx_agl_m, EFFECTIVE_EARTH_RADIUS_KM)
    isl = np.float32(1.0 / math.sqrt(LIGHT_M_MHZ / f_mhz))
    out = _losses(nu1, isl, np.float32(0.02 * res_m / 1000.0))
    out.flags.writeable = False  # shared between emitters
    return out


@numba.njit(cache=True, nogil=True)
def _losses(nu1: F32, isl: np.float32, ramp: np.float32) -> F32:  # pragma: no cover - compiled
    out = np.zeros(nu1.size, np.float32)
    for n in range(nu1.size):
        nu = nu1[n] * isl
        if nu > NU_CLEAR:
            out[n] = bullington32(nu, np.float32(n) * ramp)
    return out


# J(ν) and 1 − exp(−J/6) tabulated for the kernel, interpolated linearly: the per-cell log,
# root and exponential cost the full recompute 60 % of its time; the table's error is below
# 0.001 dB (tests/test_coverage_terrain.py).
LUT_PER_NU = 64
LUT_NU_MAX = 64.0
_lut_nu = NU_CLEAR + np.arange(int((LUT_NU_MAX - NU_CLEAR) * LUT_PER_NU) + 2) / LUT_PER_NU
LUT_J = knife_edge_db(_lut_nu).astype(np.float32)
LUT_E = (1.0 - np.exp(-LUT_J.astype(np.float64) / 6.0)).astype(np.float32)
LUT_LAST = np.float32(LUT_J.size - 2)


@numba.njit(cache=True, nogil=True, inline="always")
def bullington32(nu: np.float32, ramp: np.float32) -> np.float32:  # pragma: no cover - compiled
    """J(ν) + [1 − exp(−J/6)](10 + 0.02 d) for ν > −0.78, float32 (the last steps of
    ``bullington_db``, as the kernel runs them); ``ramp`` is 0.02 d."""
    x = (nu - NU_CLEAR) * np.float32(LUT_PER_NU)
    if x < LUT_LAST:
        i = int(x)
        f = x - np.float32(i)
        j = LUT_J[i] + f * (LUT_J[i + 1] - LUT_J[i])
        e = LUT_E[i] + f * (LUT_E[i + 1] - LUT_E[i])
    else:  # deeper than the table: ν > 64, computed
        y = nu - F01
        j = F69 + F20 * np.log10(np.sqrt(y * y + np.float32(1.0)) + y)
        e = np.float32(1.0) - np.exp(-j / F6)
    return np.float32(j + e * (F10 + ramp))


# One radial every RADIAL_SPACING_CELLS at the window's edge: a cell takes the nearest radial,
# at most one cell off sideways there. At one cell the full Bình Định recompute swept twice
# the samples (388 million) for no visible change in the raster.
RADIAL_SPACING_CELLS = 2.0


def radials(radius_cells: int) -> int:
    """Radials of a sweep of this radius."""
    return max(8, math.ceil(2.0 * math.pi * radius_cells / RADIAL_SPACING_CELLS))


def radials_over_box(
    row: int, col: int, box: tuple[int, int, int, int], n_rad: int
) -> tuple[npt.NDArray[np.int64] | None, int]:
    """The radials (None: all) and the samples out that a box of cells reads from a site at
    (row, col). Seen from outside, a box spans the arc between its corners' bearings; two
    radials either side absorb the rounding of the cells' own."""
    r0, r1, c0, c1 = box
    dr = np.array([r0 - row, r1 - 1 - row], np.float64)
    dc = np.array([c0 - col, c1 - 1 - col], np.float64)
    reach = math.ceil(math.hypot(np.abs(dr).max(), np.abs(dc).max())) + 1
    if r0 - 1 <= row <= r1 and c0 - 1 <= col <= c1:
        return None, reach
    bearings = np.degrees(np.arctan2(np.tile(dc, 2), -np.repeat(dr, 2)))
    rel = (bearings - bearings[0] + 180.0) % 360.0 - 180.0
    lo = math.floor((bearings[0] + rel.min()) / 360.0 * n_rad) - 2
    hi = math.ceil((bearings[0] + rel.max()) / 360.0 * n_rad) + 2
    return np.unique(np.arange(lo, hi + 1) % n_rad), reach


@numba.njit(cache=True, nogil=True, inline="always")
def radial_of(bearing: np.float32, n_rad: int) -> int:  # pragma: no cover - compiled
    """The radial nearest a bearing (degrees, float32 as the templates hold it)."""
    k = int(bearing * np.float32(n_rad / 360.0) + np.float32(0.5))
    return k - n_rad if k >= n_rad else k


@numba.njit(cache=True, nogil=True)
def radials_of(bearing: F32, n_rad: int) -> npt.NDArray[np.int64]:  # pragma: no cover - compiled
    out = np.empty(bearing.size, np.int64)
    for i in range(bearing.size):
        out[i] = radial_of(bearing[i], n_rad)
    return out


def sweep(
    dem: F32,
    row: int,
    col: int,
    radius: int,
    res_m: float,
    tx_agl_m: float,
    rx_agl_m: float,
    which: npt.NDArray[np.int64] | None = None,
    reach: int | npt.NDArray[np.int64] | None = None,
    out: F32 | None = None,
) -> F32:
    """ν·√λ along the ``radials(radius)`` radials of ``radius`` + 1 samples (one a cell) from
    a site at cell (row, col) of ``dem`` (ground heights above sea level on the coverage grid),
    shape (radials, radius + 1). ``which``: only these radials, ``reach``: only this many
    samples out, or so many along each of ``which`` (a part of the window; a radial's samples
    do not depend on what lies beyond them, so a part reads the same as the whole). What is
    not swept, or lies beyond the grid, is NO_EDGE. ``out``: an earlier sweep of the same site
    to add these radials to."""
    n_rad = radials(radius)
    if out is None:
        out = np.full((n_rad, radius + 1), NO_EDGE, np.float32)
    ks = np.arange(n_rad) if which is None else np.asarray(which, np.int64)
    lasts = np.minimum(np.broadcast_to(radius if reach is None else reach, ks.shape), radius)
    _sweep(dem, row, col, n_rad, ks, np.ascontiguousarray(lasts, np.int64), res_m / 1000.0,
           tx_agl_m, rx_agl_m, 500.0 / EFFECTIVE_EARTH_RADIUS_KM, out)  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def _sweep(  # pragma: no cover - compiled
    dem: F32,
    row: int,
    col: int,
    n_rad: int,
    ks: npt.NDArray[np.int64],
    lasts: npt.NDArray[np.int64],
    step_km: float,
    tx_agl_m: float,
    rx_agl_m: float,
    ce500: float,
    out: F32,
) -> None:
    rows, cols = dem.shape
    most = lasts.max() if lasts.size else 0
    d = np.arange(most + 1) * step_km  # km
    g = np.empty(most + 1)
    hull = np.empty((2, most + 1))
    tx = dem[row, col] + tx_agl_m
    for idx in range(ks.size):
        k, last = ks[idx], lasts[idx]
        theta = 2.0 * np.pi * k / n_rad  # clockwise from north; the row index grows south
        dr, dc = -np.cos(theta), np.sin(theta)
        n = last + 1
        for j in range(last + 1):
            r = int(np.floor(row + j * dr + 0.5))
            c = int(np.floor(col + j * dc + 0.5))
            if r < 0 or r >= rows or c < 0 or c >= cols:
                n = j
                break
            g[j] = dem[r, c]
        _walk(d[:n], g[:n], tx, rx_agl_m, ce500, out[k, :n], hull)
        out[k, n : last + 1] = NO_EDGE  # off the grid: what an earlier sweep left is not kept


@numba.njit(cache=True, nogil=True)
def _walk(  # pragma: no cover - compiled
    d: F64, g: F64, tx: float, rx_agl_m: float, ce500: float, out: F32, hull: F64
) -> None:
    """One profile outwards from the transmitter (d[0] = 0, its antenna at ``tx`` above sea
    level): ν·√λ at each point for a receiver ``rx_agl_m`` above the ground there. Heights
    enter as u = g − 500·d²/ae ("the bulge taken out"): the transmitter's slope to point i is
    then (u_i − tx)/d_i + 500·D/ae for a receiver at D, and the receiver's (u_i − u_r)/(D − d_i)
    − 500·D/ae, a slope between straight lines, largest at the hull tangent."""
    n = d.size
    if n == 0:
        return
    out[0] = NO_EDGE
    best_a = -np.inf  # the transmitter's steepest (u_i − tx)/d_i so far...
    best_i = -1  # ...and where
    m = 0  # points on the upper hull of (d_i, u_i), i = 1..j−1
    peak = 0  # the last receiver's horizon on the hull
    for j in range(1, n):
        big_d = d[j]
        rx = g[j] + rx_agl_m
        if m == 0:
            out[j] = NO_EDGE
        else:
            ur = rx - ce500 * big_d * big_d
            # the receiver's horizon: the hull vertex of the steepest line to (D, u_r). The
            # slopes along the hull rise, then fall; the peak moves little from one receiver
            # to the next, so it is walked to from the last one (a binary search ran slower).
            lo = min(peak, m - 1)
            while lo + 1 < m and (hull[1, lo + 1] - ur) * (big_d - hull[0, lo]) >= (
                hull[1, lo] - ur
            ) * (big_d - hull[0, lo + 1]):
                lo += 1
            while lo > 0 and (hull[1, lo - 1] - ur) * (big_d - hull[0, lo]) > (hull[1, lo] - ur) * (
                big_d - hull[0, lo - 1]
            ):
                lo -= 1
            peak = lo
            s_rim = (hull[1, lo] - ur) / (big_d - hull[0, lo]) - ce500 * big_d
            s_tim = best_a + ce500 * big_d
            s_tr = (rx - tx) / big_d
            if s_tim < s_tr:  # line of sight: ν at the two horizon points
                h_d = hull[0, lo]
                nu = max(
                    _nu_at(d[best_i], g[best_i], big_d, tx, rx, ce500),
                    _nu_at(h_d, hull[1, lo] + ce500 * h_d * h_d, big_d, tx, rx, ce500),
                )
            else:
                d_bp = (rx - tx + s_rim * big_d) / (s_tim + s_rim)
                d_bp = min(max(d_bp, 1e-6 * big_d), big_d * (1.0 - 1e-6))
                edge = tx + s_tim * d_bp - (tx * (big_d - d_bp) + rx * d_bp) / big_d
                nu = edge * np.sqrt(0.002 * big_d / (d_bp * (big_d - d_bp)))
            out[j] = nu if nu > NO_EDGE else NO_EDGE
        # point j becomes an intermediate point for the receivers beyond it
        u = g[j] - ce500 * big_d * big_d
        a = (u - tx) / big_d
        if a > best_a:
            best_a, best_i = a, j
        while m >= 2:  # keep the hull upper and convex: drop what the new point overtops
            x1, y1 = hull[0, m - 2], hull[1, m - 2]
            x2, y2 = hull[0, m - 1], hull[1, m - 1]
            if (x2 - x1) * (u - y1) - (y2 - y1) * (big_d - x1) >= 0.0:
                m -= 1
            else:
                break
        hull[0, m], hull[1, m] = big_d, u
        m += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _nu_at(  # pragma: no cover - compiled
    di: float, gi: float, big_d: float, tx: float, rx: float, ce500: float
) -> float:
    """ν·√λ of the point at ``di`` with ground ``gi``, on a path of ``big_d`` km, eq. (16)."""
    clear = gi + ce500 * di * (big_d - di) - (tx * (big_d - di) + rx * di) / big_d
    return float(clear * np.sqrt(0.002 * big_d / (di * (big_d - di))))
