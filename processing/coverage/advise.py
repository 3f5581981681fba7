"""The siting advisor: where K new sites of one standard configuration would bring the most
uncovered people online (``ioc coverage advise``, the coverage page's "Where to build").

Greedy: the candidate with the largest gain is picked, the villages it brings online are marked
covered, the gain is recomputed, and so on. The gain of every candidate at once is a
correlation of the uncovered-population raster with the standard site's footprint template,
done by FFT. The engine's level at a cell depends only on the offset from the site's cell and
on the land-use class of the *receiving* cell (its Hata correction), so the gain splits into one
correlation per land-use class (population in cells of that class × the footprint over that
class) and the sum is the engine's own footprint, not an approximation of it. What is
approximated is what the engine approximates too: a site and a village stand at the centre of
their raster cell. Each pick is then checked with the kernel's exact levels at the villages
(the same float32 code as the engine's), and the greedy step removes what that check says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.ndimage import distance_transform_edt  # type: ignore[import-untyped]
from scipy.signal import fftconvolve  # type: ignore[import-untyped]
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from devices.kinds import Operator, Technology
from devices.radio import LandUse
from devices.sectors import out_of_range
from processing.coverage.build import build_coverage, split_provinces
from processing.coverage.config import CoverageConfig
from processing.coverage.engine import class_corrections
from processing.coverage.grid import Grid, polygon_mask, to_latlon, to_utm
from processing.coverage.kernel import (
    Emitter,
    Templates,
    emitter_shadow,
    make_emitter,
    point_levels,
    shadow_at,
)
from processing.coverage.kernel import window_levels as kernel_window
from processing.coverage.places import Place
from processing.coverage.rasters import ANY, operator_levels
from processing.coverage.sites import SectorInput, sector_problem
from processing.coverage.state import Coverage
from seeds import Scenario
from store import coverage as q
from store.coverage_rasters import read_raster
from store.db import aconnect, connect
from store.places import map_features
from store.scope import Scope

F32 = npt.NDArray[np.float32]
LatLon = tuple[float, float]
# The land-use raster's classes, closed to open (devices.radio.LandUse; METROPOLITAN is an
# option for urban cells, never in the raster).
CLASSES = (LandUse.URBAN, LandUse.SUBURBAN, LandUse.RURAL_OPEN)
METHOD_NOTE = (
    "gain by FFT, one correlation per land-use class (exact on the engine's grid: sites and "
    "villages at their cell's centre); each pick checked with the engine's kernel; over "
    "terrain the FFT shortlists and the kernel, with the ground, picks"
)
TERRAIN_SHORTLIST = 64  # positions the flat search hands the terrain check, each pick


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardSite:
    """The configuration every new site is assumed to have. The shell builds it from the
    settings (IOC_COVERAGE_ADVISE_*, ioc/settings.py, whose defaults these repeat for callers
    without the settings tree: the dashboard until its config carries them)."""

    technology: Technology = Technology.G4
    band_mhz: float = 1800.0
    height_m: float = 30.0
    tx_power_dbm: float = 43.0
    sectors: int = 3  # evenly spread, the first facing north
    tilt_deg: float = 4.0
    beamwidth_deg: float = 65.0
    antenna_gain_dbi: float = 15.0

    def sector_inputs(self) -> list[SectorInput]:
        step = 360.0 / self.sectors
        return [
            SectorInput(k + 1, k * step, self.tilt_deg, self.band_mhz, self.technology,
                        self.tx_power_dbm, self.beamwidth_deg, self.antenna_gain_dbi)
            for k in range(self.sectors)
        ]  # fmt: skip

    def problem(self) -> str | None:
        if not 1 <= self.sectors <= 6:
            return f"sectors: {self.sectors} is not within 1–6"
        why = out_of_range("antenna_height_m", self.height_m)
        return why or sector_problem(self.sector_inputs()[0])

    @classmethod
    def of(cls, technology: str, band_mhz: float, **fields: Any) -> StandardSite:
        try:
            tech = Technology(technology)
        except ValueError:
            raise ValueError(f"technology: {technology!r} is not 4G or 3G") from None
        return cls(technology=tech, band_mhz=band_mhz, **fields)

    def describe(self) -> str:
        return (
            f"{self.technology.value} {self.band_mhz:g} MHz, {self.height_m:g} m, "
            f"{self.tx_power_dbm:g} dBm × {self.sectors} sectors, tilt {self.tilt_deg:g}°"
        )


@dataclass(frozen=True, slots=True)
class AdvisorSetup:
    """The advisor's settings as one value (ioc/configs.py builds it from IOC_COVERAGE_*), so
    the CLI and the dashboard's panel advise alike."""

    coverage: CoverageConfig
    site: StandardSite
    spacing_m: float
    road_km: float


@dataclass(frozen=True, slots=True)
class Ground:
    """What the advisor works on: the engine's grid and land use, the villages with who covers
    each now, and the province's divisions and roads."""

    grid: Grid
    land_use: npt.NDArray[np.int8]
    config: CoverageConfig
    villages: tuple[Place, ...]
    # village id → (operators covering it now, operators resting on towers never heard from)
    verdicts: Mapping[str, tuple[frozenset[str], frozenset[str]]]
    outline: tuple[LatLon, ...]
    district_polygons: Mapping[int, tuple[LatLon, ...]]
    district_names: Mapping[int, str]
    communes: tuple[Place, ...]  # commune centres
    roads: tuple[tuple[LatLon, ...], ...]
    # operator (and "any") → best broadband level now, dBm, NaN for none: the picture's base
    levels: Mapping[str, F32] = field(default_factory=dict)
    # heights above sea level (the engine's terrain), none: flat. The search's estimate reads
    # footprints over flat ground (one per land-use class, convolved); each pick's villages
    # and footprint are then computed over the terrain, as the engine would.
    terrain: F32 | None = None

    def uncovered(self, operator: Operator | None) -> list[Place]:
        """Villages the operator does not cover (None: dead spots, no operator covers). One
        resting on towers never heard from is not known to be uncovered and is left out."""
        out = []
        for v in self.villages:
            covering, unknown = self.verdicts.get(v.place_id, (frozenset(), frozenset()))
            if operator is None:
                dead = not covering and not unknown
            else:
                dead = operator.value not in covering and operator.value not in unknown
            if dead and v.population > 0:
                out.append(v)
        return out


@dataclass(frozen=True, slots=True)
class Pick:
    rank: int
    lat: float
    lon: float
    row: int
    col: int
    district_code: int
    commune_code: int
    estimated_people: int  # the FFT gain (over terrain: the shortlist's exact count)
    villages: tuple[Place, ...]  # brought online, by the kernel's exact levels

    @property
    def population(self) -> int:
        return sum(v.population for v in self.villages)


@dataclass(frozen=True, slots=True)
class Advice:
    operator: Operator | None
    site: StandardSite
    spacing_m: float
    road_km: float  # 0: anywhere in the province
    candidates: int
    uncovered_villages: int
    uncovered_population: int
    picks: tuple[Pick, ...]
    towers_asked: int

    @property
    def population_gained(self) -> int:
        return sum(p.population for p in self.picks)


# -- the radio model, as the engine runs it ---------------------------------------------------
def site_emitter(
    site: StandardSite, config: CoverageConfig, res: float, row: int, col: int
) -> Emitter:
    return make_emitter(
        eid=0, site=0, device_id="advised", operator=Operator.VIETTEL,
        technology=site.technology, layer=0, band_mhz=site.band_mhz, height_m=site.height_m,
        row=row, col=col, sectors=site.sector_inputs(), floor_dbm=config.floor_dbm(site.technology),
        max_range_m=config.max_range_km * 1000.0, best_land_use=LandUse.RURAL_OPEN, res=res,
    )  # fmt: skip


def footprint_templates(
    site: StandardSite, config: CoverageConfig, res: float
) -> tuple[npt.NDArray[np.bool_], Templates]:
    """(classes, 2R+1, 2R+1): the cells around a site where its level clears the threshold, were
    every cell of that land-use class. Rural-open bounds the window (the most open class)."""
    e = site_emitter(site, config, res, 0, 0)
    n = e.radius
    e = replace(e, row=n, col=n)
    templates = Templates.build(n, res)
    threshold = np.float32(config.thresholds_dbm[site.technology])
    active = np.ones(len(e.azimuth), bool)
    out = np.empty((len(CLASSES), 2 * n + 1, 2 * n + 1), bool)
    for k, corr in enumerate(class_corrections(site.band_mhz, config)):
        flat = np.full((2 * n + 1, 2 * n + 1), corr, np.float32)
        out[k] = (
            kernel_window(e, active, templates, flat, (0, 2 * n + 1, 0, 2 * n + 1)) >= threshold
        )
    return out, templates


def gain_raster(
    population: npt.NDArray[np.float64], footprints: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """People a site at each cell would reach: Σ over classes of the population of that class
    correlated with that class's footprint (FFT; a correlation is a convolution with the
    template flipped)."""
    gain = np.zeros(population.shape[1:])
    for pop, fp in zip(population, footprints, strict=True):
        if pop.any():
            gain += fftconvolve(pop, fp[::-1, ::-1].astype(np.float64), mode="same")
    return gain


# -- candidates --------------------------------------------------------------------------------
def candidate_mask(ground: Ground, spacing_m: float, road_km: float) -> npt.NDArray[np.bool_]:
    """Cells on a lattice ``spacing_m`` apart, inside the province, within ``road_km`` of a
    road when that is positive."""
    grid = ground.grid
    step = max(1, round(spacing_m / grid.res))
    lattice = np.zeros(grid.shape, bool)
    lattice[step // 2 :: step, step // 2 :: step] = True
    mask = lattice & (polygon_mask(grid, ground.outline) if ground.outline else True)
    if road_km > 0:
        mask &= near_roads(grid, ground.roads, road_km * 1000.0)
    return mask


def near_roads(
    grid: Grid, roads: Sequence[Sequence[LatLon]], within_m: float
) -> npt.NDArray[np.bool_]:
    on_road = np.zeros(grid.shape, bool)
    for road in roads:
        pts = np.asarray(road, np.float64)
        if len(pts) < 2:
            continue
        x, y = to_utm(pts[:, 0], pts[:, 1])
        for x0, y0, x1, y1 in zip(x[:-1], y[:-1], x[1:], y[1:], strict=True):
            n = max(2, int(np.hypot(x1 - x0, y1 - y0) / (grid.res / 2)) + 1)
            r, c, inside = grid.cell_of_xy(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
            on_road[r[inside], c[inside]] = True
    if not on_road.any():
        return on_road
    distance_m = distance_transform_edt(~on_road) * grid.res
    return np.asarray(distance_m <= within_m)


# -- the greedy search ------------------------------------------------------------------------
def advise(
    ground: Ground,
    operator: Operator | None,
    towers: int,
    *,
    site: StandardSite | None = None,
    spacing_m: float = 1000.0,
    road_km: float = 0.0,
) -> Advice:
    site = site or StandardSite()
    check_towers(towers)
    if spacing_m < ground.grid.res:
        raise ValueError(
            f"--spacing-m: {spacing_m:g} m is finer than the {ground.grid.res:g} m grid"
        )
    if road_km < 0:
        raise ValueError(f"--road-km: {road_km:g} km is negative")
    if why := site.problem():
        raise ValueError(f"the standard site: {why}")
    grid, cfg = ground.grid, ground.config
    todo = ground.uncovered(operator)
    whom = f"{operator.value} does not cover" if operator else "no operator covers"
    if not todo:
        raise ValueError(f"nothing to advise: there is no village {whom}")
    rows, cols, inside = grid.cell_of([v.lat for v in todo], [v.lon for v in todo])
    todo = [v for v, ok in zip(todo, inside, strict=True) if ok]
    rows, cols = rows[inside], cols[inside]
    people = np.array([v.population for v in todo], np.float64)
    population = np.zeros((len(CLASSES), *grid.shape))
    np.add.at(population, (ground.land_use[rows, cols], rows, cols), people)
    candidates = candidate_mask(ground, spacing_m, road_km)
    if not candidates.any():
        raise ValueError("no candidate position: the province holds none within the road limit")

    footprints, templates = footprint_templates(site, cfg, grid.res)
    corr = class_corrections(site.band_mhz, cfg)[ground.land_use]
    threshold = np.float32(cfg.thresholds_dbm[site.technology])
    left = np.ones(len(todo), bool)
    picks: list[Pick] = []

    spot_cells = np.argwhere(candidates)
    spots, spot_flat = cKDTree(spot_cells), spot_cells[:, 0] * grid.cols + spot_cells[:, 1]

    def reached(r: int, c: int) -> npt.NDArray[np.int64]:
        """The villages still left that a site at (r, c) brings online, exactly."""
        e = site_emitter(site, cfg, grid.res, r, c)
        idx = np.flatnonzero(left & (np.abs(rows - r) <= e.radius) & (np.abs(cols - c) <= e.radius))
        if idx.size == 0:
            return idx
        rr, cc = rows[idx], cols[idx]
        shadow = None if ground.terrain is None else shadow_at(ground.terrain, e, templates, rr, cc)
        level = point_levels(e, np.ones(len(e.azimuth), bool), templates, corr, rr, cc, shadow)
        return idx[level >= threshold]

    for rank in range(1, towers + 1):
        gain = np.where(candidates, gain_raster(population, footprints), -1.0)
        best = int(np.argmax(gain))  # the first of equals: the same answer every run
        estimate = round(float(gain.flat[best]))
        if estimate <= 0:
            break  # no candidate reaches anyone still uncovered
        online = reached(*divmod(best, grid.cols))
        if ground.terrain is not None:
            # Over terrain a footprint depends on where the site stands, so the flat search
            # only shortlists: its best TERRAIN_SHORTLIST, and the candidate nearest each
            # village still left (a valley's own site), are computed over the ground and the
            # one bringing the most people online is taken.
            order = np.argsort(-gain.ravel(), kind="stable")[:TERRAIN_SHORTLIST]
            _, nearest = spots.query(np.column_stack([rows[left], cols[left]]))
            beside = spot_flat[np.unique(nearest)]
            order = np.concatenate([order, beside[~np.isin(beside, order)]])
            found = [(k, reached(*divmod(int(k), grid.cols))) for k in order if gain.flat[k] > 0]
            k, online = max(found, key=lambda f: (people[f[1]].sum(), -f[0]))
            best, estimate = int(k), round(float(people[online].sum()))
            if estimate <= 0:
                break  # the ground hides everyone left from every shortlisted position
        r, c = divmod(best, grid.cols)
        left[online] = False
        np.subtract.at(
            population,
            (ground.land_use[rows[online], cols[online]], rows[online], cols[online]),
            people[online],
        )
        picks.append(_pick(ground, rank, r, c, estimate, tuple(todo[i] for i in online)))
    return Advice(
        operator=operator, site=site, spacing_m=spacing_m, road_km=road_km,
        candidates=int(candidates.sum()), uncovered_villages=len(todo),
        uncovered_population=int(people.sum()), picks=tuple(picks), towers_asked=towers,
    )  # fmt: skip


def check_towers(towers: int) -> None:
    if towers <= 0:
        raise ValueError(f"--towers: {towers} is not a positive number of sites")


def _pick(
    ground: Ground, rank: int, r: int, c: int, estimate: int, villages: tuple[Place, ...]
) -> Pick:
    x, y = ground.grid.centre_xy(r, c)
    lat, lon = (float(v) for v in to_latlon(x, y))
    district, commune = where(ground, lat, lon)
    return Pick(rank, lat, lon, r, c, district, commune, estimate, villages)


def where(ground: Ground, lat: float, lon: float) -> tuple[int, int]:
    """(district, commune) of a position: the district whose outline holds it, the commune
    whose centre is nearest within that district (the seeds carry no commune outlines)."""
    x, y = to_utm(lat, lon)
    res = ground.grid.res
    dot = Grid(float(x) - res / 2, float(y) + res / 2, res, 1, 1)
    district = next(
        (code for code, poly in ground.district_polygons.items() if polygon_mask(dot, poly)[0, 0]),
        None,
    )
    pool = [p for p in ground.communes if district is None or p.district_code == district]
    pool = pool or list(ground.communes)
    if not pool:
        return district or 0, 0
    cx, cy = to_utm([p.lat for p in pool], [p.lon for p in pool])
    nearest = pool[int(np.argmin((cx - x) ** 2 + (cy - y) ** 2))]
    return (district if district is not None else nearest.district_code), nearest.commune_code


def pick_footprint(ground: Ground, site: StandardSite, pick: Pick) -> npt.NDArray[np.bool_]:
    """The cells a pick's level clears the threshold in (for the picture and the map)."""
    grid, cfg = ground.grid, ground.config
    e = site_emitter(site, cfg, grid.res, pick.row, pick.col)
    box = e.box(*grid.shape)
    corr = class_corrections(site.band_mhz, cfg)[ground.land_use]
    shadow = None if ground.terrain is None else emitter_shadow(ground.terrain, e, grid.res)
    on = np.ones(len(e.azimuth), bool)
    levels = kernel_window(e, on, Templates.build(e.radius, grid.res), corr, box, shadow=shadow)
    out = np.zeros(grid.shape, bool)
    out[box[0] : box[1], box[2] : box[3]] = levels >= np.float32(
        cfg.thresholds_dbm[site.technology]
    )
    return out


# -- where the ground comes from ---------------------------------------------------------------
def ground_from_coverage(cov: Coverage, scenario: Scenario) -> Ground:
    """The seeds scenario's computed coverage (``--scenario``: every tower online)."""
    verdicts = {
        pc.place.place_id: (
            frozenset(o.value for o in pc.operators),
            frozenset(o.value for o in pc.unknown),
        )
        for (kind, _), pc in cov.current.items()
        if kind == "village"
    }
    return Ground(
        grid=cov.engine.grid,
        land_use=cov.engine.land_use,
        config=cov.engine.config,
        villages=tuple(p for p in cov.places if p.kind == "village"),
        verdicts=verdicts,
        outline=tuple(cov.outline),
        district_polygons={d.code: tuple(d.polygon) for d in scenario.districts},
        district_names={d.code: d.name for d in scenario.districts},
        communes=tuple(p for p in cov.places if p.kind == "commune"),
        roads=tuple(tuple(r.points) for r in scenario.roads),
        levels=operator_levels(cov.engine),
        terrain=cov.engine.ground,
    )


def ground_from_db(database_url: str, config: CoverageConfig, *, province: int | None) -> Ground:
    """The live ground of ``province`` (GSO code; None: the one province loaded): the places
    and verdicts the coverage service wrote (coverage_places), the grid and land use built as
    the service builds them, the roads, the map's rasters."""

    async def fetch() -> tuple[dict[str, list[dict[str, Any]]], Any]:
        conn = await aconnect(database_url)
        try:
            return await q.places(conn), await q.place_states(conn)
        finally:
            await conn.close()

    doc, states = asyncio.run(fetch())
    if not any(kind == "village" for kind, _ in states):
        raise ValueError(
            "no coverage in the database yet: run `ioc coverage run` (ioc up does), "
            "or pass --scenario"
        )
    # No towers: only the grid, land use and places, exactly as the service derives them.
    parts, _ = split_provinces(doc, [])
    if province is None and len(parts) == 1:
        province = next(iter(parts))
    if province not in parts:
        raise ValueError(f"province {province} is not one of those loaded: {sorted(parts)}")
    base = build_coverage(parts[province].doc, [], config, province=province)
    with connect(database_url) as conn:
        features = map_features(conn, scope=Scope.of([province]))
        roads = [f["points"] for f in features if f["kind"] == "road"]
        ops = [*(o.value for o in Operator), ANY]
        rasters = {op: read_raster(conn, op, province=province) for op in ops}
    grid = base.engine.grid
    levels = {
        op: r.dbm()
        for op, r in rasters.items()
        if r is not None
        and (r.grid.rows, r.grid.cols, r.grid.res_m) == (grid.rows, grid.cols, grid.res)
    }
    return Ground(
        grid=grid,
        land_use=base.engine.land_use,
        config=config,
        villages=tuple(p for p in base.places if p.kind == "village"),
        verdicts={
            pid: (frozenset(ops), frozenset(unknown))
            for (kind, pid), (ops, unknown) in states.items()
            if kind == "village"
        },
        outline=tuple(base.outline),
        district_polygons={d["code"]: _points(d["polygon"]) for d in doc["districts"]},
        district_names={d["code"]: d["name"] for d in doc["districts"]},
        communes=tuple(p for p in base.places if p.kind == "commune"),
        roads=tuple(_points(r) for r in roads),
        levels=levels,
        terrain=base.engine.ground,
    )


def _points(value: Any) -> tuple[LatLon, ...]:
    points = msgspec.json.decode(value) if isinstance(value, str | bytes) else value
    return tuple((float(p[0]), float(p[1])) for p in points)
