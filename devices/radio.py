"""The radio model: path loss by band, the 3GPP sector antenna pattern, and the link budget.

One copy of the formulas, shared by the coverage engine (processing/) and the probe simulators.
Every function is vectorised numpy: scalars in, 0-d arrays out; arrays broadcast.

Path loss (dB, distance in km, heights in m, frequency in MHz), source: Hata, "Empirical
formula for propagation loss in land mobile radio services", IEEE Trans. Veh. Tech. 29(3),
1980, and COST Action 231 final report (1999), ch. 4.4 ("COST-231 Hata"):

- 150 ≤ f < 1500 MHz, Okumura-Hata (urban, small/medium city):
  L = 69.55 + 26.16·log f − 13.82·log hb − a(hm) + (44.9 − 6.55·log hb)·log d
- 1500 ≤ f ≤ 2000 MHz, COST-231 Hata (Cm = 0 dB: medium city and suburban centres):
  L = 46.3 + 33.9·log f − 13.82·log hb − a(hm) + (44.9 − 6.55·log hb)·log d + Cm
- f > 2000 MHz (3G 2100, 4G 2300/2600, 3500): **our choice**, COST-231 Hata extrapolated with
  its own 33.9·log f frequency term, up to 3800 MHz. The model is validated only to 2 GHz; we
  take the common planning practice over a second model with a jump at 2 GHz. Above 3800 MHz
  and below 150 MHz nothing is predicted (ValueError).
- mobile antenna correction (small/medium city): a(hm) = (1.1·log f − 0.7)·hm − (1.56·log f − 0.8)
- land use: urban as above; suburban L − 2·(log(f/28))² − 5.4; rural-open
  L − 4.78·(log f)² + 18.33·log f − 40.94 (Hata's corrections, applied to both models).
- outside the models' 1–20 km: distances below MIN_DISTANCE_KM are clamped to it, and the
  loss is never less than free space (32.45 + 20·log f + 20·log d), which the Hata line drops
  under near the mast. Beyond 20 km callers decide (the engine stops at MAX_RANGE_KM).

Antenna (3GPP TR 36.814 table A.2.1.1-2; TR 36.942 §4.2.1 uses the same form):
A_H(φ) = −min(12·(φ/φ3dB)², Am), A_V(θ) = −min(12·((θ − θtilt)/θ3dB)², SLAv),
A(φ, θ) = −min(−(A_H + A_V), Am); with Am = 25 dB, SLAv = 20 dB, θ3dB = 10°, φ3dB from the
sector (65° panels in the scenario). Why TR 36.814's pattern and not TR 36.942's (horizontal
only, Am = 20 dB): the downtilt decides how far a sector reaches and how much of the valley
below the mast it lights, so the vertical pattern matters; TR 36.814's 25 dB front-to-back is
the value the 3GPP LTE evaluations use for 3-sector macro panels.

Land use METROPOLITAN is COST-231's metropolitan centre: Cm = 3 dB more loss from 1,500 MHz
up; below, Okumura-Hata's large-city a(hm) differs from the small-city one by under 0.1 dB for
a 1.5 m handset, so it is urban there.

Link budget: received level = tx_power_dbm + antenna_gain_dbi + REFERENCE_SHARE_DB[tech] + A − L.
``tx_power_dbm`` is the sector's transmit power into the antenna port, not its EIRP (the
scenario's 40–46 dBm are macro powers of 10–40 W); ``antenna_gain_dbi`` is stated per sector in
the birth record, ANTENNA_GAIN_DBI (15 dBi) where it is not. The reference share turns carrier
power into what a phone reports: LTE RSRP is one resource element of a 20 MHz carrier (1200
subcarriers, −30.8 dB), UMTS RSCP the CPICH at 10 % of the power (−10 dB), GSM RxLev the BCCH
carrier at full power (0 dB).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

from devices.kinds import Technology

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

MIN_MODEL_MHZ = 150.0
MAX_MODEL_MHZ = 3800.0
HATA_MAX_MHZ = 1500.0  # Okumura-Hata below, COST-231 Hata from here
# Mobile bands in use in Vietnam (3GPP bands 28, 5, 8, 3, 1, 40, 7, 78): anything else on a
# sector is a typo or a unit mistake and is refused at registration.
KNOWN_BANDS_MHZ = frozenset({700.0, 850.0, 900.0, 1800.0, 2100.0, 2300.0, 2600.0, 3500.0})
COST231_CM_METROPOLITAN_DB = 3.0  # COST-231 Hata's Cm for metropolitan centres
MIN_DISTANCE_KM = 0.02  # closer than the antenna is high, the far-field formulas mean nothing
MAX_RANGE_KM = 20.0  # the end of the Hata models' distance range: nothing is predicted beyond
MOBILE_HEIGHT_M = 1.5  # a handset at street level

ANTENNA_GAIN_DBI = 15.0  # TR 36.942: 65° three-sector macro panel, feeder loss included
FRONT_TO_BACK_DB = 25.0  # Am, TR 36.814
SIDE_LOBE_V_DB = 20.0  # SLAv, TR 36.814
VERTICAL_BEAMWIDTH_DEG = 10.0  # θ3dB, TR 36.814
REFERENCE_SHARE_DB: dict[Technology, float] = {
    Technology.G4: -30.8,  # 10·log10(1200): RSRP is one of 1200 subcarriers of 20 MHz
    Technology.G3: -10.0,  # CPICH at 10 % of the carrier power
    Technology.G2: 0.0,  # BCCH carrier at full power
}


class LandUse(IntEnum):
    """Clutter class of a place, for Hata's area corrections."""

    URBAN = 0
    SUBURBAN = 1
    RURAL_OPEN = 2
    # An option for urban cells (CoverageConfig.metropolitan), never in a land-use raster:
    # the raster's classes are ordered from closed to open.
    METROPOLITAN = 3


def check_frequency(freq_mhz: float) -> None:
    if not MIN_MODEL_MHZ <= freq_mhz <= MAX_MODEL_MHZ:
        raise ValueError(
            f"frequency {freq_mhz} MHz is outside the radio model's {MIN_MODEL_MHZ:.0f}–"
            f"{MAX_MODEL_MHZ:.0f} MHz"
        )


def mobile_correction_db(freq_mhz: float, h_ms_m: ArrayLike = MOBILE_HEIGHT_M) -> FloatArray:
    """a(hm) for small and medium cities (Hata 1980; COST-231 uses the same)."""
    lf = np.log10(freq_mhz)
    return np.asarray((1.1 * lf - 0.7) * np.asarray(h_ms_m, np.float64) - (1.56 * lf - 0.8))


def hata_terms(
    freq_mhz: float, h_bs_m: ArrayLike, h_ms_m: ArrayLike = MOBILE_HEIGHT_M
) -> tuple[FloatArray, FloatArray]:
    """(intercept, slope): the urban loss is ``intercept + slope·log10(d_km)``."""
    check_frequency(freq_mhz)
    lf = np.log10(freq_mhz)
    lh = np.log10(np.asarray(h_bs_m, np.float64))
    # Okumura-Hata, else COST-231 Hata (extrapolated above 2000 MHz: module docstring)
    base = 69.55 + 26.16 * lf if freq_mhz < HATA_MAX_MHZ else 46.3 + 33.9 * lf
    intercept = base - 13.82 * lh - mobile_correction_db(freq_mhz, h_ms_m)
    return np.asarray(intercept), np.asarray(44.9 - 6.55 * lh)


def land_use_correction_db(freq_mhz: float, land_use: ArrayLike) -> FloatArray:
    """What to subtract from the urban loss for each land-use class (0 for urban)."""
    check_frequency(freq_mhz)
    lf = np.log10(freq_mhz)
    table = np.array(
        [
            0.0,
            2.0 * np.log10(freq_mhz / 28.0) ** 2 + 5.4,
            4.78 * lf**2 - 18.33 * lf + 40.94,
            -COST231_CM_METROPOLITAN_DB if freq_mhz >= HATA_MAX_MHZ else 0.0,
        ]
    )
    return np.asarray(table[np.asarray(land_use, dtype=np.intp)])


def free_space_loss_db(freq_mhz: float, dist_km: ArrayLike) -> FloatArray:
    d = np.maximum(np.asarray(dist_km, np.float64), MIN_DISTANCE_KM)
    return np.asarray(32.45 + 20.0 * np.log10(freq_mhz) + 20.0 * np.log10(d))


def path_loss_db(
    freq_mhz: float,
    dist_km: ArrayLike,
    h_bs_m: ArrayLike,
    h_ms_m: ArrayLike = MOBILE_HEIGHT_M,
    land_use: ArrayLike = LandUse.URBAN,
) -> FloatArray:
    """Median path loss by band (module docstring), never below free space."""
    intercept, slope = hata_terms(freq_mhz, h_bs_m, h_ms_m)
    d = np.maximum(np.asarray(dist_km, np.float64), MIN_DISTANCE_KM)
    hata = intercept + slope * np.log10(d) - land_use_correction_db(freq_mhz, land_use)
    return np.asarray(np.maximum(hata, free_space_loss_db(freq_mhz, d)))


def antenna_gain_db(
    az_offset_deg: ArrayLike,
    elev_offset_deg: ArrayLike,
    *,
    beamwidth_deg: ArrayLike = 65.0,
    vertical_beamwidth_deg: float = VERTICAL_BEAMWIDTH_DEG,
    front_to_back_db: float = FRONT_TO_BACK_DB,
    side_lobe_v_db: float = SIDE_LOBE_V_DB,
) -> FloatArray:
    """Relative gain (≤ 0 dB) of the 3GPP sector pattern.

    ``az_offset_deg``: bearing to the point minus the sector's azimuth (any range; wrapped).
    ``elev_offset_deg``: angle below the horizon to the point minus the downtilt.
    """
    az = np.abs((np.asarray(az_offset_deg, np.float64) + 180.0) % 360.0 - 180.0)
    a_h = np.minimum(12.0 * (az / np.asarray(beamwidth_deg, np.float64)) ** 2, front_to_back_db)
    el = np.asarray(elev_offset_deg, np.float64)
    a_v = np.minimum(12.0 * (el / vertical_beamwidth_deg) ** 2, side_lobe_v_db)
    return np.asarray(-np.minimum(a_h + a_v, front_to_back_db))


def elevation_deg(
    dist_km: ArrayLike, h_bs_m: ArrayLike, h_ms_m: ArrayLike = MOBILE_HEIGHT_M
) -> FloatArray:
    """Angle below the antenna's horizon at which it sees the mobile."""
    d_m = 1000.0 * np.maximum(np.asarray(dist_km, np.float64), MIN_DISTANCE_KM)
    dh = np.asarray(h_bs_m, np.float64) - np.asarray(h_ms_m, np.float64)
    return np.asarray(np.degrees(np.arctan2(dh, d_m)))


def rsrp_dbm(
    *,
    tx_power_dbm: ArrayLike,
    technology: Technology,
    freq_mhz: float,
    dist_km: ArrayLike,
    h_bs_m: ArrayLike,
    az_offset_deg: ArrayLike,
    tilt_deg: ArrayLike,
    beamwidth_deg: ArrayLike = 65.0,
    h_ms_m: ArrayLike = MOBILE_HEIGHT_M,
    land_use: ArrayLike = LandUse.URBAN,
    antenna_gain_dbi: ArrayLike = ANTENNA_GAIN_DBI,
) -> FloatArray:
    """What a phone would report from one sector: RSRP (4G), RSCP (3G) or RxLev (2G), dBm."""
    gain = antenna_gain_db(
        az_offset_deg,
        elevation_deg(dist_km, h_bs_m, h_ms_m) - np.asarray(tilt_deg, np.float64),
        beamwidth_deg=beamwidth_deg,
    )
    loss = path_loss_db(freq_mhz, dist_km, h_bs_m, h_ms_m, land_use)
    gain_dbi = np.asarray(antenna_gain_dbi, np.float64)
    eirp = np.asarray(tx_power_dbm, np.float64) + gain_dbi + REFERENCE_SHARE_DB[technology]
    return np.asarray(eirp + gain - loss)


def bearing_deg(dx_m: ArrayLike, dy_m: ArrayLike) -> FloatArray:
    """Compass bearing (0 = north, clockwise) of an (east, north) offset."""
    return np.asarray(np.degrees(np.arctan2(dx_m, dy_m)) % 360.0)
