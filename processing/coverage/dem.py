"""Ground heights on the coverage grid, from a digital elevation model (DEM) in a GeoTIFF.

SRTM and Copernicus GLO-30 come as 1° GeoTIFF tiles in EPSG:4326 at 1" (about 30 m); a
province spans several, merged with ``gdal_merge.py`` into one GeoTIFF or with ``gdalbuildvrt``
into a VRT, which is accepted when every file it draws on is a GeoTIFF. Any CRS GDAL knows is
reprojected onto the grid (UTM 49N): heights are averaged where the file's pixels are finer
than the grid's cells, interpolated bilinearly where they are coarser. Cells are judged by
their centres.

What cannot give a true raster is refused with one line (``DemError``): no file, not a
GeoTIFF, no CRS, a province not wholly covered, more than 10 % of it void. Smaller voids, and
the grid's cells beyond the province that the file leaves out (sea, the neighbour province),
are filled by interpolation from their edges, and the log says how many.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError, WindowError
from rasterio.fill import fillnodata
from rasterio.io import DatasetReader
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform, transform_bounds
from rasterio.windows import Window, from_bounds

from processing.coverage.config import CoverageConfig
from processing.coverage.grid import UTM49N, Grid, polygon_mask

log = logging.getLogger("ioc.coverage")
Heights = npt.NDArray[np.float32]

# SRTM's void is -32768, declared as nodata or not; no land lies below this.
VOID_BELOW_M = -1000.0
MAX_VOID_SHARE = 0.10  # of the province: more is not a DEM to plan radio on
FLAT_M = 1.0  # a province whose heights span less is a dummy or the wrong file
WHAT = "a GeoTIFF of ground heights in metres (SRTM, Copernicus GLO-30), or a VRT of such tiles"


class DemError(ValueError):
    """A DEM that cannot give the coverage grid its heights; one line, starting with the path,
    saying what is wrong and what to do."""


def load_dem(path: str | Path, grid: Grid, outline: Sequence[tuple[float, float]]) -> Heights:
    """Ground height, metres above sea level, at every cell centre of ``grid``: float32,
    ``grid.shape``, no NaN. ``outline``: the province's (lat, lon) polygon, which the file
    must cover."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DemError(f"{p}: no such file; give {WHAT}")
    with _open(p) as src:
        _check_format(p, src)
        _check_georeferenced(p, src)
        pixel_m = _pixel_m(src, outline)
        resampling = Resampling.average if pixel_m < grid.res else Resampling.bilinear
        heights, footprint = _warp(p, src, grid, resampling)
        crs = src.crs.to_string() if src.crs.to_epsg() else src.crs.to_wkt()[:60]
        reprojected = "the grid's CRS" if src.crs == UTM49N else f"reprojected to {UTM49N}"
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)

    province = polygon_mask(grid, outline)
    if not province.any():  # an outline narrower than a cell: judge the whole grid
        province = np.ones(grid.shape, dtype=bool)
    cells = int(province.sum())
    covered = int((province & footprint).sum())
    if covered < cells:
        lat = [a for a, _ in outline]
        lon = [b for _, b in outline]
        raise DemError(
            f"{p}: covers {math.floor(1000 * covered / cells) / 10:g} % of the province, not "
            f"all of it: the file spans lon {west:.3f} to {east:.3f}, lat {south:.3f} to "
            f"{north:.3f}, the province lon {min(lon):.3f} to {max(lon):.3f}, lat "
            f"{min(lat):.3f} to {max(lat):.3f}; give a DEM that covers it (tiles merged with "
            "gdalbuildvrt or gdal_merge.py)"
        )
    valid = np.isfinite(heights)
    voids = int((province & ~valid).sum())
    if voids > MAX_VOID_SHARE * cells:
        raise DemError(
            f"{p}: {voids / cells:.1%} of the province is void (nodata, NaN or below "
            f"{VOID_BELOW_M:g} m: {voids} of {cells} cells), more than "
            f"{MAX_VOID_SHARE:.0%}; give a void-filled DEM (SRTM v3, Copernicus GLO-30)"
        )
    beyond = int((~province & ~valid).sum())
    if voids or beyond:
        heights = _fill(heights, valid)
        log.log(
            logging.WARNING if voids else logging.INFO,
            "coverage: DEM %s: %d void cells in the province (%.1f %% of it: nodata, NaN or "
            "below %g m) and %d grid cells beyond it that the file leaves void or out (sea, "
            "the neighbour province) filled by interpolation from their edges",
            p, voids, 100 * voids / cells, VOID_BELOW_M, beyond,
        )  # fmt: skip
    low, high = float(heights[province].min()), float(heights[province].max())
    if high - low < FLAT_M:
        log.warning(
            "coverage: DEM %s: the province is flat in it (%.1f to %.1f m): probably the wrong "
            "file or a dummy; coverage sees no terrain",
            p, low, high,
        )  # fmt: skip
    log.info(
        "coverage: DEM %s: %s, pixels of %.0f m, %s on the %.0f m grid by %s; ground %.0f to "
        "%.0f m over the province",
        p, crs, pixel_m, reprojected, grid.res, resampling.name, low, high,
    )  # fmt: skip
    return np.ascontiguousarray(heights, dtype=np.float32)


@contextmanager
def _open(p: Path) -> Iterator[DatasetReader]:
    try:
        with warnings.catch_warnings():
            # A file without georeferencing is refused below, in words.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioError as err:
        reason = _first_line(err)
        if "not recognized" in reason or "not recognised" in reason:
            raise DemError(
                f"{p}: not a GeoTIFF (GDAL recognises no raster format in it); give {WHAT}"
            ) from None
        raise DemError(f"{p}: cannot be read ({reason}); give {WHAT}") from None
    with src:
        yield src


def _check_format(p: Path, src: DatasetReader, depth: int = 0) -> None:
    """A GeoTIFF, or a VRT whose every file is one (tiles merged by ``gdalbuildvrt``)."""
    if src.driver == "GTiff":
        return
    if src.driver != "VRT":
        with rasterio.Env() as env:
            name = env.drivers().get(src.driver, src.driver)
        raise DemError(
            f"{p}: not a GeoTIFF: GDAL reads it as {name} ({src.driver}); convert it "
            f"(gdal_translate -of GTiff {p} dem.tif) or give {WHAT}"
        )
    for tile in src.files[1:]:
        if depth > 4:
            raise DemError(f"{p}: VRTs nested too deep; give {WHAT}")
        try:
            with _open(Path(tile)) as part:
                _check_format(Path(tile), part, depth + 1)
        except DemError as err:
            raise DemError(f"{p}: a VRT over {err}") from None


def _check_georeferenced(p: Path, src: DatasetReader) -> None:
    fix = f"SRTM and GLO-30 tiles are EPSG:4326: gdal_edit.py -a_srs EPSG:4326 {p}"
    if src.crs is None:
        raise DemError(f"{p}: has no CRS, so its heights cannot be placed on the map ({fix})")
    if src.transform.is_identity:
        raise DemError(
            f"{p}: has no geotransform, so its pixels cannot be placed on the map; georeference "
            f"it (gdal_translate -a_ullr) or give {WHAT}"
        )


def _pixel_m(src: DatasetReader, outline: Sequence[tuple[float, float]]) -> float:
    """The file's pixel size in metres on the ground, at the province's centre."""
    lat = float(np.mean([a for a, _ in outline]))
    lon = float(np.mean([b for _, b in outline]))
    (x,), (y,) = transform("EPSG:4326", src.crs, [lon], [lat])
    a, b = src.res
    xs, ys = transform(src.crs, UTM49N, [x, x + a, x], [y, y, y + b])
    dx = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    dy = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    return math.sqrt(dx * dy)


def _window(src: DatasetReader, grid: Grid) -> Window | None:
    """The part of the file under the grid, a few pixels to spare; None: none of it.
    A country's VRT is not read whole."""
    if not src.transform.is_rectilinear:
        return Window(0, 0, src.width, src.height)
    left, top = grid.x0, grid.y0
    right, bottom = left + grid.cols * grid.res, top - grid.rows * grid.res
    w, s, e, n = transform_bounds(UTM49N, src.crs, left, bottom, right, top, densify_pts=21)
    a, b = src.res
    window = from_bounds(w - 3 * a, s - 3 * b, e + 3 * a, n + 3 * b, transform=src.transform)
    window = window.round_offsets().round_lengths()  # the spare pixels absorb the rounding
    try:
        return window.intersection(Window(0, 0, src.width, src.height))
    except WindowError:
        return None


def _warp(
    p: Path, src: DatasetReader, grid: Grid, resampling: Resampling
) -> tuple[Heights, npt.NDArray[np.bool_]]:
    """The heights on the grid (NaN: void or beyond the file) and the file's footprint."""
    heights = np.full(grid.shape, np.nan, dtype=np.float32)
    footprint = np.zeros(grid.shape, dtype=np.uint8)
    window = _window(src, grid)
    if window is None or window.width < 1 or window.height < 1:
        return heights, footprint.astype(bool)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            data = src.read(1, window=window, out_dtype=np.float32)
    except RasterioError as err:
        raise DemError(f"{p}: cannot be read ({_first_line(err)}); give {WHAT}") from None
    void = ~np.isfinite(data) | (data <= VOID_BELOW_M)
    if src.nodata is not None and not math.isnan(src.nodata):
        void |= data == np.float32(src.nodata)
    scale, offset = src.scales[0], src.offsets[0]
    if (scale, offset) != (1.0, 0.0):
        data = data * np.float32(scale) + np.float32(offset)
    data[void] = np.nan
    ours = {
        "src_transform": src.window_transform(window),
        "src_crs": src.crs,
        "dst_transform": from_origin(grid.x0, grid.y0, grid.res, grid.res),
        "dst_crs": UTM49N,
    }
    reproject(data, heights, src_nodata=np.nan, dst_nodata=np.nan, resampling=resampling, **ours)
    ones = np.ones(data.shape, dtype=np.uint8)
    reproject(ones, footprint, src_nodata=0, dst_nodata=0, resampling=Resampling.nearest, **ours)
    return heights, footprint.astype(bool)


def _fill(heights: Heights, valid: npt.NDArray[np.bool_]) -> Heights:
    """Voids interpolated from their edges (GDAL's inverse-distance fill, searching the whole
    grid); what it cannot reach takes the median height."""
    reach = float(2 * max(heights.shape))
    filled = np.asarray(
        fillnodata(heights, mask=valid.astype(np.uint8), max_search_distance=reach),
        dtype=np.float32,
    )
    rest = ~np.isfinite(filled)
    if rest.any():
        filled[rest] = np.median(heights[valid])
    return filled


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def province_ground(
    config: CoverageConfig, province: int, grid: Grid, outline: Sequence[tuple[float, float]]
) -> Heights | None:
    """The ground the config gives this province's engine (``config.dem_path``, for
    ``config.dem_province`` or every province), or none: no terrain."""
    path = config.dem_path
    if path is None or config.dem_province not in (None, province):
        return None
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    return _ground(path, stamp, grid, tuple(outline))


@functools.lru_cache(maxsize=4)  # a rebuild on each change of the registry reads it again
def _ground(
    path: Path, stamp: int, grid: Grid, outline: tuple[tuple[float, float], ...]
) -> Heights:
    heights = load_dem(path, grid, outline)
    heights.flags.writeable = False  # shared between rebuilds
    return heights
