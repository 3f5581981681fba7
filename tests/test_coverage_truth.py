"""Coverage truth on small scenes: what "serving" means, measurements that cannot mask an
outage, and towers never heard from reported as such rather than as coverage."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from devices.kinds import Operator, Technology
from devices.metrics import SECTOR
from devices.radio import ANTENNA_GAIN_DBI, LandUse
from processing.coverage import Coverage
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.places import Place
from processing.coverage.serving import (
    NodeReport,
    SiteReport,
    SiteState,
    Why,
    judge,
    judge_all,
)
from processing.coverage.sites import site_from_meta
from tests.support.coverage_scene import LAT0, LON0
from tests.support.radio_scene import (
    T0,
    engine,
    sector,
    site,
    two_operator_scene,
)

HOUR = 3600.0


def _samples(place: Place, operator: str, *, rsrp: float | None, hours_ago: float,
             probes: tuple[str, ...] = ("P1", "P2"), n: int = 6) -> list[ProbeSample]:  # fmt: skip
    ts = T0 - timedelta(hours=hours_ago)
    return [
        ProbeSample(ts, place.lat, place.lon, operator, tech, rsrp, rsrp is None, probe)
        for tech in ("4G", "3G")
        for probe in (probes * n)[:n]
    ]


def _scene() -> tuple[Coverage, list[Place]]:
    eng, places = two_operator_scene()
    cov = Coverage(eng, places)
    cov.refresh_covering()
    cov.plan()
    cov.current = cov.evaluate()
    return cov, places


def test_a_drive_test_before_the_outage_does_not_mask_it() -> None:
    cov, places = _scene()
    eng = cov.engine
    mbf = places[1]
    # Good signal measured there an hour ago, by two probes: the measurement stands.
    cov.measured = bin_samples(
        _samples(mbf, "mobifone", rsrp=-85.0, hours_ago=1), eng.grid, eng.layers, eng.config, T0
    )
    assert cov.update(T0) == []
    assert cov.current[("village", "mbf")].measured == (Operator.MOBIFONE,)
    # Its only tower goes down now: the older samples no longer count, the village is lost.
    changed = eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp())
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert (events["mbf"].kind, events["mbf"].towers) == ("lost", ("M",))
    after = cov.current[("village", "mbf")]
    assert after.dead_spot and after.measured == ()


def test_a_new_tower_on_air_clears_a_measured_dead_spot_at_once() -> None:
    cov, places = _scene()
    eng = cov.engine
    eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp() - 2 * HOUR)
    cov.refresh_covering()
    mbf = places[1]
    cov.measured = bin_samples(
        _samples(mbf, "mobifone", rsrp=None, hours_ago=1), eng.grid, eng.layers, eng.config, T0
    )
    cov.update(T0)
    assert cov.current[("village", "mbf")].dead_spot  # measured: no service
    changed = eng.apply({"M": SiteState(serving=True)}, at=T0.timestamp())
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert (events["mbf"].kind, events["mbf"].towers) == ("restored", ("M",))
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)


def test_one_probe_alone_does_not_make_a_measurement() -> None:
    cov, places = _scene()
    eng = cov.engine
    one = _samples(places[1], "mobifone", rsrp=None, hours_ago=1, probes=("P1",), n=20)
    cov.measured = bin_samples(one, eng.grid, eng.layers, eng.config, T0)
    assert cov.update(T0) == []
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)
    assert cov.current[("village", "mbf")].measured == ()


def test_serving_needs_life_backhaul_and_the_feeding_uplink() -> None:
    up = NodeReport(uplink_up=True)
    down = NodeReport(uplink_up=False)
    online = SiteReport("online", commune_code=1)
    assert judge(online, [up], in_grace=False).why is Why.SERVING
    assert judge(SiteReport("offline"), [], in_grace=True).why is Why.OFFLINE
    no_backhaul = SiteReport("online", backhaul_up=False)
    assert judge(no_backhaul, [up], in_grace=False).state == SiteState(serving=False)
    cut = judge(online, [down], in_grace=False)
    assert (cut.why, cut.state.serving) == (Why.UPLINK_DOWN, False)
    # Two nodes listed for one commune: one uplink left still carries the site.
    assert judge(online, [down, up], in_grace=False).why is Why.SERVING
    never = SiteReport("unknown")
    assert judge(never, [], in_grace=True).state.serving
    assert not judge(never, [], in_grace=False).state.serving
    assert judge(never, [], in_grace=False).why is Why.UNKNOWN
    # The feed is found through the registry's communes_served.
    verdicts = judge_all(
        {"A": SiteReport("online", commune_code=7), "B": SiteReport("online", commune_code=8)},
        {"OLT-7": down},
        {7: ["OLT-7"]},
        in_grace=False,
    )
    assert (verdicts["A"].why, verdicts["B"].why) == (Why.UPLINK_DOWN, Why.SERVING)


def test_a_village_resting_on_a_tower_never_heard_from_is_unknown_not_covered() -> None:
    cov, _ = _scene()
    eng = cov.engine
    # M never reported; the grace is over, so it does not serve.
    cov.unknown_sites = frozenset({"M"})
    changed = eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp())
    events = cov.update(T0, changed=changed)
    mbf = cov.current[("village", "mbf")]
    assert (mbf.operators, mbf.unknown, mbf.dead_spot) == ((), (Operator.MOBIFONE,), False)
    both = cov.current[("village", "both")]
    assert (both.operators, both.unknown) == ((Operator.VIETTEL,), (Operator.MOBIFONE,))
    # Moving between covered and "unknown" is no event either way: the grace running out
    # raises no "lost" storm, and a fleet coming up no "restored" one.
    assert events == []
    cov.unknown_sites = frozenset()
    changed = eng.apply({"M": SiteState(serving=True)}, at=T0.timestamp())
    assert cov.update(T0, changed=changed) == []
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)


def test_the_antenna_gain_is_the_birth_records_and_power_is_into_the_antenna() -> None:
    meta = {"device_id": "G", "operator": "viettel", "lat": LAT0, "lon": LON0,
            "antenna_height_m": 35.0,
            "sectors": [{"sector": 1, "azimuth_deg": 0.0, "tilt_deg": 4.0,
                         "band_mhz": 1800.0, "technology": "4G", "tx_power_dbm": 43.0,
                         "beamwidth_deg": 65.0}]}  # fmt: skip
    plain = site_from_meta(meta)
    assert plain.sectors[0].antenna_gain_dbi == ANTENNA_GAIN_DBI  # not stated: the model's
    meta["sectors"][0]["antenna_gain_dbi"] = 18.0  # type: ignore[index]
    stated = site_from_meta(meta)
    a, b = engine([plain]), engine([stated])
    on = a.best >= 0
    assert on.any() and (b.best >= 0).sum() >= on.sum()
    assert np.allclose(b.value[on] - a.value[on], 3.0, atol=1e-4)
    assert "tx_power_dbm" in {s.name for s in SECTOR}
    (power,) = (s for s in SECTOR if s.name == "tx_power_dbm")
    assert "into the antenna" in power.en and "EIRP" not in power.en.split("(")[0]


def test_the_metropolitan_option_adds_cost231_cm_to_urban_cells_only() -> None:
    edge = 14.05  # where engine()'s suburban top third meets the urban rest
    sites = [site("V", Operator.VIETTEL, edge, LON0),
             site("L", Operator.VIETTEL, edge, LON0, sector(1, 90.0, band=900.0))]  # fmt: skip
    small, metro = engine(sites, land=LandUse.URBAN), engine(sites, land=LandUse.URBAN,
                                                             metropolitan=True)  # fmt: skip
    urban = np.zeros(small.grid.shape, bool)
    urban[small.grid.rows // 3 :] = True  # engine() makes the top third suburban
    g4_1800 = small.layers.index((Operator.VIETTEL, Technology.G4))
    both = (small.best[g4_1800] >= 0) & (metro.best[g4_1800] >= 0)
    diff = small.value[g4_1800] - metro.value[g4_1800]
    # 1800 MHz (COST-231): 3 dB more loss in urban cells where the 1800 sector wins in both
    won = both & (small.best[g4_1800] == metro.best[g4_1800])
    e1800 = {e.eid for e in small.emitters if e.band_mhz == 1800.0}
    from_1800 = won & np.isin(small.best[g4_1800], list(e1800))
    assert from_1800[urban].any() and from_1800[~urban].any()
    assert np.allclose(diff[from_1800 & urban], 3.0, atol=1e-4)
    assert np.allclose(diff[from_1800 & ~urban], 0.0, atol=1e-6)
    # 900 MHz (Okumura-Hata): no Cm
    from_900 = won & np.isin(small.best[g4_1800], [e.eid for e in small.emitters
                                                   if e.band_mhz == 900.0])  # fmt: skip
    assert np.allclose(diff[from_900], 0.0, atol=1e-6)
