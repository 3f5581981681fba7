"""The engine's inputs from the seeds scenario (tests, bench, ``--scenario`` reports)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from processing.coverage.config import CoverageConfig
from processing.coverage.dem import province_ground
from processing.coverage.engine import CoverageEngine
from processing.coverage.grid import Grid
from processing.coverage.landuse import PlacePoint, land_use
from processing.coverage.places import Place
from processing.coverage.sites import SectorInput, SiteInput
from processing.coverage.state import Coverage
from seeds import BtsSite, Commune, Scenario, Village


@dataclass(frozen=True, slots=True)
class Inputs:
    grid: Grid
    land_use: npt.NDArray[np.int8]
    sites: list[SiteInput]
    places: list[Place]
    outline: tuple[tuple[float, float], ...]
    ground: npt.NDArray[np.float32] | None  # heights above sea level; none: no terrain


def site_input(b: BtsSite) -> SiteInput:
    return SiteInput(
        device_id=b.device_id,
        operator=b.operator,
        lat=b.lat,
        lon=b.lon,
        antenna_height_m=b.antenna_height_m,
        sectors=tuple(
            SectorInput(
                s.sector,
                s.azimuth_deg,
                s.tilt_deg,
                s.band_mhz,
                s.technology,
                s.tx_power_dbm,
                s.beamwidth_deg,
                s.antenna_gain_dbi,
            )
            for s in b.sectors
        ),
    )


def village_place(v: Village) -> Place:
    return Place(
        "village", v.village_id, v.name, v.district_code, v.commune_code, v.lat, v.lon, v.population
    )


def commune_place(c: Commune) -> Place:
    # A commune centre's people are counted in its villages.
    return Place("commune", str(c.code), c.name, c.district_code, c.code, c.lat, c.lon, 0)


def land_use_points(villages: list[Village], communes: list[Commune]) -> list[PlacePoint]:
    points = [PlacePoint(v.lat, v.lon, v.population, town=False) for v in villages]
    points += [PlacePoint(c.lat, c.lon, 0, town=c.division_type != "xã") for c in communes]
    return points


def scenario_inputs(scenario: Scenario, config: CoverageConfig) -> Inputs:
    grid = Grid.around(scenario.outline, config.resolution_m)
    lu = land_use(
        grid,
        land_use_points(list(scenario.villages), list(scenario.communes)),
        mountain_polygons=[d.polygon for d in scenario.districts if d.mountainous],
    )
    places = [village_place(v) for v in scenario.villages]
    places += [commune_place(c) for c in scenario.communes]
    ground = province_ground(config, scenario.province_code, grid, scenario.outline)
    sites = [site_input(b) for b in scenario.bts]
    return Inputs(grid, lu, sites, places, scenario.outline, ground)


def scenario_coverage(scenario: Scenario, config: CoverageConfig) -> Coverage:
    """The scenario with every tower online: full recompute, verdicts, covering towers."""
    inputs = scenario_inputs(scenario, config)
    engine = CoverageEngine(inputs.grid, inputs.land_use, inputs.sites, config, inputs.ground)
    engine.recompute_full()
    coverage = Coverage(engine, inputs.places, outline=inputs.outline)
    coverage.current = coverage.evaluate()
    coverage.refresh_covering()
    return coverage
