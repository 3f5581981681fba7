"""The coverage engine on small synthetic scenes: the raster against the radio model, the
incremental recompute against the full one, refused input, measurements, events and N-1."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from devices.kinds import Operator, Technology
from devices.radio import bearing_deg, rsrp_dbm
from ioc.configs import coverage_config
from processing.coverage import Coverage, CoverageEngine, SiteState
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.sites import SiteInput
from tests.support.coverage_scene import LAT0, LON0
from tests.support.radio_scene import (
    T0,
    engine,
    random_sites,
    sector,
    site,
    two_operator_scene,
)


def layer(eng: CoverageEngine, op: Operator, tech: Technology) -> int:
    return eng.layers.index((op, tech))


def test_raster_matches_the_radio_model_cell_by_cell() -> None:
    s = site("A", Operator.VIETTEL, LAT0, LON0, sector(1, 30.0, tilt=3.0), sector(2, 200.0))
    eng = engine([s], res=100.0)
    g = eng.grid
    e = eng.emitters[0]
    sx, sy = g.centre_xy(e.row, e.col)  # the site stands at its cell's centre
    rng = np.random.default_rng(7)
    near = rng.normal(0, e.radius / 3, size=(2, 400)).round().astype(int)
    rows = np.clip(e.row + near[0], 0, g.rows - 1)
    cols = np.clip(e.col + near[1], 0, g.cols - 1)
    x, y = g.centre_xy(rows, cols)
    d_km = np.hypot(x - sx, y - sy) / 1000.0
    reach = (np.abs(rows - e.row) <= e.radius) & (np.abs(cols - e.col) <= e.radius)
    want = np.full(rows.shape, -np.inf)
    for sec in s.sectors:
        level = rsrp_dbm(
            tx_power_dbm=sec.tx_power_dbm,
            technology=sec.technology,
            freq_mhz=sec.band_mhz,
            dist_km=d_km,
            h_bs_m=s.antenna_height_m,
            az_offset_deg=bearing_deg(x - sx, y - sy) - sec.azimuth_deg,
            tilt_deg=sec.tilt_deg,
            land_use=eng.land_use[rows, cols],
        )
        want = np.maximum(want, level)
    floor = eng.floors[layer(eng, Operator.VIETTEL, Technology.G4)]
    want = np.where(reach & (want > floor), want, floor)
    got = eng.value[layer(eng, Operator.VIETTEL, Technology.G4), rows, cols]
    assert (want > floor).sum() > 200 and (want == floor).sum() > 20
    np.testing.assert_allclose(got, want, atol=0.01)


def test_incremental_recompute_equals_full_after_random_changes() -> None:
    sites = random_sites(40, seed=3)
    inc = engine(sites)
    full = engine(sites)
    rng = np.random.default_rng(11)
    states = {s.device_id: SiteState() for s in sites}
    for step in range(60):
        batch = {}
        for i in rng.choice(len(sites), size=int(rng.integers(1, 4)), replace=False):
            s = sites[int(i)]
            roll = rng.random()
            if roll < 0.4:
                state = SiteState(serving=not states[s.device_id].serving)
            elif roll < 0.8:
                flags = tuple(bool(f) for f in rng.random(len(s.sectors)) < 0.6)
                state = SiteState(serving=True, sectors_up=flags)
            else:
                state = SiteState()  # on battery or mains: still online, all sectors up
            batch[s.device_id] = states[s.device_id] = state
        inc.apply(batch)
        if step % 15 == 14:
            full.apply(states)
            full.recompute_full()
            assert np.array_equal(inc.value, full.value), f"levels differ after step {step}"
            assert np.array_equal(inc.best, full.best), f"best emitters differ after step {step}"
    assert any(not st.serving for st in states.values())
    assert (inc.best == -1).sum() > (engine(sites).best == -1).sum()  # something was lost


def test_a_tower_going_offline_leaves_no_trace_of_itself() -> None:
    sites = random_sites(12, seed=5)
    eng = engine(sites)
    gone = sites[0].device_id
    eids = {e.eid for e in eng.emitters if e.device_id == gone}
    assert np.isin(eng.best, list(eids)).any()
    assert eng.apply({gone: SiteState(serving=False)}) == {gone}
    assert not np.isin(eng.best, list(eids)).any()
    assert eng.apply({gone: SiteState(serving=False)}) == set()  # no change, no work


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            site("H0", Operator.VIETTEL, LAT0, LON0, height=0.0),
            "antenna_height_m 0 m is not within 1–300 m",
        ),
        (site("NAN", Operator.VIETTEL, float("nan"), LON0), "not a finite number"),
        (site("FAR", Operator.VIETTEL, 21.0, 105.8), "outside the province raster"),
        (site("BAND", Operator.VIETTEL, LAT0, LON0, sector(1, 0.0, band=1234.0)), "unknown band"),
        (
            site("PWR", Operator.VIETTEL, LAT0, LON0, sector(1, 0.0, power=float("inf"))),
            "not a finite number",
        ),
        (
            site(
                "GAIN", Operator.VIETTEL, LAT0, LON0, replace(sector(1, 0.0), antenna_gain_dbi=40.0)
            ),
            "antenna_gain_dbi 40 dBi is not within 0–25 dBi",
        ),
    ],
)
def test_impossible_sectors_are_refused_and_do_not_poison_the_raster(
    bad: SiteInput, reason: str
) -> None:
    good = random_sites(6, seed=9)
    clean = engine(good)
    mixed = engine([*good[:3], bad, *good[3:]])
    assert [r.device_id for r in mixed.rejections] == [bad.device_id]
    assert reason in mixed.rejections[0].reason
    assert np.array_equal(clean.value, mixed.value)


def test_one_bad_sector_leaves_the_rest_of_its_site() -> None:
    s = site("MIX", Operator.VIETTEL, LAT0, LON0, sector(1, 0.0), sector(2, 120.0, band=5.0))
    eng = engine([s])
    assert [(r.device_id, r.sector) for r in eng.rejections] == [("MIX", 2)]
    assert (eng.best[layer(eng, Operator.VIETTEL, Technology.G4)] >= 0).any()


def test_events_name_the_tower_the_operators_and_the_people() -> None:
    eng, places = two_operator_scene()
    cov = Coverage(eng, places)
    cov.refresh_covering()
    cov.current = cov.evaluate()
    verdict = {p.place_id: cov.current[("village", p.place_id)] for p in places}
    assert verdict["both"].operators == (Operator.VIETTEL, Operator.MOBIFONE)
    assert verdict["mbf"].operators == (Operator.MOBIFONE,)
    assert verdict["far"].dead_spot

    changed = eng.apply({"M": SiteState(serving=False)})
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert set(events) == {"both", "mbf"}
    assert (events["mbf"].kind, events["mbf"].operators_lost) == ("lost", ("mobifone",))
    assert (events["mbf"].towers, events["mbf"].population) == (("M",), 400)
    assert events["both"].kind == "degraded"
    assert events["both"].operators_now == ("viettel",)

    changed = eng.apply({"M": SiteState(serving=True)})
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert (events["mbf"].kind, events["mbf"].towers) == ("restored", ("M",))
    assert events["both"].kind == "improved"
    assert cov.update(T0) == []  # nothing moved, nothing to say


def test_n_minus_1_counts_who_depends_on_a_single_tower() -> None:
    eng, places = two_operator_scene()
    cov = Coverage(eng, places)
    cov.refresh_covering()
    crit = {c.device_id: c for c in cov.criticality()}
    # 'mbf' hangs on M alone; 'both' has two operators, so no single tower takes it down.
    assert (crit["M"].population_all, crit["M"].villages_all) == (400, 1)
    assert crit["M"].population_operator == 400 + 700
    assert (crit["V"].population_all, crit["V"].population_operator) == (0, 700)


def test_measured_no_service_turns_predicted_coverage_into_a_dead_spot() -> None:
    eng, places = two_operator_scene()
    cov = Coverage(eng, places)
    cov.current = cov.evaluate()
    assert not cov.current[("village", "mbf")].dead_spot
    mbf = places[1]
    bad = [
        ProbeSample(T0 - timedelta(hours=1), mbf.lat, mbf.lon, "mobifone", tech, None, True, probe)
        for tech in ("4G", "3G")
        for probe in ("P1", "P2") * 3
    ]
    rejected = [
        ProbeSample(T0, 10.0, 100.0, "mobifone", "4G", -90.0, False, "P1"),  # off the raster
        ProbeSample(T0, mbf.lat, mbf.lon, "mobifone", "4G", 12.0, False, "P1"),  # +12 dBm
        ProbeSample(T0 - timedelta(days=30), mbf.lat, mbf.lon, "mobifone", "4G", -80.0),  # old
    ]
    cov.measured = bin_samples(bad + rejected, eng.grid, eng.layers, eng.config, T0)
    assert cov.measured.rejected == {"outside_raster": 1, "non_physical_level": 1, "too_old": 1}
    events = cov.update(T0)
    after = cov.current[("village", "mbf")]
    assert after.dead_spot and after.measured == (Operator.MOBIFONE,)
    assert [(e.village_id, e.kind, e.towers) for e in events] == [("mbf", "lost", ())]
    # Too few samples in a cell: the prediction stands.
    few = bin_samples(bad[:3], eng.grid, eng.layers, coverage_config(measured_min_samples=5), T0)
    assert few.cells().cells.get(layer(eng, Operator.MOBIFONE, Technology.G4)) is None
