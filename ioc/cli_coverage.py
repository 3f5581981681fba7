"""``ioc coverage``: the coverage service, the district report, N-1 criticality, the raster.

Options override the coverage settings (``IOC_COVERAGE_*``, ioc/settings.py).
``--scenario`` computes from the seeds scenario with every tower online, without a database.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ioc.cli_common import clear_errors, database, given, load_settings, setup_logging
from ioc.configs import coverage_config, coverage_service_config, require_database
from ioc.errors import SettingError
from ioc.settings import CoverageSettings, Settings
from simulators.values import LOCAL_TZ
from store.scope import Scope

coverage_app: typer.Typer = typer.Typer(
    help="Coverage: dead-spot villages, N-1 criticality, the signal raster.",
    no_args_is_help=True,
)

Resolution = Annotated[
    float | None, typer.Option(help="raster cell size, metres (IOC_COVERAGE_RESOLUTION_M)")
]
Scenario = Annotated[
    bool,
    typer.Option("--scenario", help="compute from the seeds scenario, every tower online"),
]
Province = Annotated[
    str | None,
    typer.Option(help="the province, one of IOC_PROVINCE's (name or GSO code); default: the first"),
]


def province_code(choice: str | None) -> int:
    """The GSO code of the province a command works on: ``choice``, which must be one of the
    deployment's (IOC_PROVINCE), or the first of them."""
    from seeds.national import province_code as code_of
    from seeds.national import province_codes

    spec = load_settings().province
    loaded = province_codes(spec)
    if choice is None:
        return loaded[0]
    code = code_of(choice)
    if code not in loaded:
        raise SettingError(
            f"--province: {choice!r} is not among this deployment's provinces: {spec}"
            " (IOC_PROVINCE)"
        )
    return code


def _settings(**coverage: Any) -> Settings:
    """The settings, the coverage section overridden by the options given."""
    settings = load_settings()
    try:
        section = CoverageSettings.model_validate(settings.coverage.model_dump() | coverage)
    except ValidationError as err:
        raise SettingError(f"--{err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") from None
    return settings.model_copy(update={"coverage": section})


def _config(resolution_m: float | None) -> Any:
    return coverage_config(_settings(**given(resolution_m=resolution_m)))


@functools.cache
def scenario_coverage(province: int, resolution_m: float | None = None) -> Any:
    """The province's scenario coverage (cached per process: a full recompute takes seconds)."""
    from processing.coverage.scenario import scenario_coverage as compute
    from seeds import load_scenario

    return compute(load_scenario(province), _config(resolution_m))


def _names(province: int) -> tuple[dict[int, str], dict[int, str]]:
    from seeds import load_scenario

    s = load_scenario(province)
    return {d.code: d.name for d in s.districts}, {c.code: c.name for c in s.communes}


@coverage_app.command("run")
@clear_errors
def run(
    resolution_m: Resolution = None,
    sweep_s: Annotated[
        float | None,
        typer.Option(help="re-read every tower though no change was pushed (a safety net)"),
    ] = None,
    unknown_grace_s: Annotated[
        float | None,
        typer.Option(help="towers never heard from serve this long after start-up, and not after"),
    ] = None,
    threshold_4g: Annotated[float | None, typer.Option(help="4G RSRP threshold, dBm")] = None,
    threshold_3g: Annotated[float | None, typer.Option(help="3G RSCP threshold, dBm")] = None,
    window_h: Annotated[
        float | None, typer.Option(help="probe samples this recent count, hours")
    ] = None,
    min_samples: Annotated[
        int | None, typer.Option(help="samples a cell needs to be measured")
    ] = None,
    metropolitan: Annotated[
        bool | None,
        typer.Option(help="judge urban cells as a metropolitan centre (COST-231 Cm = 3 dB)"),
    ] = None,
    min_probes: Annotated[
        int | None, typer.Option(help="distinct probes a measured cell needs")
    ] = None,
) -> None:
    """Run the coverage service: follows the towers and writes villages' coverage and events."""
    from processing.coverage.service import run_coverage

    setup_logging()
    options = given(
        resolution_m=resolution_m,
        sweep_s=sweep_s,
        unknown_grace_s=unknown_grace_s,
        threshold_4g_dbm=threshold_4g,
        threshold_3g_dbm=threshold_3g,
        measured_window_h=window_h,
        min_samples=min_samples,
        metropolitan=metropolitan,
        min_probes=min_probes,
    )
    asyncio.run(run_coverage(coverage_service_config(_settings(**options))))


@coverage_app.command("report")
@clear_errors
def report(
    csv: Annotated[Path | None, typer.Option(help="write one row per village to this CSV")] = None,
    scenario: Scenario = False,
    resolution_m: Resolution = None,
    province: Province = None,
) -> None:
    """Villages, dead spots and people without signal, per district."""
    from processing.coverage.report import (
        report_lines,
        rows_from_coverage,
        rows_from_db,
        write_csv,
    )

    code = province_code(province)
    if scenario:
        typer.echo("computing the scenario's coverage, every tower online…", err=True)
        districts, communes = _names(code)
        rows, covered, centres = rows_from_coverage(
            scenario_coverage(code, resolution_m), districts, communes
        )
    else:
        from store.coverage import commune_centres, coverage_rows

        with database(load_settings()) as conn:
            rows = rows_from_db(coverage_rows(conn, "village", scope=Scope.of([code])))
            covered, centres = commune_centres(conn, scope=Scope.of([code]))
        if not rows:
            raise SettingError(
                "no coverage in the database yet: run `ioc coverage run` (ioc up does), "
                "or pass --scenario"
            )
    for line in report_lines(rows, covered, centres):
        typer.echo(line)
    if csv is not None:
        n = write_csv(csv, rows)
        typer.echo(f"wrote {n} villages to {csv}")


@coverage_app.command("critical")
@clear_errors
def critical(
    top: Annotated[int, typer.Option(min=1, help="how many towers")] = 20,
    scenario: Scenario = False,
    resolution_m: Resolution = None,
    province: Province = None,
) -> None:
    """N-1: the towers whose loss alone would leave the most people without signal."""
    from processing.coverage.report import critical_lines

    code = province_code(province)
    if scenario:
        typer.echo("computing the scenario's coverage, every tower online…", err=True)
        rows: list[Any] = scenario_coverage(code, resolution_m).criticality()[:top]
    else:
        from store.coverage import critical_top

        with database(load_settings()) as conn:
            rows = critical_top(conn, top, scope=Scope.of([code]))
        if not rows:
            raise SettingError("no N-1 table in the database yet: run `ioc coverage run`")
    for line in critical_lines(rows):
        typer.echo(line)


def _hhmm(t: datetime) -> str:
    return t.astimezone(LOCAL_TZ).strftime("%H:%M")


def runway_line(p: Any, now: datetime) -> str:
    """One place at risk, as `ioc coverage runway` prints it."""
    from processing.alerts.facts import number

    what = "all mobile signal" if p.operator == "any" else p.operator
    head = (
        f"{p.name} ({p.commune}, {p.district}), {number(p.population, 'en')} people: loses {what}"
    )
    sites = f"sites on battery: {', '.join(p.sites)}"
    if p.loses_at is None:
        return f"{head} at an unknown time (a serving site reports no battery charge); {sites}"
    minutes = max(0, round((p.loses_at - now).total_seconds() / 60))
    band = ""
    if p.loses_early is not None:
        late = _hhmm(p.loses_late) if p.loses_late is not None else "not draining"
        band = f", band {_hhmm(p.loses_early)}-{late}"
    return f"{head} at about {_hhmm(p.loses_at)} (in ~{minutes} min{band}); {sites}"


def site_line(s: Any, now: datetime) -> str:
    charge = "no charge reported" if s.battery_pct is None else f"{s.battery_pct:.0f} %"
    since = round((now - s.on_battery_since).total_seconds() / 60)
    if s.dark_at is None:
        return f"{s.device_id}: on battery {since} min, {charge}; dark at: unknown"
    rate = f"{s.drain_pct_per_h:.1f} %/h ({s.method}, {s.readings} readings)"
    return (
        f"{s.device_id}: on battery {since} min, {charge}, {rate}; dark at about {_hhmm(s.dark_at)}"
    )


@coverage_app.command("runway")
@clear_errors
def runway(
    operator: Annotated[
        str, typer.Option(help="an operator (viettel, mobifone, …) or 'any': all mobile signal")
    ] = "any",
    limit: Annotated[int, typer.Option(min=1, help="how many places")] = 20,
    sites: Annotated[bool, typer.Option("--sites", help="also list the towers on battery")] = False,
    province: Province = None,
) -> None:
    """Battery runway: the villages that lose signal next as their towers' batteries run flat."""
    from devices.kinds import Operator
    from store.runway import battery_reports, places_at_risk, site_runways

    if operator != "any" and operator not in {o.value for o in Operator}:
        choices = ", ".join([o.value for o in Operator] + ["any"])
        raise SettingError(f"--operator: {operator!r} is none of {choices}")
    settings = load_settings()
    every_s = settings.coverage.runway_every_s
    scope = Scope.of([province_code(province)])
    with database(settings) as conn:
        towers = site_runways(conn, scope=scope)
        places = places_at_risk(conn, operator=operator, limit=limit, scope=scope)
        reporting = battery_reports(conn, max(600.0, 4 * every_s))
        now = conn.execute("SELECT now()").fetchone()[0]
    computed = max((t.computed_at for t in towers), default=None)
    if computed is not None and (now - computed).total_seconds() > max(60.0, 4 * every_s):
        typer.echo(f"warning: the forecast is stale: computed at {_hhmm(computed)}, "
                   f"{round((now - computed).total_seconds() / 60)} min ago; "
                   "is the coverage service (`ioc coverage run`) running?")  # fmt: skip
    elif not towers and reporting:
        typer.echo(f"warning: {reporting} towers report battery but no forecast is stored; "
                   "is the coverage service (`ioc coverage run`) running?")  # fmt: skip
    if not places:
        what = "all mobile signal" if operator == "any" else operator
        typer.echo(f"no village is at risk of losing {what}: "
                   f"{len(towers)} towers on battery, none holding a village alone")  # fmt: skip
    for p in places:
        typer.echo(runway_line(p, now))
    if sites:
        typer.echo(f"towers on battery: {len(towers)}")
        for s in towers:
            typer.echo("  " + site_line(s, now))


@coverage_app.command("raster")
@clear_errors
def raster(
    png: Annotated[Path, typer.Option(help="where to write the picture")],
    operator: Annotated[
        str | None, typer.Option(help="one operator (viettel, mobifone, …); default: all")
    ] = None,
    scenario: Scenario = False,
    resolution_m: Resolution = None,
    province: Province = None,
) -> None:
    """Draw the 3G/4G raster as a PNG, dead-spot villages ringed in red."""
    from devices.kinds import Operator
    from processing.coverage.build import build_provinces, split_provinces
    from processing.coverage.serving import verdicts_from_rows

    if operator is not None and operator not in {o.value for o in Operator}:
        names = ", ".join(o.value for o in Operator)
        raise SettingError(f"--operator: {operator!r} is not one of {names}")
    code = province_code(province)
    if scenario:
        typer.echo("computing the scenario's coverage, every tower online…", err=True)
        cov = scenario_coverage(code, resolution_m)
    else:
        typer.echo("computing coverage from the database's towers and states…", err=True)
        from store import coverage as q
        from store.db import aconnect

        async def fetch() -> tuple[Any, Any, Any]:
            conn = await aconnect(require_database(load_settings()))
            try:
                doc, bts = await q.places(conn), await q.bts_registry(conn)
                inputs, feeders = await q.serving_inputs(conn), await q.feeders(conn)
                return doc, bts, verdicts_from_rows(inputs, feeders, in_grace=False)
            finally:
                await conn.close()

        doc, bts, verdicts = asyncio.run(fetch())
        parts, _ = split_provinces(doc, bts)
        if code not in parts:
            raise SettingError(f"--province: {code} is not loaded: run `ioc scenario load`")
        cov = build_provinces({code: parts[code]}, _config(resolution_m), verdicts)[code]
        cov.current = cov.evaluate()
    draw(cov, png, operator)
    dead = sum(1 for (k, _), pc in cov.current.items() if k == "village" and pc.dead_spot)
    typer.echo(f"wrote {png} ({cov.engine.grid.cols}×{cov.engine.grid.rows} px, {dead} dead spots)")


def draw(cov: Any, png: Path, operator: str | None) -> None:
    import numpy as np

    from processing.coverage.grid import polygon_mask
    from processing.coverage.render import colour, margin_raster, mark, write_png

    eng = cov.engine
    shown = np.array(
        [t in eng.config.broadband and (operator in (None, op.value)) for op, t in eng.layers]
    )
    thresholds = np.array([eng.config.thresholds_dbm[t] for _, t in eng.layers], np.float32)
    inside = polygon_mask(eng.grid, cov.outline) if cov.outline else np.ones(eng.grid.shape, bool)
    img = colour(margin_raster(eng.value, eng.layers, thresholds, shown), inside)
    rows = [s for s in eng.sites if operator in (None, s.operator.value)]
    if rows:
        r, c, ok = eng.grid.cell_of([s.lat for s in rows], [s.lon for s in rows])
        img[r[ok], c[ok]] = (0, 0, 0)
    dead = [pc.place for (k, _), pc in cov.current.items() if k == "village" and pc.dead_spot]
    if dead:
        r, c, ok = eng.grid.cell_of([p.lat for p in dead], [p.lon for p in dead])
        mark(img, r[ok], c[ok], radius=14, rgb=(215, 25, 28), ring=True)
        mark(img, r[ok], c[ok], radius=3, rgb=(215, 25, 28), ring=False)
    write_png(png, img)


import ioc.cli_advise  # noqa: E402, F401  (registers `ioc coverage advise` on coverage_app)
