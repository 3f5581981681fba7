"""Diffraction over the ground between two antennas: Bullington's method, as ITU-R P.1812-6
§4.3.1 states it (eqs. 13-21; the construction of ITU-R P.526 §4.5 for a general path).

The steepest ray from the transmitter over the profile and the steepest from the receiver meet
at one equivalent knife edge, whose loss is J(ν) (P.526 eq. 31), plus the correction
[1 − exp(−J/6)](10 + 0.02 d) for real obstacles; on a line-of-sight path the edge is the
profile point of the highest ν, so sub-path obstruction still costs up to 6 dB. Heights are
above sea level; the earth curves with the effective radius of k = 4/3.

The one copy of the method: the coverage engine's radial sweep (processing/coverage/terrain.py)
is held to it in the tests, and the probe simulators compute it along each path they measure.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

EFFECTIVE_EARTH_RADIUS_KM = 6371.0 * 4.0 / 3.0  # k = 4/3, the median refractive atmosphere
LIGHT_M_MHZ = 299.792458  # wavelength, m = this / frequency, MHz


def knife_edge_db(nu: npt.ArrayLike) -> F64:
    """J(ν): ITU-R P.526-15 eq. (31), 0 for ν ≤ −0.78."""
    v = np.asarray(nu, np.float64)
    with np.errstate(invalid="ignore"):
        j = 6.9 + 20.0 * np.log10(np.sqrt((v - 0.1) ** 2 + 1.0) + v - 0.1)
    return np.asarray(np.where(v > -0.78, j, 0.0), np.float64)


def bullington_paths_db(
    d_km: npt.ArrayLike,
    ground_m: npt.ArrayLike,
    tx_m: npt.ArrayLike,
    rx_m: npt.ArrayLike,
    f_mhz: float,
    ae_km: float = EFFECTIVE_EARTH_RADIUS_KM,
) -> F64:
    """Bullington loss of many profiles at once, dB: ``d_km`` (points,) or (paths, points)
    from the transmitter (first point) to the receiver (last), ``ground_m`` (paths, points);
    ``tx_m`` and ``rx_m`` the antennas' heights above sea level, one per path."""
    g = np.atleast_2d(np.asarray(ground_m, np.float64))
    d = np.broadcast_to(np.asarray(d_km, np.float64), g.shape)
    tx = np.broadcast_to(np.asarray(tx_m, np.float64), g.shape[:1])[:, None]
    rx = np.broadcast_to(np.asarray(rx_m, np.float64), g.shape[:1])[:, None]
    if g.shape[1] < 3:
        return np.zeros(g.shape[0])  # no point between the antennas
    lam = LIGHT_M_MHZ / f_mhz
    total = (d[:, -1] - d[:, 0])[:, None]
    di, gi = d[:, 1:-1] - d[:, :1], g[:, 1:-1]
    bulge = 500.0 / ae_km * di * (total - di)
    # a path of no length (the phone at the mast) has no ground between: its ν is NaN, J 0
    with np.errstate(invalid="ignore", divide="ignore"):
        s_tim = np.max((gi + bulge - tx) / di, axis=1, keepdims=True)  # eq. (14)
        s_tr = (rx - tx) / total  # eq. (15)
        in_sight = s_tim < s_tr
        # in sight: the highest ν of any point, eq. (16)
        clearance = gi + bulge - (tx * (total - di) + rx * di) / total
        nu_los = np.max(clearance * np.sqrt(0.002 * total / (lam * di * (total - di))), axis=1)
        # beyond the horizon: the Bullington point, eqs. (18)-(20)
        s_rim = np.max((gi + bulge - rx) / (total - di), axis=1, keepdims=True)
        d_bp = (rx - tx + s_rim * total) / (s_tim + s_rim)
        edge = tx + s_tim * d_bp - (tx * (total - d_bp) + rx * d_bp) / total
        nu_beyond = edge * np.sqrt(0.002 * total / (lam * d_bp * (total - d_bp)))
    nu = np.where(in_sight[:, 0], nu_los, nu_beyond[:, 0])
    j = knife_edge_db(nu)
    return np.asarray(j + (1.0 - np.exp(-j / 6.0)) * (10.0 + 0.02 * total[:, 0]))  # eq. (21)


def bullington_db(
    d_km: npt.ArrayLike,
    ground_m: npt.ArrayLike,
    tx_m: float,
    rx_m: float,
    f_mhz: float,
    ae_km: float = EFFECTIVE_EARTH_RADIUS_KM,
) -> float:
    """The Bullington loss of one profile, dB (``bullington_paths_db`` for a single path)."""
    ground = np.asarray(ground_m, np.float64)[None, :]
    return float(bullington_paths_db(d_km, ground, tx_m, rx_m, f_mhz, ae_km)[0])


def terrain_excess_db(
    d_km: npt.ArrayLike,
    ground_m: npt.ArrayLike,
    tx_agl_m: npt.ArrayLike,
    rx_agl_m: float,
    f_mhz: float,
) -> F64:
    """What the ground costs beyond smooth earth, dB, per path (``bullington_paths_db``'s
    shapes; antenna heights above their ground): the Bullington loss over the profile less
    the same path's over smooth earth, never below 0. Okumura-Hata's median is for smooth
    ground, so this is what a median path loss lacks (the delta of P.1812's delta-Bullington)."""
    g = np.atleast_2d(np.asarray(ground_m, np.float64))
    tx = np.broadcast_to(np.asarray(tx_agl_m, np.float64), g.shape[:1])
    real = bullington_paths_db(d_km, g, g[:, 0] + tx, g[:, -1] + rx_agl_m, f_mhz)
    smooth = bullington_paths_db(d_km, np.zeros_like(g), tx, rx_agl_m, f_mhz)
    return np.maximum(real - smooth, 0.0)
