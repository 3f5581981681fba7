"""Land use per raster cell, from the scenario's towns and where its people live.

- urban: within URBAN_RADIUS_M of the centre of a ward (phường) or district town (thị trấn);
- suburban: where the villages' population density, averaged over a few km, reaches
  SUBURBAN_DENSITY_PER_KM2; and the forested hills of the mountainous districts, away from
  their villages (see MOUNTAIN_NOTE);
- rural-open: everything else (rice fields, coastal plain, open valleys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.radio import LandUse
from processing.coverage.grid import Grid, polygon_mask, to_utm

URBAN_RADIUS_M = 1200.0
SUBURBAN_DENSITY_PER_KM2 = 600.0
DENSITY_BLOCK_M = 1000.0  # density is counted in 1 km blocks...
DENSITY_SMOOTH_BLOCKS = 1  # ...averaged over the blocks this many away (3 × 3 km)
# Hata's open-area correction is for flat open land with nothing in the way. The western
# districts' forested hills are not that: the forest is clutter, and the nearest of the three
# classes is suburban (the ridges themselves are the terrain model's, processing/coverage/
# terrain.py); open valleys around their villages stay rural-open.
MOUNTAIN_NOTE = "forested hills of the mountainous districts are classed suburban"
MOUNTAIN_VILLAGE_CLEAR_M = 1500.0


@dataclass(frozen=True, slots=True)
class PlacePoint:
    lat: float
    lon: float
    population: int
    town: bool  # a ward or district-town centre


def land_use(
    grid: Grid,
    places: Sequence[PlacePoint],
    *,
    mountain_polygons: Sequence[Sequence[tuple[float, float]]] = (),
) -> npt.NDArray[np.int8]:
    out = np.full(grid.shape, LandUse.RURAL_OPEN, dtype=np.int8)
    lat = np.array([p.lat for p in places], np.float64)
    lon = np.array([p.lon for p in places], np.float64)
    pop = np.array([p.population for p in places], np.float64)
    town = np.array([p.town for p in places], bool)
    x, y = to_utm(lat, lon)
    xs, ys = grid.col_x(), grid.row_y()

    if mountain_polygons:
        hills = np.zeros(grid.shape, bool)
        for poly in mountain_polygons:
            hills |= polygon_mask(grid, poly)
        near = _near(grid, x[~town], y[~town], MOUNTAIN_VILLAGE_CLEAR_M)
        out[hills & ~near] = LandUse.SUBURBAN

    # population density on 1 km blocks, smoothed with a box filter
    block = round(DENSITY_BLOCK_M / grid.res)
    nb_r, nb_c = -(-grid.rows // block), -(-grid.cols // block)
    r, c, inside = grid.cell_of_xy(x, y)
    dens = np.zeros((nb_r, nb_c))
    np.add.at(dens, (r[inside] // block, c[inside] // block), pop[inside])
    k = DENSITY_SMOOTH_BLOCKS
    padded = np.pad(dens, k)
    smooth: npt.NDArray[np.float64] = (
        sum(  # type: ignore[assignment]
            padded[k + i : k + i + nb_r, k + j : k + j + nb_c]
            for i in range(-k, k + 1)
            for j in range(-k, k + 1)
        )
        / ((2 * k + 1) ** 2 * (DENSITY_BLOCK_M / 1000.0) ** 2)
    )
    dense = smooth[np.arange(grid.rows)[:, None] // block, np.arange(grid.cols)[None, :] // block]
    out[dense >= SUBURBAN_DENSITY_PER_KM2] = LandUse.SUBURBAN

    for tx, ty in zip(x[town], y[town], strict=True):
        rows = np.abs(ys - ty) <= URBAN_RADIUS_M
        cols = np.abs(xs - tx) <= URBAN_RADIUS_M
        if rows.any() and cols.any():
            r0, r1 = np.nonzero(rows)[0][[0, -1]]
            c0, c1 = np.nonzero(cols)[0][[0, -1]]
            d2 = (ys[r0 : r1 + 1, None] - ty) ** 2 + (xs[None, c0 : c1 + 1] - tx) ** 2
            window = out[r0 : r1 + 1, c0 : c1 + 1]
            window[d2 <= URBAN_RADIUS_M**2] = LandUse.URBAN
    return out


def _near(
    grid: Grid, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], radius: float
) -> npt.NDArray[np.bool_]:
    """Cells within ``radius`` of any of the points (a disk stamped around each)."""
    out = np.zeros(grid.shape, bool)
    r, c, inside = grid.cell_of_xy(x, y)
    n = int(np.ceil(radius / grid.res))
    di, dj = np.mgrid[-n : n + 1, -n : n + 1]
    disk = (di * grid.res) ** 2 + (dj * grid.res) ** 2 <= radius**2
    for rr, cc in zip(r[inside], c[inside], strict=True):
        r0, c0 = rr - n, cc - n
        rs, cs = (
            slice(max(r0, 0), min(rr + n + 1, grid.rows)),
            slice(max(c0, 0), min(cc + n + 1, grid.cols)),
        )
        out[rs, cs] |= disk[rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0]
    return out
