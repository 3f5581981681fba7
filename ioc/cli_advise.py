"""``ioc coverage advise``: where K new sites of a standard configuration would bring the most
uncovered people online (processing/coverage/advise.py has the method).

From the live database (the verdicts the coverage service wrote) or, with ``--scenario``, from
the seeds scenario with every tower online. Options override IOC_COVERAGE_ADVISE_*.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ioc.cli_common import clear_errors, given, load_settings
from ioc.cli_coverage import (
    Province,
    Resolution,
    Scenario,
    _config,
    _settings,
    coverage_app,
    province_code,
    scenario_coverage,
)
from ioc.configs import advisor_setup, require_database
from ioc.errors import SettingError

if TYPE_CHECKING:
    from processing.coverage.advise import Advice, Ground

ANY_OPERATOR = "any"


def parse_operator(name: str | None) -> Any:
    """An Operator, or None for "any" (dead spots: villages no operator covers)."""
    from devices.kinds import Operator

    if name is None or name == ANY_OPERATOR:
        return None
    try:
        return Operator(name)
    except ValueError:
        names = ", ".join([*(o.value for o in Operator), ANY_OPERATOR])
        raise SettingError(f"--operator: {name!r} is not one of {names}") from None


@coverage_app.command("advise")
@clear_errors
def advise_command(
    operator: Annotated[
        str, typer.Option(help="villages this operator does not cover; any: dead spots")
    ] = ANY_OPERATOR,
    towers: Annotated[int, typer.Option(help="how many new sites")] = 3,
    png: Annotated[Path | None, typer.Option(help="draw the picks and their footprints")] = None,
    spacing_m: Annotated[float | None, typer.Option(help="candidate grid spacing, m")] = None,
    road_km: Annotated[
        float | None, typer.Option(help="candidates within this of a road, km; 0: anywhere")
    ] = None,
    band_mhz: Annotated[float | None, typer.Option(help="the new sites' band, MHz")] = None,
    height_m: Annotated[float | None, typer.Option(help="their antenna height, m")] = None,
    tx_power_dbm: Annotated[float | None, typer.Option(help="their power per sector, dBm")] = None,
    sectors: Annotated[int | None, typer.Option(help="their sectors, evenly spread")] = None,
    scenario: Scenario = False,
    resolution_m: Resolution = None,
    province: Province = None,
) -> None:
    """Where new sites would bring the most uncovered people online (greedy, FFT gain)."""
    from processing.coverage.advise import (
        advise,
        check_towers,
        ground_from_coverage,
        ground_from_db,
    )

    op = parse_operator(operator)
    check_towers(towers)  # before the seconds a coverage takes
    advise_options = given(
        advise_spacing_m=spacing_m,
        advise_road_km=road_km,
        advise_band_mhz=band_mhz,
        advise_height_m=height_m,
        advise_tx_power_dbm=tx_power_dbm,
        advise_sectors=sectors,
    )
    settings = _settings(**given(resolution_m=resolution_m), **advise_options)
    code = province_code(province)
    if scenario:
        from seeds import load_scenario

        typer.echo("computing the scenario's coverage, every tower online…", err=True)
        scenario_places = load_scenario(code)
        ground = ground_from_coverage(scenario_coverage(code, resolution_m), scenario_places)
    else:
        database_url = require_database(load_settings())
        ground = ground_from_db(database_url, _config(resolution_m), province=code)
    setup = advisor_setup(settings)
    advice = advise(ground, op, towers, site=setup.site,
                    spacing_m=setup.spacing_m, road_km=setup.road_km)  # fmt: skip
    for line in advice_lines(ground, advice):
        typer.echo(line)
    if png is not None:
        draw_advice(ground, advice, png)
        typer.echo(f"wrote {png} ({ground.grid.cols}×{ground.grid.rows} px)")


def advice_lines(ground: Ground, advice: Advice) -> list[str]:
    from processing.coverage.advise import METHOD_NOTE

    communes = {p.commune_code: p.name for p in ground.communes}
    whom = f"{advice.operator.value} does not cover" if advice.operator else "no operator covers"
    where = f"within {advice.road_km:g} km of a road" if advice.road_km else "in the province"
    out = [
        f"Standard site: {advice.site.describe()}",
        f"Villages {whom}: {advice.uncovered_villages} ({advice.uncovered_population:,} people)",
        f"Candidates: {advice.candidates:,}, every {advice.spacing_m:,.0f} m {where}",
        "",
    ]
    for p in advice.picks:
        district = ground.district_names.get(p.district_code, str(p.district_code))
        out.append(
            f"{p.rank}. {p.lat:.5f}, {p.lon:.5f}  {communes.get(p.commune_code, '?')}, {district}:"
            f" {_villages(len(p.villages))}, {p.population:,} people online"
            f" (FFT estimate {p.estimated_people:,})"
        )
        for v in sorted(p.villages, key=lambda v: -v.population):
            out.append(f"     {v.name} ({communes.get(v.commune_code, '?')}), {v.population:,}")
    if len(advice.picks) < advice.towers_asked:
        out.append(f"No further site would bring anyone online ({len(advice.picks)} of "
                   f"{advice.towers_asked} placed).")  # fmt: skip
    share = advice.population_gained / advice.uncovered_population
    out += [
        "",
        f"Total: {advice.population_gained:,} people online with {len(advice.picks)} sites"
        f" ({share:.0%} of the uncovered)",
        f"Method: {METHOD_NOTE}.",
    ]
    return out


def _villages(n: int) -> str:
    return f"{n} village" if n == 1 else f"{n} villages"


def draw_advice(ground: Ground, advice: Advice, png: Path) -> None:
    """The operator's raster as `ioc coverage raster` draws it (where the map's raster is at
    hand), each pick's footprint tinted blue, the villages it brings online blue dots, the
    uncovered ones left red rings, the picks black."""
    import numpy as np

    from processing.coverage.advise import pick_footprint
    from processing.coverage.grid import polygon_mask
    from processing.coverage.rasters import ANY
    from processing.coverage.render import colour, mark, write_png

    grid = ground.grid
    key = advice.operator.value if advice.operator else ANY
    levels = ground.levels.get(key)
    margin = np.full(grid.shape, -1e9, np.float32)
    if levels is not None:
        threshold = ground.config.thresholds_dbm[advice.site.technology]
        margin = np.where(np.isnan(levels), np.float32(-1e9), levels - np.float32(threshold))
    inside = polygon_mask(grid, ground.outline) if ground.outline else np.ones(grid.shape, bool)
    img = colour(margin.astype(np.float32), inside)
    blue = np.array((49, 130, 189), np.float32)
    for p in advice.picks:
        fp = pick_footprint(ground, advice.site, p) & inside
        img[fp] = (img[fp] * 0.45 + blue * 0.55).astype(np.uint8)
    online = {v.place_id for p in advice.picks for v in p.villages}
    left = [v for v in ground.uncovered(advice.operator) if v.place_id not in online]
    for villages, rgb, ring in (
        (left, (215, 25, 28), True),
        ([v for p in advice.picks for v in p.villages], (8, 48, 107), False),
    ):
        if villages:
            r, c, ok = grid.cell_of([v.lat for v in villages], [v.lon for v in villages])
            mark(img, r[ok], c[ok], radius=10 if ring else 4, rgb=rgb, ring=ring)
    if advice.picks:
        mark(img, [p.row for p in advice.picks], [p.col for p in advice.picks], radius=7,
             rgb=(0, 0, 0), ring=False)  # fmt: skip
    write_png(png, img)
