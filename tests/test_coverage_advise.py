"""The siting advisor (issue 18, part 2): the FFT gain is the brute-force sum of the engine's own
levels, each pick brings online what it says (checked by adding it to the engine as a tower),
greedy never counts a village twice, it runs from the live database, and bad input is one
clear line."""

from __future__ import annotations

import asyncio
import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import psycopg
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from devices.kinds import Operator
from ioc.cli import app
from ioc.configs import advisor_setup, coverage_config
from ioc.settings import Settings
from processing.coverage import Coverage, CoverageEngine
from processing.coverage.advise import (
    Advice,
    Ground,
    StandardSite,
    advise,
    footprint_templates,
    gain_raster,
    ground_from_coverage,
    ground_from_db,
    site_emitter,
)
from processing.coverage.engine import class_corrections
from processing.coverage.grid import Grid
from processing.coverage.kernel import point_levels
from processing.coverage.scenario import scenario_coverage, scenario_inputs
from processing.coverage.sites import SiteInput
from seeds import load_scenario
from store import coverage as q
from store import users
from store.db import connect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.coverage_scene import built_once

ROOT = Path(__file__).parent.parent
RUN_LABEL = {"en": "Find positions", "vi": "Tìm vị trí"}
RES_M = 250.0  # coarse enough that the engine's full recompute in the checks takes a second
SITE = advisor_setup(Settings.defaults()).site


@cache
def scenario_ground() -> Ground:
    config = coverage_config(resolution_m=RES_M)
    return ground_from_coverage(scenario_coverage(load_scenario(), config), load_scenario())


def test_fft_gain_is_the_brute_force_sum_of_the_kernels_levels() -> None:
    config = coverage_config(resolution_m=200.0)
    grid = Grid(300_000.0, 1_600_000.0, 200.0, 48, 40)
    rng = np.random.default_rng(18)
    land_use = rng.integers(0, 3, grid.shape).astype(np.int8)
    population = np.zeros((3, *grid.shape))
    rows, cols = rng.integers(0, grid.rows, 60), rng.integers(0, grid.cols, 60)
    people = rng.integers(1, 2000, 60).astype(np.float64)
    np.add.at(population, (land_use[rows, cols], rows, cols), people)
    footprints, templates = footprint_templates(SITE, config, grid.res)
    gain = gain_raster(population, footprints)
    corr = class_corrections(SITE.band_mhz, config)[land_use]
    threshold = np.float32(config.thresholds_dbm[SITE.technology])
    where = np.argwhere(population.sum(axis=0) > 0)
    for r, c in [(0, 0), (47, 39), (24, 20), (5, 33), (40, 2)]:
        # brute force: the kernel's level from a site at (r, c) at every populated cell
        e = site_emitter(SITE, config, grid.res, r, c)
        near = where[(np.abs(where[:, 0] - r) <= e.radius) & (np.abs(where[:, 1] - c) <= e.radius)]
        level = point_levels(e, np.ones(3, bool), templates, corr, near[:, 0], near[:, 1])
        reached = near[level >= threshold]
        expected = population.sum(axis=0)[reached[:, 0], reached[:, 1]].sum()
        assert round(gain[r, c]) == expected
        assert 0 < expected < people.sum()  # the test grid holds reached and unreached people


def _engine_with(ground: Ground, extra: list[SiteInput]) -> Coverage:
    inputs = scenario_inputs(load_scenario(), ground.config)
    sites = [*inputs.sites, *extra]
    engine = CoverageEngine(inputs.grid, inputs.land_use, sites, ground.config, inputs.ground)
    engine.recompute_full()
    cov = Coverage(engine, inputs.places, outline=inputs.outline)
    cov.current = cov.evaluate()
    return cov


def _covered_by(cov: Coverage, operator: Operator) -> set[str]:
    return {
        pc.place.place_id
        for (kind, _), pc in cov.current.items()
        if kind == "village" and operator in pc.operators
    }


def _advised_site(i: int, lat: float, lon: float, site: StandardSite) -> SiteInput:
    return SiteInput(f"ADVISED-{i}", Operator.VIETTEL, lat, lon, site.height_m,
                     tuple(site.sector_inputs()))  # fmt: skip


def test_the_picks_bring_online_what_they_say_in_the_engine() -> None:
    ground = scenario_ground()
    advice = advise(ground, Operator.VIETTEL, 2, site=SITE)
    assert len(advice.picks) == 2 and all(p.villages for p in advice.picks)
    before = _covered_by(_engine_with(ground, []), Operator.VIETTEL)
    added: list[SiteInput] = []
    claimed: set[str] = set()
    for p in advice.picks:
        added.append(_advised_site(p.rank, p.lat, p.lon, SITE))
        claimed |= {v.place_id for v in p.villages}
        now = _covered_by(_engine_with(ground, added), Operator.VIETTEL)
        assert now - before == claimed  # exactly the villages it named, no more, no fewer
        assert p.estimated_people == p.population  # the FFT gain agreed with the engine
    assert advice.population_gained == sum(
        v.population for v in ground.villages if v.place_id in claimed
    )


def _no_double_counting(advice: Advice) -> None:
    ids = [v.place_id for p in advice.picks for v in p.villages]
    assert len(ids) == len(set(ids))
    assert advice.population_gained <= advice.uncovered_population


def test_greedy_never_counts_a_village_twice_and_stops_when_nothing_is_left() -> None:
    ground = scenario_ground()
    dead = ground.uncovered(None)
    advice = advise(ground, None, 20, site=SITE)  # more sites than dead spots
    _no_double_counting(advice)
    assert len(advice.picks) < 20
    assert all(p.population > 0 for p in advice.picks)
    assert advice.population_gained == sum(v.population for v in dead)  # all reachable
    gains = [p.population for p in advice.picks]
    assert gains == sorted(gains, reverse=True)  # each later pick gains what is left
    _no_double_counting(advise(ground, Operator.MOBIFONE, 4, site=SITE))


def test_near_roads_limits_the_candidates() -> None:
    ground = scenario_ground()
    anywhere = advise(ground, Operator.VIETTEL, 1, site=SITE)
    near = advise(ground, Operator.VIETTEL, 1, site=SITE, road_km=1.0)
    assert 0 < near.candidates < anywhere.candidates
    assert near.population_gained <= anywhere.population_gained


def test_bad_input_is_one_clear_error() -> None:
    ground = scenario_ground()
    with pytest.raises(ValueError, match="--towers: 0 is not a positive number"):
        advise(ground, Operator.VIETTEL, 0, site=SITE)
    with pytest.raises(ValueError, match="unknown band 1234"):
        advise(ground, Operator.VIETTEL, 1, site=dataclasses.replace(SITE, band_mhz=1234.0))
    everyone = frozenset(o.value for o in Operator)
    covered = dataclasses.replace(
        ground, verdicts={v.place_id: (everyone, frozenset()) for v in ground.villages}
    )
    with pytest.raises(ValueError, match="nothing to advise: there is no village no operator"):
        advise(covered, None, 3, site=SITE)
    no_roads = dataclasses.replace(ground, roads=())
    with pytest.raises(ValueError, match="no candidate position"):
        advise(no_roads, Operator.VIETTEL, 1, site=SITE, road_km=2.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--operator", "vinafone"], "--operator: 'vinafone' is not one of viettel"),
        (["--towers", "0"], "--towers: 0 is not a positive number of sites"),
        (["--towers", "-2"], "--towers: -2 is not a positive number of sites"),
        (["--sectors", "9"], "--advise_sectors: Input should be less than or equal to 6"),
    ],
)
def test_the_cli_says_what_is_wrong_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["coverage", "advise", "--scenario", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1] == f"ioc: {message}" or lines[-1].startswith(f"ioc: {message}")
    assert "Traceback" not in result.output


def test_the_cli_prints_the_picks_and_draws_them(tmp_path: Path) -> None:
    png = tmp_path / "advise.png"
    result = CliRunner().invoke(
        app,
        ["coverage", "advise", "--scenario", "--resolution-m", str(RES_M), "--operator",
         "viettel", "--towers", "2", "--png", str(png)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Standard site: 4G 1800 MHz, 30 m, 43 dBm × 3 sectors" in result.output
    assert "1. " in result.output and "2. " in result.output and "Total: " in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_from_the_live_database(loaded: str) -> None:
    asyncio.run(built_once(loaded))  # the coverage service's verdicts, written
    ground = ground_from_db(loaded, coverage_config(resolution_m=200.0), province=52)
    with psycopg.connect(loaded) as conn:
        rows = q.coverage_rows(conn, "village", scope=NATIONAL)
    without_viettel = {r["place_id"] for r in rows if "viettel" not in r["operators"]}
    assert {v.place_id for v in ground.uncovered(Operator.VIETTEL)} == without_viettel != set()
    assert "viettel" in ground.levels  # the map's raster, for the picture
    advice = advise(ground, Operator.VIETTEL, 1, site=SITE, spacing_m=400.0)
    (pick,) = advice.picks
    assert pick.villages and {v.place_id for v in pick.villages} <= without_viettel
    assert pick.population == pick.estimated_people
    assert pick.district_code == 547 and pick.commune_code == 21808


def _coverage_page(url: str, monkeypatch: pytest.MonkeyPatch, lang: str) -> AppTest:
    """The coverage page as a viewer sees it, as `ioc dashboard` runs it."""
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    with connect(url, autocommit=True) as conn:
        session = users.login(conn, "viewer", PASSWORDS["viewer"])
    assert session is not None
    at = AppTest.from_file(str(ROOT / "ioc" / "dashboard_main.py"), default_timeout=120)
    at.session_state["lang"] = lang
    at.session_state["session_token"] = session.token
    return at.switch_page("../dashboard/pages/coverage.py").run()


@pytest.mark.parametrize(
    ("lang", "title", "summary"),
    [
        ("en", "Where to build", "**1,436** people brought online by 5 new sites"),
        ("vi", "Nên xây trạm ở đâu", "**1.436** người có sóng nhờ 5 trạm mới"),
    ],
)
def test_the_coverage_page_advises_where_to_build(
    scenario_url: str, monkeypatch: pytest.MonkeyPatch, lang: str, title: str, summary: str
) -> None:
    at = _coverage_page(scenario_url, monkeypatch, lang)
    assert not at.exception, at.exception
    assert title in [s.value for s in at.subheader]
    at.selectbox(key="advise_operator").select_index(0)  # any: the dead spots
    # each seed village lies behind its own ring of ridges: a site apiece (without terrain two
    # sites reached all five)
    at.number_input(key="advise_towers").set_value(5)
    next(b for b in at.button if b.label == RUN_LABEL[lang]).click().run()
    assert not at.exception, at.exception
    assert any(m.value.startswith(summary) for m in at.markdown), [m.value for m in at.markdown]
    picks = at.dataframe[-1].value
    assert len(picks) == 5
    assert sum(picks[picks.columns[-1]]) == 1436  # the five seed dead spots, all brought online
    assert len(at.get("deck_gl_json_chart")) == 1
