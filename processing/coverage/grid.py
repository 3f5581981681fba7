"""The province raster: a north-up grid in metres on UTM zone 49N (EPSG:32649).

Row 0 is the northern edge. Cell (r, c) has its centre at
``(x0 + (c + 0.5)·res, y0 − (r + 0.5)·res)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UTM49N = "EPSG:32649"  # WGS 84 / UTM zone 49N: Bình Định lies at 108.6–109.4° E (zone 49)


@functools.cache
def _to_utm() -> Transformer:
    return Transformer.from_crs("EPSG:4326", UTM49N, always_xy=True)


@functools.cache
def _to_wgs84() -> Transformer:
    return Transformer.from_crs(UTM49N, "EPSG:4326", always_xy=True)


def to_utm(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = _to_utm().transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def to_latlon(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon, lat = _to_wgs84().transform(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return np.asarray(lat, np.float64), np.asarray(lon, np.float64)


@dataclass(frozen=True, slots=True)
class Grid:
    x0: float  # western edge, m
    y0: float  # northern edge, m
    res: float
    rows: int
    cols: int

    @classmethod
    def around(cls, outline: Sequence[tuple[float, float]], res: float) -> Grid:
        """The smallest grid, on multiples of ``res``, that holds the (lat, lon) outline."""
        pts = np.asarray(outline, np.float64)
        x, y = to_utm(pts[:, 0], pts[:, 1])
        x0, x1 = np.floor(x.min() / res) * res, np.ceil(x.max() / res) * res
        y0, y1 = np.floor(y.min() / res) * res, np.ceil(y.max() / res) * res
        return cls(float(x0), float(y1), res, round((y1 - y0) / res), round((x1 - x0) / res))

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def size(self) -> int:
        return self.rows * self.cols

    def col_x(self) -> FloatArray:
        return np.asarray(self.x0 + (np.arange(self.cols) + 0.5) * self.res, np.float64)

    def row_y(self) -> FloatArray:
        return np.asarray(self.y0 - (np.arange(self.rows) + 0.5) * self.res, np.float64)

    def cell_of_xy(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
        """(row, col, inside) of points in metres; row/col are clipped where outside."""
        c = np.floor((np.asarray(x, np.float64) - self.x0) / self.res)
        r = np.floor((self.y0 - np.asarray(y, np.float64)) / self.res)
        with np.errstate(invalid="ignore"):
            inside = (r >= 0) & (r < self.rows) & (c >= 0) & (c < self.cols)
        r = np.clip(np.nan_to_num(r, nan=0.0), 0, self.rows - 1).astype(np.int64)
        c = np.clip(np.nan_to_num(c, nan=0.0), 0, self.cols - 1).astype(np.int64)
        return r, c, inside

    def cell_of(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike
    ) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
        x, y = to_utm(lat, lon)
        return self.cell_of_xy(x, y)

    def centre_xy(self, r: npt.ArrayLike, c: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        rr, cc = np.asarray(r, np.float64), np.asarray(c, np.float64)
        return self.x0 + (cc + 0.5) * self.res, self.y0 - (rr + 0.5) * self.res


def polygon_mask(grid: Grid, polygon: Sequence[tuple[float, float]]) -> npt.NDArray[np.bool_]:
    """Cells whose centre lies inside a (lat, lon) polygon (even-odd rule, row by row)."""
    pts = np.asarray(polygon, np.float64)
    px, py = to_utm(pts[:, 0], pts[:, 1])
    xs, ys = grid.col_x(), grid.row_y()
    mask = np.zeros(grid.shape, dtype=bool)
    xj, yj = px[-1], py[-1]
    for xi, yi in zip(px, py, strict=True):
        crosses = (yi > ys) != (yj > ys)  # rows whose centre line this edge crosses
        if crosses.any():
            rows = np.nonzero(crosses)[0]
            x_cross = (xj - xi) * (ys[rows] - yi) / (yj - yi) + xi
            mask[rows] ^= xs[None, :] < x_cross[:, None]
        xj, yj = xi, yi
    return mask
