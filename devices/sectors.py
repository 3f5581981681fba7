"""A base station's sector as a value, and the ranges it must lie in — both from the declarations.

The fields are those of ``SECTOR`` and ``SECTOR_OPTIONAL`` (devices.metrics), in that order
(tests/test_contract.py holds them together); the scenario generator builds these, the coverage
engine computes with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devices.kinds import Technology
from devices.metrics import BTS_META, SECTOR, SECTOR_OPTIONAL
from devices.radio import ANTENNA_GAIN_DBI, ArrayLike, FloatArray, rsrp_dbm


@dataclass(frozen=True, slots=True)
class SectorRecord:
    sector: int  # 1-based, unique within the site; one entry per cell (sector × layer)
    azimuth_deg: float
    tilt_deg: float
    band_mhz: float
    technology: Technology
    tx_power_dbm: float  # into the antenna
    beamwidth_deg: float
    antenna_gain_dbi: float = ANTENNA_GAIN_DBI

    def level_dbm(
        self, *, dist_km: ArrayLike, bearing: ArrayLike, h_bs_m: float, land_use: ArrayLike
    ) -> FloatArray:
        """What a phone ``dist_km`` away at compass ``bearing`` (degrees) from the site, its
        antenna ``h_bs_m`` high, would report from this sector (``devices.radio.rsrp_dbm``)."""
        return rsrp_dbm(
            tx_power_dbm=self.tx_power_dbm,
            technology=self.technology,
            freq_mhz=self.band_mhz,
            dist_km=dist_km,
            h_bs_m=h_bs_m,
            az_offset_deg=np.asarray(bearing, np.float64) - self.azimuth_deg,
            tilt_deg=self.tilt_deg,
            beamwidth_deg=self.beamwidth_deg,
            land_use=land_use,
            antenna_gain_dbi=self.antenna_gain_dbi,
        )


_RANGED = {s.name: s for s in (*SECTOR, *SECTOR_OPTIONAL, *BTS_META) if s.min is not None}


def out_of_range(name: str, value: float) -> str | None:
    """Why a sector's (or a site's antenna height's) number is refused, None when it is within
    its declared range."""
    spec = _RANGED[name]
    assert spec.min is not None and spec.max is not None
    if spec.min <= value <= spec.max:
        return None
    return f"{name} {value:g} {spec.unit} is not within {spec.min:g}–{spec.max:g} {spec.unit}"
