"""The radio model against values worked out by hand from the published formulas.

Each reference value was computed term by term with a pocket calculator (Python's ``math``,
not the code under test) from the formula written beside it; logs are base 10.
a(hm) = (1.1·log f − 0.7)·hm − (1.56·log f − 0.8)  (Hata 1980, small/medium city).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from devices.kinds import Technology
from devices.radio import (
    LandUse,
    antenna_gain_db,
    bearing_deg,
    elevation_deg,
    path_loss_db,
    rsrp_dbm,
)

U, S, OPEN = LandUse.URBAN, LandUse.SUBURBAN, LandUse.RURAL_OPEN

# (f MHz, d km, hb m, hm m, land use, expected dB, the terms that sum to it)
CASES = [
    # Okumura-Hata urban: 69.55 + 26.16·log 900 − 13.82·log 30 − a(1.5) + (44.9 − 6.55·log 30)·log 5
    # = 69.55 + 77.2830 − 20.4138 − 0.0159 + 24.6211
    (900, 5.0, 30, 1.5, U, 151.0244),
    # Okumura-Hata suburban, f 450, hb 50, hm 2, d 10:
    # 69.55 + 69.4080 − 23.4798 − 1.0981 + 33.7717 − [2·(log(450/28))² + 5.4 = 8.3091]
    (450, 10.0, 50, 2.0, S, 139.8428),
    # Okumura-Hata open area, f 900, hb 40, hm 1.5, d 15:
    # 69.55 + 77.2830 − 22.1405 − 0.0159 + 40.4652 − [4.78·(log f)² − 18.33·log f + 40.94 = 28.5064]
    (900, 15.0, 40, 1.5, OPEN, 136.6354),
    # COST-231 Hata urban (Cm 0):
    # 46.3 + 33.9·log 1800 − 13.82·log 30 − a(1.5) + (44.9 − 6.55·log 30)·log 2
    # = 46.3 + 110.3537 − 20.4138 − 0.0430 + 10.6037
    (1800, 2.0, 30, 1.5, U, 146.8007),
    # COST-231 Hata, suburban correction, f 1900, hb 45, d 8:
    # 46.3 + 111.1497 − 22.8474 − 0.0451 + 30.7696 − [2·(log(1900/28))² + 5.4 = 12.1095]
    (1900, 8.0, 45, 1.5, S, 153.2174),
    # COST-231 Hata, open-area correction, f 1800, hb 35, d 10:
    # 46.3 + 110.3537 − 21.3390 − 0.0430 + 34.7864 − 31.9236
    (1800, 10.0, 35, 1.5, OPEN, 138.1345),
    # Above 2 GHz, our documented choice (COST-231 extrapolated), f 2600, hb 30, d 1:
    # 46.3 + 115.7676 − 20.4138 − 0.0573 + 0 (log 1 = 0)
    (2600, 1.0, 30, 1.5, U, 141.5964),
    # f 2100 (3G), hb 40, d 3: 46.3 + 112.6232 − 22.1405 − 0.0490 + 16.4161
    (2100, 3.0, 40, 1.5, U, 153.1498),
    # Near the mast the Hata line (open, 900, hb 30, d 0.05: 52.0683) drops under free space:
    # FSPL = 32.45 + 20·log 900 + 20·log 0.05 = 32.45 + 59.0849 − 26.0206
    (900, 0.05, 30, 1.5, OPEN, 65.5143),
]


@pytest.mark.parametrize(("f", "d", "hb", "hm", "land", "expected"), CASES)
def test_path_loss_matches_hand_computed_values(
    f: float, d: float, hb: float, hm: float, land: LandUse, expected: float
) -> None:
    assert float(path_loss_db(f, d, hb, hm, land)) == pytest.approx(expected, abs=0.1)


def test_path_loss_vectorises_over_distance_and_land_use() -> None:
    d = np.array([2.0, 10.0, 5.0])
    land = np.array([U, OPEN, U])
    got = path_loss_db(1800, d, 30, 1.5, land)
    one_by_one = [
        float(path_loss_db(1800, di, 30, 1.5, li)) for di, li in zip(d, land, strict=True)
    ]
    assert got.shape == (3,)
    np.testing.assert_allclose(got, one_by_one)
    assert float(got[0]) == pytest.approx(146.8007, abs=0.1)


def test_loss_grows_with_distance_and_shrinks_with_mast_height() -> None:
    d = np.linspace(0.5, 20, 50)
    loss = path_loss_db(900, d, 35)
    assert np.all(np.diff(loss) > 0)
    assert float(path_loss_db(900, 5, 45)) < float(path_loss_db(900, 5, 25))
    assert float(path_loss_db(900, 5, 30, land_use=OPEN)) < float(
        path_loss_db(900, 5, 30, land_use=S)
    )
    assert float(path_loss_db(900, 5, 30, land_use=S)) < float(path_loss_db(900, 5, 30, land_use=U))


@pytest.mark.parametrize("f", [100.0, 5000.0])
def test_frequencies_outside_the_models_are_refused(f: float) -> None:
    with pytest.raises(ValueError, match="outside the radio model"):
        path_loss_db(f, 1.0, 30)


@pytest.mark.parametrize(
    ("az", "el", "expected"),
    [
        (0.0, 0.0, 0.0),  # boresight
        (32.5, 0.0, -3.0),  # half the 65° beamwidth: −12·(32.5/65)² = −3
        (-32.5, 0.0, -3.0),
        (60.0, 0.0, -10.2249),  # −12·(60/65)²
        (420.0, 0.0, -10.2249),  # bearings wrap
        (0.0, 5.0, -3.0),  # half the 10° vertical beamwidth: −12·(5/10)²
        (65.0, 10.0, -24.0),  # −min(12 + 12, Am 25)
        (90.0, 10.0, -25.0),  # −min(23.0059 + 12, 25): capped at the front-to-back ratio
        (180.0, 0.0, -25.0),  # −min(12·(180/65)² = 92.0, Am 25)
        (0.0, 40.0, -20.0),  # vertical side lobes: −min(12·4², SLAv 20)
    ],
)
def test_3gpp_sector_pattern(az: float, el: float, expected: float) -> None:
    assert float(antenna_gain_db(az, el, beamwidth_deg=65.0)) == pytest.approx(expected, abs=0.01)


def test_rsrp_link_budget_by_hand() -> None:
    # 4G 1800 MHz, 44.5 dBm, hb 30 m, d 3 km, 20° off azimuth, tilt 3°, urban.
    # L = 46.3 + 110.3537 − 20.4138 − 0.0430 + (44.9 − 6.55·log 30)·log 3 [16.8065] = 153.0035
    # θ = atan(28.5 / 3000) = 0.5443°; A_H = 12·(20/65)² = 1.1361;
    # A_V = 12·((0.5443 − 3)/10)² = 0.7237; A = −min(1.1361 + 0.7237, 25) = −1.8598
    # RSRP = 44.5 + 15 (antenna) − 30.8 (one RE of 1200) − 1.8598 − 153.0035 = −126.1632
    cell = functools.partial(rsrp_dbm, tx_power_dbm=44.5, freq_mhz=1800, dist_km=3.0, h_bs_m=30,
                             az_offset_deg=20.0, tilt_deg=3.0)  # fmt: skip
    got = cell(technology=Technology.G4)
    assert float(got) == pytest.approx(-126.1632, abs=0.1)
    # The same cell on 3G (CPICH, −10 dB instead of −30.8) is 20.8 dB stronger at equal loss.
    g3 = cell(technology=Technology.G3)
    assert float(g3 - got) == pytest.approx(20.8, abs=1e-9)


def test_geometry_helpers() -> None:
    assert float(elevation_deg(3.0, 30.0)) == pytest.approx(0.5443, abs=1e-3)
    assert float(bearing_deg(0.0, 1.0)) == 0.0
    assert float(bearing_deg(1.0, 0.0)) == pytest.approx(90.0)
    assert float(bearing_deg(-1.0, 0.0)) == pytest.approx(270.0)
