"""Reading a DEM onto the coverage grid (processing.coverage.dem), its refusals, the setting."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import typer
from rasterio.transform import from_origin
from rasterio.warp import transform

from ioc.cli_common import clear_errors
from ioc.configs import coverage_config
from ioc.errors import SettingError
from ioc.settings import Settings
from ioc.up import clear_error
from processing.coverage.dem import DemError, load_dem
from processing.coverage.grid import Grid, polygon_mask, to_latlon
from seeds.sources import SCENARIO_DEM

# A 11 km square in UTM 49N, on a 500 m grid of 23 × 23 cells
OUTLINE = [(13.95, 108.85), (13.95, 108.95), (14.05, 108.95), (14.05, 108.85)]
GRID = Grid.around(OUTLINE, 500.0)
STEP = 1 / 1200  # 3": about 90 m, finer than the grid
WEST, NORTH, SPAN = 108.7, 14.2, 0.4  # the files' extent, degrees: the grid and more


def plane(lat: Any, lon: Any) -> Any:
    """A tilted plane: 300 m a tenth of a degree east, 150 m north; 425–860 m over the grid."""
    return 200.0 + 3000.0 * (np.asarray(lon) - 108.8) + 1500.0 * (np.asarray(lat) - 13.9)


def expected() -> Any:
    x, y = np.meshgrid(GRID.col_x(), GRID.row_y())
    return plane(*to_latlon(x, y))


def write(path: Path, z: Any, crs: str | None, tf: Any, **profile: Any) -> Path:
    options = {"driver": "GTiff", "dtype": z.dtype.name, "crs": crs, "transform": tf} | profile
    with rasterio.open(path, "w", width=z.shape[1], height=z.shape[0], count=1, **options) as d:
        d.write(z, 1)
    return path


def degrees(path: Path, step: float = STEP, west: float = WEST, span: float = SPAN, **kw: Any):
    """The plane in EPSG:4326 over ``span`` degrees from ``west``, as float32 unless given
    another ``dtype``; ``edit`` changes the heights (voids) before writing."""
    n = round(span / step)
    lon = west + (np.arange(n) + 0.5) * step
    lat = NORTH - (np.arange(round(SPAN / step)) + 0.5) * step
    z = plane(lat[:, None], lon[None, :]).astype(kw.pop("dtype", np.float32))
    if edit := kw.pop("edit", None):
        edit(z, lat, lon)
    crs = kw.pop("crs", "EPSG:4326")
    return write(path, z, crs, from_origin(west, NORTH, step, step), **kw)


def projected(path: Path, crs: str, step_m: float) -> Path:
    """The plane in a projected CRS, a box of ``step_m`` pixels around the grid."""
    lon, lat = [WEST, WEST + SPAN, WEST, WEST + SPAN], [NORTH, NORTH, NORTH - SPAN, NORTH - SPAN]
    xs, ys = transform("EPSG:4326", crs, lon, lat)
    x0, y1 = min(xs), max(ys)
    cols, rows = int((max(xs) - x0) / step_m), int((y1 - min(ys)) / step_m)
    x, y = np.meshgrid(x0 + (np.arange(cols) + 0.5) * step_m, y1 - (np.arange(rows) + 0.5) * step_m)
    lo, la = transform(crs, "EPSG:4326", x.ravel(), y.ravel())
    z = plane(np.reshape(la, x.shape), np.reshape(lo, x.shape)).astype(np.float32)
    return write(path, z, crs, from_origin(x0, y1, step_m, step_m))


def test_a_plane_in_degrees_reads_back_at_cell_centres(tmp_path, caplog):
    caplog.set_level(logging.INFO, "ioc.coverage")
    heights = load_dem(degrees(tmp_path / "dem.tif"), GRID, OUTLINE)
    assert heights.dtype == np.float32 and heights.shape == GRID.shape
    assert np.abs(heights - expected()).max() < 0.5  # m; the plane spans 435 m
    (line,) = [r.getMessage() for r in caplog.records]
    assert "EPSG:4326, pixels of 9" in line and "reprojected to EPSG:32649" in line
    assert "500 m grid by average" in line and "ground 4" in line


@pytest.mark.parametrize(
    ("crs", "step_m", "resampling"),
    [
        ("EPSG:3857", 90.0, "average"),
        ("EPSG:32648", 90.0, "average"),
        ("EPSG:32649", 1000.0, "bilinear"),  # coarser than the grid
    ],
)
def test_the_same_plane_in_another_crs_reads_back_the_same(
    tmp_path, caplog, crs, step_m, resampling
):
    caplog.set_level(logging.INFO, "ioc.coverage")
    heights = load_dem(projected(tmp_path / "dem.tif", crs, step_m), GRID, OUTLINE)
    assert np.abs(heights - expected()).max() < 1.0
    assert f"{crs}, pixels of" in caplog.text and f"by {resampling}" in caplog.text
    assert ("reprojected to EPSG:32649" in caplog.text) == (crs != "EPSG:32649")


def test_no_such_file(tmp_path):
    with pytest.raises(DemError, match=r"^\S+/nothing\.tif: no such file; give a GeoTIFF"):
        load_dem(tmp_path / "nothing.tif", GRID, OUTLINE)


def test_a_text_file_is_not_a_geotiff(tmp_path):
    (path := tmp_path / "dem.tif").write_text("height\n12\n")
    with pytest.raises(DemError, match=r"dem.tif: not a GeoTIFF .GDAL recognises no raster format"):
        load_dem(path, GRID, OUTLINE)


def test_a_png_is_not_a_geotiff_and_says_what_gdal_read(tmp_path):
    path = degrees(tmp_path / "dem.png", step=SPAN / 64, driver="PNG", dtype=np.uint16)
    with pytest.raises(DemError, match=r"dem.png: not a GeoTIFF: GDAL reads it as Portable Net"):
        load_dem(path, GRID, OUTLINE)


def test_a_vrt_of_geotiff_tiles_is_read_a_vrt_of_a_png_is_not(tmp_path):
    west = degrees(tmp_path / "w.tif", span=SPAN / 2)
    east = degrees(tmp_path / "e.tif", west=WEST + SPAN / 2, span=SPAN / 2)
    vrt = tmp_path / "dem.vrt"
    with rasterio.open(west) as a, rasterio.open(east) as b:
        vrt.write_text(_vrt([(west, a.width, 0), (east, b.width, a.width)], a.height))
    assert np.abs(load_dem(vrt, GRID, OUTLINE) - expected()).max() < 0.5
    png = degrees(tmp_path / "t.png", step=SPAN / 64, driver="PNG", dtype=np.uint16)
    (bad := tmp_path / "bad.vrt").write_text(_vrt([(png, 64, 0)], 64))
    with pytest.raises(DemError, match=r"bad.vrt: a VRT over \S+t.png: not a GeoTIFF"):
        load_dem(bad, GRID, OUTLINE)


def _vrt(tiles: list[tuple[Path, int, int]], rows: int) -> str:
    """What gdalbuildvrt writes for tiles side by side, west to east, each ``STEP`` wide."""
    sources = "".join(
        f"<SimpleSource><SourceFilename>{p}</SourceFilename><SourceBand>1</SourceBand>"
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{rows}"/>'
        f'<DstRect xOff="{x}" yOff="0" xSize="{w}" ySize="{rows}"/></SimpleSource>'
        for p, w, x in tiles
    )
    width = sum(w for _, w, _ in tiles)
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{rows}"><SRS>EPSG:4326</SRS>'
        f"<GeoTransform>{WEST}, {STEP}, 0, {NORTH}, 0, {-STEP}</GeoTransform>"
        f'<VRTRasterBand dataType="Float32" band="1">{sources}</VRTRasterBand></VRTDataset>'
    )


def test_a_file_without_crs_is_refused(tmp_path):
    path = degrees(tmp_path / "dem.tif", crs=None)
    with pytest.raises(DemError, match=r"dem.tif: has no CRS, so its heights cannot be placed"):
        load_dem(path, GRID, OUTLINE)


def test_a_file_that_covers_part_of_the_province_is_refused(tmp_path):
    path = degrees(tmp_path / "dem.tif", span=0.2)  # 108.7–108.9° E: the western half
    message = (
        r"dem.tif: covers 4\d(\.\d)? % of the province, not all of it: the file spans lon "
        r"108.700 to 108.900, lat 13.800 to 14.200, the province lon 108.850 to 108.950"
    )
    with pytest.raises(DemError, match=message):
        load_dem(path, GRID, OUTLINE)
    with pytest.raises(DemError, match=r"dem.tif: covers 0 % of the province"):
        load_dem(degrees(tmp_path / "dem.tif", west=110.0), GRID, OUTLINE)


def _hole(lat0: float, lon0: float, radius: float, value: float):
    """An edit that voids the pixels within ``radius`` degrees of (lat0, lon0)."""

    def edit(z: Any, lat: Any, lon: Any) -> None:
        z[np.hypot(lat[:, None] - lat0, lon[None, :] - lon0) < radius] = value

    return edit


@pytest.mark.parametrize(
    ("value", "profile"),
    [
        (-32768, {"dtype": np.int16}),  # SRTM's void, not declared
        (-9999, {"nodata": -9999}),
        (12345, {"nodata": 12345}),  # declared, and above the void threshold
        (np.nan, {}),
    ],
)
def test_a_small_void_is_filled_from_its_edges_and_said(tmp_path, caplog, value, profile):
    caplog.set_level(logging.INFO, "ioc.coverage")
    path = degrees(tmp_path / "dem.tif", edit=_hole(14.0, 108.9, 0.012, value), **profile)
    heights = load_dem(path, GRID, OUTLINE)
    x, y = np.meshgrid(GRID.col_x(), GRID.row_y())
    lat, lon = to_latlon(x, y)
    hole = np.hypot(lat - 14.0, lon - 108.9) < 0.008  # cells wholly inside the void
    assert 4 <= hole.sum() < 20 and np.isfinite(heights).all()
    ring = (np.hypot(lat - 14.0, lon - 108.9) < 0.03) & ~hole
    # Filled between its neighbours, and near the plane (which the fill cannot know exactly)
    assert heights[ring].min() < heights[hole].min() and heights[hole].max() < heights[ring].max()
    assert np.abs(heights[hole] - expected()[hole]).max() < 15.0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    said = re.search(r": (\d+) void cells in the province \((\d+\.\d) % of it", warning)
    assert said, warning
    near = np.hypot(lat - 14.0, lon - 108.9) < 0.012 + 0.004  # any of whose pixels is void
    assert hole.sum() <= int(said[1]) <= near.sum()
    assert said[2] == f"{100 * int(said[1]) / polygon_mask(GRID, OUTLINE).sum():.1f}"
    assert warning.endswith("filled by interpolation from their edges")


def test_a_large_void_is_refused(tmp_path):
    path = degrees(tmp_path / "dem.tif", edit=_hole(14.0, 108.9, 0.035, -32768), dtype=np.int16)
    message = r"dem.tif: \d\d\.\d% of the province is void .nodata, NaN or below -1000 m: \d+ of"
    with pytest.raises(DemError, match=message):
        load_dem(path, GRID, OUTLINE)


def test_cells_beyond_the_province_and_the_file_are_filled_and_said(tmp_path, caplog):
    """A grid wider than the province, a file that covers the province and not the grid's
    eastern and western columns: those are filled from the file's edge."""
    caplog.set_level(logging.INFO, "ioc.coverage")
    wide = Grid.around([(13.95, 108.82), (14.05, 108.98)], 500.0)
    heights = load_dem(degrees(tmp_path / "dem.tif", west=108.84, span=0.12), wide, OUTLINE)
    x, y = np.meshgrid(wide.col_x(), wide.row_y())
    lat, lon = to_latlon(x, y)
    truth, province = plane(lat, lon), polygon_mask(wide, OUTLINE)
    beyond = (lon < 108.84) | (lon > 108.96)
    assert beyond.any() and not (beyond & province).any()
    assert np.isfinite(heights).all()
    assert np.abs(heights - truth)[province].max() < 0.5  # cells on the file's edge: its part
    # The fill spreads the edge's heights outwards: within what the file holds
    assert (
        plane(13.8, 108.84) <= heights[beyond].min() < heights[beyond].max() <= plane(14.2, 108.96)
    )
    (line,) = [r for r in caplog.records if "filled" in r.getMessage()]
    assert line.levelno == logging.INFO  # nothing void inside the province
    assert "0 void cells in the province (0.0 % of it" in line.getMessage()
    said = re.search(r"and (\d+) grid cells beyond it that the file leaves", line.getMessage())
    assert said, line.getMessage()
    # Cells half over the file's edge average the half they have
    wholly = (lon < 108.84 - 0.0025) | (lon > 108.96 + 0.0025)
    assert 0 < wholly.sum() <= int(said[1]) <= beyond.sum()


def test_a_flat_province_is_a_warning_not_an_error(tmp_path, caplog):
    caplog.set_level(logging.INFO, "ioc.coverage")
    path = degrees(tmp_path / "dem.tif", edit=lambda z, *_: z.fill(3.0))
    assert (load_dem(path, GRID, OUTLINE) == 3.0).all()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "the province is flat in it (3.0 to 3.0 m): probably the wrong" in warning.getMessage()


def test_a_dem_error_reaches_the_user_as_one_line_naming_the_setting(tmp_path, capsys):
    @clear_errors
    def command() -> None:
        load_dem(tmp_path / "nothing.tif", GRID, OUTLINE)

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 2
    err = capsys.readouterr().err
    assert err == f"ioc: IOC_COVERAGE_DEM: {tmp_path}/nothing.tif: no such file; give a GeoTIFF" + (
        " of ground heights in metres (SRTM, Copernicus GLO-30), or a VRT of such tiles\n"
    )
    # ...and `ioc up` repeats that line when its coverage service stops on it
    tail = f"INFO starting\n{err}"
    assert clear_error(tail) == err.removeprefix("ioc: ").strip()
    assert clear_error("Traceback (most recent call last):\n  ...\nKeyError: 'x'\n") is None


def test_the_setting(tmp_path):
    def resolved(dem: str) -> tuple[Path | None, int | None]:
        c = coverage_config(Settings.defaults(coverage={"dem": dem}))
        return c.dem_path, c.dem_province

    assert Settings.defaults().coverage.dem == "scenario"
    assert resolved("scenario") == (SCENARIO_DEM, 52)  # Bình Định's synthetic terrain alone
    assert resolved("none") == resolved("") == (None, None)
    (mine := tmp_path / "dem.tif").write_bytes(b"")
    assert resolved(str(mine)) == (mine, None)  # whether it is a DEM: load_dem says
    with pytest.raises(SettingError, match=r"^IOC_COVERAGE_DEM: \S+/missing.tif: no such file$"):
        resolved(str(tmp_path / "missing.tif"))


def test_the_setting_is_read_from_the_environment(monkeypatch, tmp_path):
    for name in [k for k in os.environ if k.startswith("IOC_")]:
        monkeypatch.delenv(name)  # none of the shell's
    monkeypatch.setenv("IOC_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("IOC_COVERAGE_DEM", "none")
    assert Settings().coverage.dem == "none"
