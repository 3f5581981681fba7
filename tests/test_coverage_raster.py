"""The coverage raster on the map (issue 17, part 2): the coverage service stores the engine's
best level per operator (migration 0016), rewrites it after a change without growing the
table, and the dashboard draws it as a Web Mercator image coloured by level band, rebuilt only
when the stored raster's stamp moves. Against a real PostgreSQL (tests/support/coverage_scene.py:
towers V (viettel) and M (mobifone), and BAD (vinaphone), refused)."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from PIL import Image

from dashboard import coverage_raster, coverage_view
from dashboard.background import Frame
from dashboard.i18n import num, t
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.grid import Grid, to_latlon
from processing.coverage.rasters import operator_levels, raster_grid
from processing.coverage.service import CoverageService
from store import coverage_rasters
from store.coverage_rasters import CoverageRaster, decode, encode
from store.db import aconnect
from store.migrate import upgrade
from store.scope import NATIONAL
from tests.support.coverage_scene import OUTLINE, built_once
from tests.support.polling import wait_until

OPERATORS = ("any", "viettel", "mobifone", "vinaphone", "vietnamobile")


def _stored(url: str) -> dict[str, CoverageRaster]:
    with psycopg.connect(url) as conn:
        found = {op: coverage_rasters.read_raster(conn, op, province=52) for op in OPERATORS}
    return {op: r for op, r in found.items() if r is not None}


def test_encoding_keeps_whole_dbm_and_no_signal() -> None:
    levels = np.array([[-44.4, -95.5, np.nan], [-115.0, -140.2, -300.0]], np.float32)
    back = decode(encode(levels), 2, 3)
    assert np.isnan(back[0, 2]) and np.isnan(back).sum() == 1
    assert back[np.isfinite(back)].tolist() == [-44.0, -96.0, -115.0, -140.0, -255.0]


async def test_the_service_stores_the_engines_raster(loaded: str) -> None:
    svc = await built_once(loaded)
    assert svc.coverage is not None and svc.rasters_written == 1
    engine = svc.coverage.engine
    expected = operator_levels(engine)
    stored = _stored(loaded)
    assert set(stored) == set(OPERATORS)
    for op, raster in stored.items():
        g = raster.grid
        assert (g.crs, g.rows, g.cols, g.res_m) == ("EPSG:32649", *engine.grid.shape, 200.0)
        assert (g.x0_m, g.y0_m) == (engine.grid.x0, engine.grid.y0)
        levels = raster.dbm()
        want = expected[op]
        assert np.array_equal(np.isnan(levels), np.isnan(want)), op
        lit = np.isfinite(want)
        assert np.abs(levels[lit] - want[lit]).max(initial=0.0) <= 0.5, op
    # The towers light their operators' rasters; the refused one lights nothing.
    assert np.isfinite(expected["viettel"]).sum() > 100
    assert np.isfinite(expected["mobifone"]).sum() > 100
    assert np.isnan(expected["vinaphone"]).all() and np.isnan(expected["vietnamobile"]).all()
    both = np.fmax(expected["viettel"], expected["mobifone"])
    assert np.array_equal(expected["any"], both, equal_nan=True)
    # Its lon/lat box holds the outline the grid was made around.
    box = stored["any"].grid
    lats, lons = zip(*OUTLINE, strict=True)
    assert box.west <= min(lons) and box.east >= max(lons)
    assert box.south <= min(lats) and box.north >= max(lats)
    print(f"raster bytes at 200 m ({box.rows}x{box.cols} cells): "
          f"{ {op: len(r.levels) for op, r in stored.items()} }")  # fmt: skip


async def test_a_tower_going_offline_rewrites_its_operators_raster(loaded: str) -> None:
    config = coverage_service_config(
        database_url=loaded, coverage=coverage_config(resolution_m=200.0), raster_every_s=0.2
    )
    svc = CoverageService(config)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)
        first = _stored(loaded)
        assert np.isfinite(first["mobifone"].dbm()).any()
        with psycopg.connect(loaded) as owner:  # what liveness does to a silent tower
            owner.execute("UPDATE devices SET state = 'offline', state_since = now()"
                          " WHERE device_id = 'M'")  # fmt: skip
            owner.execute("SELECT pg_notify('ioc_coverage', 'state')")

        def rewritten() -> bool:
            now = _stored(loaded)["mobifone"]
            return now.computed_at > first["mobifone"].computed_at

        await wait_until(rewritten, timeout_s=20)
        after = _stored(loaded)
        assert np.isnan(after["mobifone"].dbm()).all()  # M was mobifone's only tower
        assert np.array_equal(after["viettel"].dbm(), first["viettel"].dbm(), equal_nan=True)
        assert np.array_equal(after["any"].dbm(), after["viettel"].dbm(), equal_nan=True)
        with psycopg.connect(loaded) as conn:  # upserted: still one row per operator
            assert conn.execute("SELECT count(*) FROM coverage_rasters").fetchone() == (5,)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _known_raster(computed_at: datetime, level_dbm: float) -> tuple[CoverageRaster, int, int]:
    """A raster over the scene's outline at 200 m, no signal but for two 9×9 blocks of cells at
    ``level_dbm``, in the west and the far east; returns it with the western block's centre."""
    grid = Grid.around(OUTLINE, 200.0)
    levels = np.full(grid.shape, np.nan, np.float32)
    r, c = grid.rows // 3, grid.cols // 3  # off the middle: a flip would move it
    levels[r - 4 : r + 5, c - 4 : c + 5] = level_dbm
    levels[r - 4 : r + 5, -12:-3] = level_dbm
    return CoverageRaster("viettel", raster_grid(grid), encode(levels), computed_at), r, c


def _pixel(png: bytes, frame: Frame, grid: Grid, row: int, col: int) -> tuple[int, ...]:
    """The image's colour where the centre of grid cell (row, col) falls."""
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    assert image.size == (frame.width, frame.height)
    lat, lon = to_latlon(*grid.centre_xy(row, col))
    x, y = frame.pixel(float(lat), float(lon))
    return tuple(image.getpixel((int(x), int(y))))  # type: ignore[arg-type]


def test_the_image_colours_a_known_cell_by_its_band_where_it_lies() -> None:
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    grid = Grid.around(OUTLINE, 200.0)
    (south, west), (north, east) = OUTLINE[0], OUTLINE[2]
    # The province: the western 60 % of the grid; the eastern block lies outside it.
    border = west + 0.6 * (east - west)
    province = [{"polygon": [[south, west], [south, border], [north, border], [north, west]]}]
    for level, band in ((-90.0, 0), (-100.0, 1), (-112.0, 2)):
        raster, r, c = _known_raster(moment, level)
        frame, _ = coverage_raster.cell_index(raster.grid)
        assert frame == coverage_raster.frame_of(raster.grid)
        # about one pixel a cell (the frame has a margin around the grid)
        px_m = (frame.east - frame.west) * 111_320 * np.cos(np.radians(14.0)) / frame.width
        assert abs(px_m - grid.res) < 0.05 * grid.res
        colour = coverage_raster.LEVEL_BANDS[band][1]
        png = coverage_raster.render(raster, coverage_raster.province_mask(frame, province))
        assert _pixel(png, frame, grid, r, c) == colour
        for dr, dc in ((0, 6), (6, 0), (0, -6), (-6, 0)):  # the block ends where it should
            assert _pixel(png, frame, grid, r + dr, c + dc) == coverage_raster.NO_SIGNAL
        # outside the province nothing is drawn, signal or not; unmasked, signal only
        assert _pixel(png, frame, grid, r, grid.cols - 8)[3] == 0
        assert _pixel(png, frame, grid, r, grid.cols - 20)[3] == 0
        bare = coverage_raster.render(raster, None)
        assert _pixel(bare, frame, grid, r, grid.cols - 8) == colour
        assert _pixel(bare, frame, grid, r + 6, c)[3] == 0
    assert coverage_view.LEVEL_BANDS is coverage_raster.LEVEL_BANDS


async def test_the_map_redraws_the_raster_only_when_its_stamp_moves(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    t1 = datetime.now(UTC)
    t2 = t1 + timedelta(seconds=5)
    good, _, _ = _known_raster(t1, -90.0)
    poor, _, _ = _known_raster(t2, -112.0)
    async with await aconnect(database_url) as conn:
        await coverage_rasters.write_rasters(conn, [good], province=52)
    with psycopg.connect(database_url) as conn:
        assert not coverage_raster.images(conn, "mobifone", [], scope=NATIONAL)  # none stored yet
        assert coverage_view.legend(None) == t("raster.pending")
        [one] = coverage_raster.images(conn, "viettel", [], scope=NATIONAL)
        [again] = coverage_raster.images(conn, "viettel", [], scope=NATIONAL)
        assert again is one  # a refresh: the same image, not redrawn
        assert one.computed_at == t1 and t("raster.good", a=num(-95)) in coverage_view.legend(one)
        layers = coverage_view.layer([one])
        assert [(x.id, x.type) for x in layers] == [("coverage-raster", "BitmapLayer")]
        assert layers[0].image == one.data_url  # a literal: pydeck took the quotes off
    async with await aconnect(database_url) as conn:
        await coverage_rasters.write_rasters(conn, [poor], province=52)
    with psycopg.connect(database_url) as conn:
        [fresh] = coverage_raster.images(conn, "viettel", [], scope=NATIONAL)
    assert fresh is not one
    assert fresh.computed_at == t2 and fresh.png != one.png
    print(f"image of the test raster: {len(one.png)} bytes, built in {one.build_s * 1000:.1f} ms")
