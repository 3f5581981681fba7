"""Plane geometry for a province-sized area: a local projection in kilometres and polygons.

Positions are (lat, lon) in degrees everywhere outside this module. Inside, the generator and
the inventory work in a local equirectangular projection centred on the province being built
(x east, y north, kilometres): Bình Định by default, another province inside ``centred_on``.
Over a province's 1–2° of latitude its scale error stays under about 1 %, well inside what a
synthetic scenario needs (the projection is only good near its centre, hence one per province).
Distances that tests compare use the haversine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
LatLon = tuple[float, float]

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
KM_PER_DEG = EARTH_RADIUS_KM * np.pi / 180.0
LAT0, LON0 = 14.1, 108.95  # projection centre, middle of Bình Định (the default)
# (lat0, lon0, cos lat0) of the projection in force; a context variable so that threads and
# tasks building different provinces never see each other's centre.
_CENTRE: ContextVar[tuple[float, float, float]] = ContextVar(
    "projection_centre", default=(LAT0, LON0, float(np.cos(np.radians(LAT0))))
)


@contextmanager
def centred_on(lat0: float, lon0: float) -> Iterator[None]:
    """Project around (lat0, lon0) inside the block (a generated province's centre)."""
    token = _CENTRE.set((lat0, lon0, float(np.cos(np.radians(lat0)))))
    try:
        yield
    finally:
        _CENTRE.reset(token)


def to_km(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Project degrees to local (x east, y north) kilometres."""
    lat0, lon0, cos0 = _CENTRE.get()
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    return (lon_a - lon0) * KM_PER_DEG * cos0, (lat_a - lat0) * KM_PER_DEG


def to_deg(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Local kilometres back to (lat, lon) degrees."""
    lat0, lon0, cos0 = _CENTRE.get()
    x_a = np.asarray(x, dtype=np.float64)
    y_a = np.asarray(y, dtype=np.float64)
    return lat0 + y_a / KM_PER_DEG, lon0 + x_a / (KM_PER_DEG * cos0)


def polygon_km(points: Sequence[LatLon]) -> FloatArray:
    """A (lat, lon) polygon as an (n, 2) array of projected (x, y) kilometres."""
    arr = np.asarray(points, dtype=np.float64)
    x, y = to_km(arr[:, 0], arr[:, 1])
    return np.column_stack([x, y])


def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance in kilometres; broadcasts like numpy."""
    p1, p2 = np.radians(np.asarray(lat1, float)), np.radians(np.asarray(lat2, float))
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a)), dtype=np.float64)


def contains(polygon: FloatArray, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Even-odd ray casting: which points (x, y) lie inside the polygon (n, 2)."""
    px = np.asarray(x, dtype=np.float64)
    py = np.asarray(y, dtype=np.float64)
    inside = np.zeros(np.broadcast(px, py).shape, dtype=bool)
    xj, yj = polygon[-1]
    for xi, yi in polygon:
        crosses = (yi > py) != (yj > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (py - yi) / (yj - yi) + xi
        inside ^= crosses & (px < x_cross)
        xj, yj = xi, yi
    return inside


def boundary_distance(polygon: FloatArray, x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """Distance from each point to the nearest edge of the polygon (same units)."""
    px = np.asarray(x, dtype=np.float64)
    py = np.asarray(y, dtype=np.float64)
    best = np.full(np.broadcast(px, py).shape, np.inf)
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0) if length2 else 0.0
        best = np.minimum(best, np.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return best


def clip_half_plane(polygon: FloatArray, normal: FloatArray, offset: float) -> FloatArray:
    """Sutherland–Hodgman: the part of the polygon where ``normal · p <= offset``."""
    out: list[FloatArray] = []
    n = len(polygon)
    for i in range(n):
        cur, nxt = polygon[i], polygon[(i + 1) % n]
        d_cur = float(normal @ cur) - offset
        d_nxt = float(normal @ nxt) - offset
        if d_cur <= 0:
            out.append(cur)
        if (d_cur < 0 < d_nxt) or (d_nxt < 0 < d_cur):
            out.append(cur + (nxt - cur) * (d_cur / (d_cur - d_nxt)))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def voronoi_cells(sites: FloatArray, outline: FloatArray) -> list[FloatArray]:
    """Nearest-site cells of ``sites`` (k, 2), each clipped to ``outline`` (bisector half-planes).

    Clipping a concave outline against half-planes can leave zero-width bridges along the cut;
    they do not change which points a cell contains.
    """
    cells: list[FloatArray] = []
    for i, site in enumerate(sites):
        cell = outline
        for j, other in enumerate(sites):
            if i != j:
                normal = other - site
                cell = clip_half_plane(cell, normal, float(normal @ (site + other) / 2))
        cells.append(cell)
    return cells


def area_km2(polygon: FloatArray) -> float:
    """Shoelace area of a projected polygon."""
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def nearest(
    sites_x: FloatArray, sites_y: FloatArray, x: npt.ArrayLike, y: npt.ArrayLike
) -> npt.NDArray[np.intp]:
    """Index of the nearest site for each point (planar)."""
    px = np.asarray(x, dtype=np.float64)[..., None]
    py = np.asarray(y, dtype=np.float64)[..., None]
    return np.asarray(np.argmin((px - sites_x) ** 2 + (py - sites_y) ** 2, axis=-1))
