"""The Bình Định scenario through the coverage engine reproduces the seed facts (report of
31 May 2022): 3G/4G at every commune centre, and the seed's remote villages of Vĩnh Thạnh and
Vân Canh as the only villages without mobile broadband. Asserted on the computed coverage."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.kinds import Technology
from ioc.cli import app
from ioc.cli_coverage import scenario_coverage
from processing.coverage import Coverage
from seeds import Scenario, load_scenario


@pytest.fixture(scope="module")
def cov() -> Coverage:
    computed: Coverage = scenario_coverage(52)  # shared with the CLI commands (cached)
    return computed


@pytest.fixture(scope="module")
def s() -> Scenario:
    return load_scenario()


def test_every_commune_centre_has_3g_or_4g(cov: Coverage, s: Scenario) -> None:
    centres = {pid: pc for (kind, pid), pc in cov.current.items() if kind == "commune"}
    assert len(centres) == 155 == len(s.communes)
    assert [c.place.name for c in centres.values() if c.dead_spot] == []
    # ...from the broadband layers only: 2G is in the raster but never counts.
    assert cov.engine.config.broadband == {Technology.G4, Technology.G3}


def test_dead_spots_are_exactly_the_seed_villages(cov: Coverage, s: Scenario) -> None:
    dead = {pid for (kind, pid), pc in cov.current.items() if kind == "village" and pc.dead_spot}
    seed = {v.village_id for v in s.dead_spot_villages()}
    assert len(seed) == 5
    assert dead == seed
    districts = {v.district_code for v in s.villages if v.village_id in dead}
    assert districts == {546, 551}  # Vĩnh Thạnh and Vân Canh
    populated = [v for v in s.villages if v.population > 0 and v.village_id not in seed]
    assert len(populated) > 1000
    assert all(cov.current[("village", v.village_id)].operators for v in populated)


def test_n_minus_1_ranks_the_towers_people_hang_on(cov: Coverage) -> None:
    crit = cov.criticality()
    assert len(crit) == 1723
    top = crit[0]
    assert top.population_all > 0  # some village hangs on one tower alone
    assert crit == sorted(crit, key=lambda c: (-c.population_all, -c.population_operator))
    # Removing the top tower really leaves those villages without any operator.
    lonely = [
        k for k, by_op in cov.covering.items() if set().union(*by_op.values()) == {top.device_id}
    ]
    assert sum(cov.current[k].place.population for k in lonely) == top.population_all


def test_the_report_prints_the_seed_facts_and_writes_csv(tmp_path: Path, cov: Coverage) -> None:
    out = tmp_path / "villages.csv"
    result = CliRunner().invoke(app, ["coverage", "report", "--scenario", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Commune centres with 3G/4G: 155 of 155" in text
    assert "Villages without mobile broadband (dead spots): 5" in text
    for name in ("Kon Trú", "Làng O2", "Canh Tiến", "Cà Nâu", "Canh Giao"):
        assert name in text
    assert "Huyện Vĩnh Thạnh" in text and "Huyện Vân Canh" in text
    rows: list[dict[str, Any]] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == len(load_scenario().villages)
    assert sorted(r["name"] for r in rows if r["dead_spot"] == "1") == sorted(
        ["Kon Trú", "Làng O2", "Canh Tiến", "Cà Nâu", "Canh Giao"]
    )


def test_critical_and_raster_commands(tmp_path: Path, cov: Coverage) -> None:
    result = CliRunner().invoke(app, ["coverage", "critical", "--scenario", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert cov.criticality()[0].device_id in result.stdout
    assert len(result.stdout.strip().splitlines()) == 2 + 5
    png = tmp_path / "raster.png"
    result = CliRunner().invoke(app, ["coverage", "raster", "--scenario", "--png", str(png)])
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == cov.engine.grid.cols
    bad = CliRunner().invoke(app, ["coverage", "raster", "--scenario", "--png", str(png),
                                   "--operator", "acme"])  # fmt: skip
    assert bad.exit_code == 2 and "--operator: 'acme' is not one of" in bad.output
