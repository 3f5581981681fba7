"""A generated province's synthetic shapes: outline, commune cells and district polygons.

No boundary data ships with the project, so the shapes are drawn from the communes' geocoded
positions (vietnamadminunits): each commune gets its nearest-commune (Voronoi) cell among the
communes of its province *and* of its neighbours, so that a province's edge runs midway between
its communes and the next province's; where there is no neighbour (sea, border) a cell reaches
at most REACH_FACTOR times the commune's spacing. The union of the province's cells, largest
part, holes filled and simplified, is the outline. **Synthetic and approximate**: good to a few
kilometres, not a survey. Everything is in the local projection (``seeds.geo``), kilometres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.ops import nearest_points

from seeds.geo import FloatArray

NEIGHBOUR_MARGIN_KM = 25.0  # communes of other provinces this far around the box take part
REACH_FACTOR = 1.5  # a cell reaches at most this many times the distance to the nearest commune
REACH_KM = (2.0, 12.0)  # ... and at least / at most this far
SIMPLIFY_KM = 0.2
DUPLICATE_KM = 0.05  # positions closer than this are spread apart (geocoders repeat positions)
SPREAD_KM = 0.6  # ... on a spiral, this step apart


@dataclass(frozen=True)
class Shapes:
    outline: Polygon
    cells: list[Polygon]  # one per commune, in the order given, inside the outline
    centres: FloatArray  # the communes' centres, (n, 2): spread and moved inside
    moved: list[int]  # indices of communes whose position lay outside the outline


def spread_duplicates(xy: FloatArray) -> FloatArray:
    """Positions that coincide (within DUPLICATE_KM) move apart on a small spiral, in order."""
    out = xy.copy()
    for i in range(1, len(out)):
        k = 0
        while np.hypot(*(out[:i] - out[i]).T).min() < DUPLICATE_KM:
            k += 1
            angle = 2.39996 * k  # the golden angle: successive offsets never line up
            out[i] = xy[i] + SPREAD_KM * np.sqrt(k) * np.array([np.cos(angle), np.sin(angle)])
    return out


def _largest(geom: shapely.Geometry) -> Polygon:
    parts = list(getattr(geom, "geoms", [geom]))
    polys = [p for p in parts if isinstance(p, Polygon) and not p.is_empty]
    best = max(polys, key=lambda p: p.area)
    return Polygon(best.exterior)  # holes filled: a lake or a missing commune is still ours


def draw(xy: FloatArray, neighbours: FloatArray) -> Shapes:
    """Shapes for communes at ``xy`` (n, 2) among ``neighbours`` (m, 2) of other provinces."""
    xy = spread_duplicates(xy)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    near = neighbours[
        np.all(
            (neighbours >= lo - NEIGHBOUR_MARGIN_KM) & (neighbours <= hi + NEIGHBOUR_MARGIN_KM),
            axis=1,
        )
    ]
    # Voronoi wants distinct generators: neighbours' repeated positions count once
    others = np.unique(np.round(np.asarray(near, dtype=np.float64).reshape(-1, 2), 2), axis=0)
    if len(others):  # a neighbour on top of one of ours would take its cell
        clash = np.hypot(others[:, None, 0] - xy[:, 0], others[:, None, 1] - xy[:, 1]).min(axis=1)
        others = others[clash >= DUPLICATE_KM]
    generators = np.vstack([xy, others])
    extent = shapely.box(*(lo - 3 * REACH_KM[1]), *(hi + 3 * REACH_KM[1]))
    cells_all = shapely.voronoi_polygons(MultiPoint(generators), extend_to=extent, ordered=True)
    gap = np.hypot(xy[:, None, 0] - generators[:, 0], xy[:, None, 1] - generators[:, 1])
    gap[np.arange(len(xy)), np.arange(len(xy))] = np.inf
    reach = np.clip(REACH_FACTOR * gap.min(axis=1), *REACH_KM)
    raw = [
        shapely.intersection(cells_all.geoms[i], Point(p).buffer(float(r), quad_segs=8))
        for i, (p, r) in enumerate(zip(xy, reach, strict=True))
    ]
    outline = _largest(shapely.union_all(raw).buffer(0.01).simplify(SIMPLIFY_KM))
    inner = outline.buffer(-0.5)
    centres = xy.copy()
    moved = []
    for i, p in enumerate(xy):
        if not outline.contains(Point(p)):  # an island, or a cell cut off: onto the mainland
            moved.append(i)
            _, q = nearest_points(Point(p), inner if not inner.is_empty else outline)
            centres[i] = (q.x, q.y)
    cells = []
    for i, cell in enumerate(raw):
        mine = _largest_or_empty(shapely.intersection(cell, outline))
        if i in moved or mine is None or not mine.contains(Point(centres[i])):
            mine = _largest(Point(centres[i]).buffer(1.5).intersection(outline))
        cells.append(mine)
    return Shapes(outline, cells, centres, moved)


def _largest_or_empty(geom: shapely.Geometry) -> Polygon | None:
    return None if shapely.is_empty(geom) or shapely.area(geom) == 0 else _largest(geom)


def district_polygon(cells: list[Polygon], outline: Polygon) -> Polygon:
    """The union of a district's commune cells (largest part), simplified, inside the outline."""
    union = shapely.union_all(cells).buffer(0.01).simplify(SIMPLIFY_KM)
    return _largest(union.intersection(outline))


def ring(poly: Polygon) -> FloatArray:
    """The exterior as an (n, 2) array without the repeated closing vertex."""
    return np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]


def sample_in(
    cell: Polygon, centre: FloatArray, n: int, sd_km: float, rng: np.random.Generator
) -> FloatArray:
    """n points inside ``cell`` (shrunk a little where it can be), normal around ``centre``;
    nearest the centre first."""
    area = cell.buffer(-0.15)
    area = area if not area.is_empty and area.area > 0.25 else cell
    out = np.empty((0, 2))
    for _ in range(30):
        cand = centre + rng.normal(0.0, sd_km, size=(4 * n, 2))
        out = np.vstack([out, cand[shapely.contains_xy(area, cand[:, 0], cand[:, 1])]])
        if len(out) >= n:
            break
    if len(out) < n:  # a sliver: points on the way to its representative point
        inside = np.array(area.representative_point().coords[0])
        t = rng.uniform(0.2, 0.9, size=(n - len(out), 1))
        out = np.vstack([out, centre + t * (inside - centre)])
    out = out[:n]
    return np.asarray(out[np.argsort(np.hypot(*(out - centre).T), kind="stable")])
