"""A synthetic elevation model of Bình Định for the coverage engine's terrain (issue 20).

    python -m seeds.terrain            # write seeds/data/binh_dinh_dem.tif
    python -m seeds.terrain --check    # exit 1 if the committed file differs

Made from the scenario's own geometry, deterministically (fixed seed, numpy only), and written
like SRTM / Copernicus GLO-30 (EPSG:4326, int16 metres) so that it goes through the same reading
and reprojection as a real DEM. **Synthetic**: it has the province's shape (mountainous west,
coastal plain, sea), not its surveyed relief. How it is built:

1. upland weight: 1 in the mountainous districts (west Hoài Ân and west Tây Sơn ramp in), 0 in
   the coastal ones, blurred over a few kilometres; beyond the western border a plateau;
2. uplands: ridged fractal noise between a valley-floor level (rising slowly from the plain's
   edge inwards) and a crest level (rising westward); the plain: 0-40 m rising inland, with a
   few low hills; the sea 0 m;
3. settled ground is low: the relief is flat under every ordinary village and commune centre,
   along every road and along a valley from each village down to its commune centre, and comes
   back smoothly over 3 km beyond (people live low; roads run along valleys), so that
   neighbouring villages share broad valleys that the towers among them see into;
4. each cluster of seed dead-spot villages sits in an enclosure: a flat floor, steep inner
   walls, and a continuous crest ring 1.8 km from its nearest village, 720 m or more above
   the floor (the boundary of the union of the villages' disks, so it follows the cluster).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile

from seeds import geo, sources
from seeds.geo import FloatArray, LatLon

if TYPE_CHECKING:  # the scenario's inventory reads this DEM (seeds.bts): imported when run
    from seeds.scenario import Scenario

RNG_SEED = 20  # issue 20
PX_PER_DEG = 400  # 0.0025 deg, ~275 m: a third of SRTM3's pixels per side; small, enough relief
RES_DEG = 1 / PX_PER_DEG
MARGIN_DEG = 0.15  # around the outline's box: the engine's grid and paths reach past the border

# The coast: the outline's eastern vertices (from the north-east corner south), extended north
# (Quảng Ngãi) and south (Phú Yên) past the raster so that the sea has one edge everywhere.
COAST_FIRST_VERTEX, COAST_LAST_VERTEX = 4, 23
COAST_NORTH: tuple[LatLon, ...] = ((14.95, 108.90), (14.70, 109.04))
COAST_SOUTH: tuple[LatLon, ...] = ((13.50, 109.28), (13.40, 109.25), (13.25, 109.28))
SEA_EAST_LON = 109.8

# Not flagged mountainous, but mountainous west of this longitude (ramping in over RAMP_DEG);
# Hoài Ân is flagged, but only its west is mountains (SEED-FACTS).
WEST_RAMPS = {547: 108.88, 544: 109.00}
RAMP_DEG = 0.09

PLAIN_MAX_M = 40.0
FLOOR_M = (40.0, 300.0)  # valley floors of the uplands, from the plain's edge to deep inside
DEPTH_BLUR_KM = 8.0  # how far into the uplands the floors take to climb
CREST_M = (850.0, 1250.0)  # crest level of the uplands, east edge to far west
WESTNESS_KM = (5.0, 40.0)  # distance from the coast over which the uplands rise
PLATEAU_FLOOR_M, PLATEAU_TOP_M = 450.0, 820.0  # Kon Tum / Gia Lai beyond the western border
PLATEAU_KM = 8.0  # beyond the border, the mountains give way to the plateau over this distance

# Settled ground is low: the relief is flat under a place (PLACE_FLAT_KM) and along a road or
# a village's valley down to its commune centre (LINE_FLAT_KM), and comes back smoothly over
# SETTLED_RAMP_KM beyond, so that neighbouring places share broad valleys, not bowls.
PLACE_FLAT_KM, LINE_FLAT_KM = 0.4, 0.15
SETTLED_RAMP_KM = 3.0

SEED_FLOOR_M = 300.0
SEED_FLAT_KM = 0.5
# Every other village is >= 6 km from a seed village, every commune centre >= 13 km; the Vân
# Canh three span 5.8 km, so each village's own disk (not the cluster's hull) sets the ring, and
# a crest stands within 5 km on every bearing even looking past a neighbour.
SEED_CREST_KM = 1.8
SEED_RISE_M = 800.0  # crest above the floor, +-80 m of noise: never under 720 m
SEED_OUTER_KM = 2.5  # the crest's outer slope
SEED_CLUSTER_KM = 7.0  # seed villages closer than this share one enclosure

METHOD = (
    "numpy, seed 20: ridged fractal noise over an upland weight from the districts' "
    "mountainous flags (crests rising westward to ~1250 m, plateau beyond the western border), "
    "plain 0-40 m, sea 0 m; the relief flattened under every village, commune centre and road "
    "and coming back over 3 km (broad settled valleys); "
    "an enclosure (floor 300 m, crest ring 1.8 km out, >= 720 m above it) around each cluster "
    "of seed dead-spot villages"
)
TAGS = {
    "SYNTHETIC": "yes",
    "SOURCE": "python -m seeds.terrain",
    "METHOD": METHOD,
    "NOT_SURVEYED": (
        "invented terrain with the province's shape; not SRTM, not GLO-30, not any survey: "
        "use it only for the simulation"
    ),
    "VERTICAL_UNITS": "metre above sea level",
    "TIFFTAG_IMAGEDESCRIPTION": (
        "SYNTHETIC elevation model of Binh Dinh (Viet Nam) for the IOC coverage simulation, "
        "made by python -m seeds.terrain; not a survey"
    ),
}

Grid = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Terrain:
    heights: npt.NDArray[np.int16]  # metres, row 0 north
    transform: Affine  # EPSG:4326 degrees

    def height_at(self, xy: FloatArray) -> FloatArray:
        """Ground height at each projected point (``seeds.geo`` km), bilinear between the
        pixel centres; points off the raster take its edge."""
        h = self.heights
        lat, lon = geo.to_deg(xy[:, 0], xy[:, 1])
        col, row = ~self.transform @ (lon, lat)
        col = np.clip(np.asarray(col) - 0.5, 0.0, h.shape[1] - 1.001)
        row = np.clip(np.asarray(row) - 0.5, 0.0, h.shape[0] - 1.001)
        r0, c0 = row.astype(np.int64), col.astype(np.int64)
        fr, fc = row - r0, col - c0
        top = h[r0, c0] * (1 - fc) + h[r0, c0 + 1] * fc
        bottom = h[r0 + 1, c0] * (1 - fc) + h[r0 + 1, c0 + 1] * fc
        return np.asarray(top * (1 - fr) + bottom * fr, dtype=np.float64)


def grid_transform(outline: Sequence[LatLon]) -> tuple[Affine, int, int]:
    """The raster's transform, rows and columns: the outline's box plus the margin, snapped to
    whole pixels (counted in integers so that float noise never moves an edge)."""
    lat = [p[0] for p in outline]
    lon = [p[1] for p in outline]
    west = int(np.floor(round((min(lon) - MARGIN_DEG) * PX_PER_DEG, 6)))
    east = int(np.ceil(round((max(lon) + MARGIN_DEG) * PX_PER_DEG, 6)))
    south = int(np.floor(round((min(lat) - MARGIN_DEG) * PX_PER_DEG, 6)))
    north = int(np.ceil(round((max(lat) + MARGIN_DEG) * PX_PER_DEG, 6)))
    transform = Affine(RES_DEG, 0.0, west / PX_PER_DEG, 0.0, -RES_DEG, north / PX_PER_DEG)
    return transform, north - south, east - west


def _smoothstep(t: Grid) -> Grid:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss_matrix(n: int, sigma_px: float) -> Grid:
    i = np.arange(n, dtype=np.float64)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma_px) ** 2)
    out: Grid = g / g.sum(axis=1, keepdims=True)  # renormalised at the edges
    return out


def _blur(a: Grid, sigma_km: float, px_km: tuple[float, float]) -> Grid:
    """Separable Gaussian blur as two small matrix products (no scipy)."""
    gy = _gauss_matrix(a.shape[0], sigma_km / px_km[0])
    gx = _gauss_matrix(a.shape[1], sigma_km / px_km[1])
    out: Grid = gy @ a @ gx.T
    return out


def _noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_km: float, px_km: tuple[float, float]
) -> Grid:
    """Smooth Gaussian noise of unit standard deviation with correlation length ``sigma_km``."""
    n = _blur(rng.standard_normal(shape), sigma_km, px_km)
    out: Grid = (n - n.mean()) / n.std()
    return out


def _rank01(a: Grid) -> Grid:
    """Values replaced by their rank in [0, 1]: a uniform distribution, same ordering."""
    order = np.argsort(a, axis=None, kind="stable")
    r = np.empty(a.size, dtype=np.float64)
    r[order] = np.arange(a.size, dtype=np.float64) / (a.size - 1)
    return r.reshape(a.shape)


def _segments_distance(
    x: Grid,
    y: Grid,
    lines: Sequence[FloatArray],
    reach_km: float,
    px_km: tuple[float, float],
    origin: tuple[float, float],
) -> Grid:
    """Distance (km) from every cell to the nearest segment of the polylines (or point, for a
    one-vertex line), computed only within ``reach_km`` of each; inf beyond."""
    best = np.full(x.shape, np.inf)
    rows, cols = x.shape
    x0, y0 = origin  # cell (0, 0)
    for line in lines:
        pts = line if len(line) > 1 else np.vstack([line, line])
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            c0 = max(int((min(ax, bx) - reach_km - x0) / px_km[1]), 0)
            c1 = min(int((max(ax, bx) + reach_km - x0) / px_km[1]) + 2, cols)
            r0 = max(int((y0 - max(ay, by) - reach_km) / px_km[0]), 0)
            r1 = min(int((y0 - min(ay, by) + reach_km) / px_km[0]) + 2, rows)
            if c0 >= c1 or r0 >= r1:
                continue
            px, py = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1) if length2 else 0.0
            d = np.hypot(px - (ax + t * dx), py - (ay + t * dy))
            np.minimum(best[r0:r1, c0:c1], d, out=best[r0:r1, c0:c1])
    return best


def _polyline_distance(x: Grid, y: Grid, line: FloatArray) -> Grid:
    best = np.full(x.shape, np.inf)
    for (ax, ay), (bx, by) in itertools.pairwise(line):
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0, 1)
        best = np.minimum(best, np.hypot(x - (ax + t * dx), y - (ay + t * dy)))
    return best


def seed_clusters(scenario: Scenario) -> list[list[LatLon]]:
    """The seed dead-spot villages grouped by proximity (single linkage), one enclosure each."""
    seeds = [(v.lat, v.lon) for v in scenario.dead_spot_villages()]
    clusters: list[list[LatLon]] = []
    for p in seeds:
        near = [
            c for c in clusters if min(float(geo.haversine_km(*p, *q)) for q in c) < SEED_CLUSTER_KM
        ]
        merged = [p] + [q for c in near for q in c]
        clusters = [c for c in clusters if c not in near] + [merged]
    return clusters


def generate(scenario: Scenario | None = None) -> Terrain:
    """The synthetic DEM of the scenario (Bình Định by default). Only the places shape it,
    never the devices, so the inventory that stands on it does not feed back into it."""
    from seeds.scenario import load_scenario

    sc = scenario if scenario is not None else load_scenario()
    transform, rows, cols = grid_transform(sc.outline)
    rng = np.random.default_rng(RNG_SEED)

    lon = transform.c + (np.arange(cols) + 0.5) * transform.a
    lat = transform.f + (np.arange(rows) + 0.5) * transform.e
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    x, y = geo.to_km(lat2, lon2)
    px_km = (float(y[0, 0] - y[1, 0]), float(x[0, 1] - x[0, 0]))
    origin = (float(x[0, 0]), float(y[0, 0]))
    shape = (rows, cols)

    def km(points: Sequence[LatLon]) -> FloatArray:
        return geo.polygon_km(points)

    # Sea and distance from the coast
    coast_ll = (*COAST_NORTH, *sc.outline[COAST_FIRST_VERTEX : COAST_LAST_VERTEX + 1], *COAST_SOUTH)
    coast = km(coast_ll)
    sea_poly = km((*coast_ll, (coast_ll[-1][0], SEA_EAST_LON), (coast_ll[0][0], SEA_EAST_LON)))
    sea = geo.contains(sea_poly, x, y)
    d_coast = _polyline_distance(x, y, coast)
    westness = _smoothstep((d_coast - WESTNESS_KM[0]) / (WESTNESS_KM[1] - WESTNESS_KM[0]))

    # Upland weight: each cell's district is its nearest seat (the districts are those cells)
    seats = np.array(geo.to_km([d.lat for d in sc.districts], [d.lon for d in sc.districts])).T
    nearest = np.argmin(np.hypot(x[..., None] - seats[:, 0], y[..., None] - seats[:, 1]), axis=2)
    upland = np.zeros(shape)
    for i, d in enumerate(sc.districts):
        if d.code in WEST_RAMPS:
            w = np.clip((WEST_RAMPS[d.code] - lon2) / RAMP_DEG, 0.0, 1.0)
        else:
            w = np.full(shape, 1.0 if d.mountainous else 0.0)
        upland = np.where(nearest == i, w, upland)
    outline = km(sc.outline)
    inside = geo.contains(outline, x, y)
    beyond = np.where(inside | sea, 0.0, geo.boundary_distance(outline, x, y))
    upland = np.where(sea, 0.0, upland)
    # how deep into the uplands: valley floors climb slowly from where the plain ends
    depth = np.clip((_blur(upland, DEPTH_BLUR_KM, px_km) - 0.5) / 0.5, 0.0, 1.0)
    upland = np.clip(_blur(upland, 3.0, px_km), 0.0, 1.0)
    plateau = _smoothstep(beyond / PLATEAU_KM)  # north and south too: uplands there as well

    # Uplands: ridged fractal noise, ranked to a uniform [0, 1] and shaped
    ridged = np.zeros(shape)
    for sigma_km, weight in ((6.0, 1.0), (3.0, 0.55), (1.5, 0.3), (0.75, 0.15)):
        n = _noise(rng, shape, sigma_km, px_km)
        ridged += weight * (1.0 - np.clip(np.abs(n) / 2.0, 0.0, 1.0)) ** 2
    ridged += 0.6 * _noise(rng, shape, 12.0, px_km)  # massifs and basins
    r = _rank01(ridged) ** 0.7
    floor_up = FLOOR_M[0] + (FLOOR_M[1] - FLOOR_M[0]) * depth
    top_up = CREST_M[0] + (CREST_M[1] - CREST_M[0]) * westness
    floor_up = (1 - plateau) * floor_up + plateau * PLATEAU_FLOOR_M
    top_up = (1 - plateau) * top_up + plateau * PLATEAU_TOP_M
    up = floor_up + (top_up - floor_up) * r

    # Plain: rising inland to 40 m, a little roughness, a few low hills
    plain = np.minimum(2.0 + 1.0 * d_coast, PLAIN_MAX_M) + 3.0 * _noise(rng, shape, 1.5, px_km)
    plain = np.clip(plain, 1.0, PLAIN_MAX_M)
    hills = 150.0 * np.clip((_noise(rng, shape, 2.0, px_km) - 1.2) / 1.3, 0.0, 1.0) ** 1.3

    raw = (1 - upland) * (plain + hills) + upland * up
    floor = (1 - upland) * plain + upland * floor_up

    # Carve under places and along roads, down to the valley floor
    places = [(v.lat, v.lon) for v in sc.villages if not v.seed_dead_spot]
    places += [(c.lat, c.lon) for c in sc.communes]
    place_lines = [km([p]) for p in places]
    d_place = _segments_distance(x, y, place_lines, PLACE_FLAT_KM + SETTLED_RAMP_KM, px_km, origin)
    # roads, and a side valley from each village down to its commune centre (rivers join)
    centre = {c.code: (c.lat, c.lon) for c in sc.communes}
    roads = [km(r.points) for r in sc.roads]
    sides = [
        km([(v.lat, v.lon), centre[v.commune_code]]) for v in sc.villages if not v.seed_dead_spot
    ]
    reach = LINE_FLAT_KM + SETTLED_RAMP_KM
    d_line = np.minimum(
        _segments_distance(x, y, roads, reach, px_km, origin),
        _segments_distance(x, y, sides, reach, px_km, origin),
    )
    settled = np.minimum(d_place - PLACE_FLAT_KM, d_line - LINE_FLAT_KM)
    keep = _smoothstep(settled / SETTLED_RAMP_KM)
    h = np.where(raw > floor, floor + (raw - floor) * keep, raw)

    # Seed enclosures: overwrite inside the crest ring, raise the ring's outer slope
    rise = SEED_RISE_M + 80.0 * np.clip(_noise(rng, shape, 1.0, px_km) / 2.5, -1.0, 1.0)
    for cluster in seed_clusters(sc):
        d_seed = _segments_distance(
            x, y, [km([p]) for p in cluster], SEED_CREST_KM + SEED_OUTER_KM, px_km, origin
        )
        inner = SEED_FLOOR_M + rise * _smoothstep(
            (d_seed - SEED_FLAT_KM) / (SEED_CREST_KM - SEED_FLAT_KM)
        )
        outer = (SEED_FLOOR_M + rise) * (1 - _smoothstep((d_seed - SEED_CREST_KM) / SEED_OUTER_KM))
        h = np.where(d_seed < SEED_CREST_KM, inner, np.maximum(h, outer))

    h = np.where(sea, 0.0, np.maximum(h, 1.0))
    return Terrain(np.rint(h).astype(np.int16), transform)


def geotiff_bytes(terrain: Terrain) -> bytes:
    """The DEM as a GeoTIFF: EPSG:4326, int16, DEFLATE + horizontal predictor, tagged synthetic;
    no nodata, no timestamps (same bytes on every run)."""
    rows, cols = terrain.heights.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "int16",
        "crs": "EPSG:4326",
        "transform": terrain.transform,
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 9,
        "tiled": False,
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.update_tags(**TAGS)
            dst.set_band_description(1, "height (m), synthetic")
            dst.units = ("metre",)
            dst.write(terrain.heights, 1)
        return bytes(mem.read())


def read(path: Path) -> Terrain:
    with rasterio.open(path) as src:
        return Terrain(src.read(1), src.transform)


def check(path: Path, data: bytes) -> str | None:
    """Why the file at ``path`` is not ``data``, in one line; None when it is."""
    if not path.exists():
        return f"{path}: missing; write it with python -m seeds.terrain"
    if path.read_bytes() == data:
        return None
    try:
        with MemoryFile(data) as mem, mem.open() as fresh, rasterio.open(path) as old:
            same = (
                old.shape == fresh.shape
                and old.transform == fresh.transform
                and old.tags() == fresh.tags()
                and bool(np.array_equal(old.read(1), fresh.read(1)))
            )
    except RasterioError:
        same = False  # not a readable GeoTIFF: it differs
    if same:  # e.g. another GDAL build's DEFLATE
        return f"{path}: same heights and tags, different bytes (another GDAL/zlib build?)"
    return f"{path}: differs from what python -m seeds.terrain writes; rerun it"


def main(argv: list[str]) -> None:
    data = geotiff_bytes(generate())
    path = sources.SCENARIO_DEM
    if argv == ["--check"]:
        problem = check(path, data)
        print(problem or f"{path}: up to date")
        raise SystemExit(1 if problem else 0)
    path.write_bytes(data)
    print(f"wrote {path} ({len(data):,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
