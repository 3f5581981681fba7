"""The stored coverage raster (store/coverage_rasters.py) as one image for a deck.gl
``BitmapLayer``: resampled from the engine's UTM grid onto the Web Mercator frame of
dashboard/background.py, coloured by level band, as a palette PNG in a data URL.

The map fragment reruns every few seconds; the image is rebuilt only when the coverage service
wrote a new raster: it is cached on (operator, computed_at). Which grid cell each pixel shows
depends on the grid alone, so that mapping (a pyproj transform of every pixel) is cached too.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from PIL import Image, ImageDraw
from pyproj import Transformer

from dashboard.background import Frame, _data_url, fingerprint, mercator_y
from store import coverage_rasters
from store.coverage_rasters import RasterGrid
from store.scope import Scope

I32 = npt.NDArray[np.int32]
M_PER_DEG = 111_320.0  # a degree of longitude at the equator, WGS 84
# Received level → colour (RGBA): the usual RSRP bands, good ≥ −95 dBm, fair ≥ −105, poor
# ≥ −115 (the 4G floor: weaker is no signal). Translucent, so districts and roads show through.
LEVEL_BANDS: tuple[tuple[float, tuple[int, int, int, int]], ...] = (
    (-95.0, (39, 174, 96, 150)),
    (-105.0, (241, 196, 15, 150)),
    (-115.0, (230, 126, 34, 150)),
)
# No signal: a faint red, so a dark area reads as "none" rather than "not drawn". Outside the
# province (sea, neighbours) nothing is drawn: the grid's rectangle would frame it otherwise.
NO_SIGNAL = (192, 57, 43, 80)
TRANSPARENT = (0, 0, 0, 0)


@dataclass(frozen=True)
class RasterImage:
    png: bytes
    frame: Frame
    operator: str
    computed_at: datetime
    build_s: float  # time to decode, resample, colour and encode it

    @cached_property
    def data_url(self) -> str:
        return _data_url(self.png)


def frame_of(grid: RasterGrid) -> Frame:
    """A Mercator frame around the grid's lon/lat box, about one pixel a cell."""
    mid = math.radians((grid.south + grid.north) / 2)
    px_per_deg = M_PER_DEG * math.cos(mid) / grid.res_m
    return Frame.around([(grid.south, grid.west), (grid.north, grid.east)], px_per_deg)


# The grid's projection is smooth at this scale: pixels are projected on a lattice this many
# pixels apart and interpolated between (off by far less than a cell), not one by one.
LATTICE_PX = 16


def _lattice(n: int) -> npt.NDArray[np.float64]:
    """Pixel positions of the lattice along an axis of ``n`` pixels, both ends included."""
    return np.unique(np.append(np.arange(0, n, LATTICE_PX), n - 1)).astype(np.float64)


def _lerp(at: npt.NDArray[np.float64], values: npt.NDArray[np.float64], n: int, axis: int) -> Any:
    """``values`` given at lattice positions ``at`` along ``axis``, linearly at 0..n-1."""
    k = np.clip(np.searchsorted(at, np.arange(n), side="right") - 1, 0, max(len(at) - 2, 0))
    k1 = np.minimum(k + 1, len(at) - 1)
    w = (np.arange(n) - at[k]) / np.where(k1 > k, at[k1] - at[k], 1.0)
    shape = [1, 1]
    shape[axis] = n
    lo, hi = np.take(values, k, axis=axis), np.take(values, k1, axis=axis)
    return lo + (hi - lo) * w.reshape(shape)


@lru_cache(maxsize=4)
def cell_index(grid: RasterGrid) -> tuple[Frame, I32]:
    """The frame, and for each of its pixels the flat grid cell under its centre (−1: none)."""
    frame = frame_of(grid)
    cols, rows = _lattice(frame.width), _lattice(frame.height)
    lon = frame.west + (cols + 0.5) / frame.width * (frame.east - frame.west)
    # Rows are evenly spaced in Mercator y (background.Frame.pixel): its inverse, per row.
    top, bottom = mercator_y(frame.north), mercator_y(frame.south)
    merc = top - (rows + 0.5) / frame.height * (top - bottom)
    lat = np.degrees(2 * np.arctan(np.exp(merc)) - math.pi / 2)
    lon2, lat2 = np.meshgrid(lon, lat)
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    xn, yn = (np.asarray(v, np.float64) for v in to_grid.transform(lon2, lat2))
    x = _lerp(rows, _lerp(cols, xn, frame.width, 1), frame.height, 0)
    y = _lerp(rows, _lerp(cols, yn, frame.width, 1), frame.height, 0)
    c = np.floor((x - grid.x0_m) / grid.res_m)
    r = np.floor((grid.y0_m - y) / grid.res_m)
    inside = (r >= 0) & (r < grid.rows) & (c >= 0) & (c < grid.cols)
    flat = np.where(inside, r * grid.cols + c, -1).astype(np.int32)
    return frame, flat


def province_mask(frame: Frame, districts: Sequence[dict[str, Any]]) -> npt.NDArray[np.bool_]:
    """Pixels inside a district (``store.places.districts`` rows, polygons as [lat, lon])."""
    mask = Image.new("1", (frame.width, frame.height), 0)
    draw = ImageDraw.Draw(mask)
    for d in districts:
        ring = [frame.pixel(float(p[0]), float(p[1])) for p in d["polygon"]]
        draw.polygon(ring, fill=1)
    return np.asarray(mask, bool)


# Palette entries of the image: what each pixel is.
OUTSIDE, NONE = 0, 1
PALETTE = (TRANSPARENT, NO_SIGNAL, *(rgba for _, rgba in LEVEL_BANDS))


def band_index(dbm: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Palette entry per level: NONE for NaN or below the last band, else 2 + its band."""
    out = np.full(dbm.shape, NONE, np.uint8)
    with np.errstate(invalid="ignore"):
        for k in range(len(LEVEL_BANDS) - 1, -1, -1):  # weakest first, stronger overwrite
            out[dbm >= LEVEL_BANDS[k][0]] = 2 + k
    return out


def render(raster: coverage_rasters.CoverageRaster, mask: npt.NDArray[np.bool_] | None) -> bytes:
    """The palette PNG of one raster, drawn within ``mask`` (None: signal only, everywhere)."""
    _, flat = cell_index(raster.grid)
    bands = band_index(raster.dbm()).ravel()
    idx = np.where(flat >= 0, bands[np.maximum(flat, 0)], OUTSIDE)
    if mask is None:
        idx[idx == NONE] = OUTSIDE
    else:
        idx[~mask] = OUTSIDE
    image = Image.fromarray(idx.astype(np.uint8), mode="P")
    image.putpalette([v for rgba in PALETTE for v in rgba], rawmode="RGBA")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# A few images a province for a national view's provinces (a PNG is ~100 kB to 1 MB).
CACHED_IMAGES = 64
_cache: dict[tuple[int, str, datetime], RasterImage] = {}
_masks: dict[tuple[Frame, str], npt.NDArray[np.bool_] | None] = {}
_lock = threading.Lock()  # Streamlit runs sessions on threads: build once, not once each


def cached(
    conn: psycopg.Connection,
    province: int,
    operator: str,
    computed_at: datetime,
    districts: Sequence[dict[str, Any]] = (),
) -> RasterImage | None:
    """The image of ``province``'s ``operator`` raster as computed at ``computed_at``, read and
    drawn only the first time that is asked for (the latest few kept). The province's outline
    (its ``districts``) is taken when it is drawn: places change with a scenario, whose new
    towers bring a new raster. Provinces share a rebuild's stamp: the key holds the province."""
    with _lock:
        if (province, operator, computed_at) in _cache:
            return _cache[(province, operator, computed_at)]
        t0 = time.perf_counter()
        raster = coverage_rasters.read_raster(conn, operator, province=province)
        if raster is None:
            return None
        frame, _ = cell_index(raster.grid)
        shape = fingerprint(list(districts), [], 0)
        if (frame, shape) not in _masks:
            _masks[(frame, shape)] = province_mask(frame, districts) if districts else None
        mask = _masks[(frame, shape)]
        png = render(raster, mask)
        image = RasterImage(png, frame, operator, raster.computed_at,
                            time.perf_counter() - t0)  # fmt: skip
        if len(_cache) >= CACHED_IMAGES:
            _cache.pop(next(iter(_cache)))
        # Keyed on the stamp read: a raster rewritten in between is drawn again next time.
        _cache[(province, operator, raster.computed_at)] = image
        return image


def images(
    conn: psycopg.Connection,
    operator: str,
    districts: Sequence[dict[str, Any]],
    *,
    scope: Scope,
) -> list[RasterImage]:
    """``operator``'s (or "any") raster of each province of ``scope`` that has one, each within
    its own districts (``store.places.districts`` rows of the scope). Every refresh reads only
    the stamps; a raster itself when its stamp moved."""
    found = []
    for (province, op), stamp in sorted(coverage_rasters.stamps(conn, scope=scope).items()):
        if op != operator:
            continue
        own = [d for d in districts if d["province_code"] == province]
        image = cached(conn, province, operator, stamp, own)
        if image is not None:
            found.append(image)
    return found
