"""The coverage raster as stored (migrations 0016, 0022): the one home of its byte format.

One byte a cell: −dBm rounded (1..255), 0 for no signal; zlib over the row-major bytes. A level
of 1 dB steps is finer than any colour band the map draws, and RSRP never reaches −1 dBm.
Each province has its own grid (one coverage engine a province), so the coverage service writes
one row per (province, operator) and one per (province, "any"); the dashboard first reads only
the stamps (every map refresh), and the levels only when a stamp moved.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from store.scope import Scope, province_clause

F32 = npt.NDArray[np.float32]
NO_SIGNAL = 0  # the byte of a cell without signal
# On the province grid (100 m, 0.95 M cells) level 3 takes ~30 ms a raster for ~290 kB; 6
# saves 13 % for 2.5 times the time, and the service may rewrite all five every few seconds.
ZLIB_LEVEL = 3


@dataclass(frozen=True, slots=True)
class RasterGrid:
    """A north-up grid on ``crs``; row 0 is the northern edge (processing/coverage/grid.py)."""

    crs: str
    x0_m: float  # western edge
    y0_m: float  # northern edge
    res_m: float
    rows: int
    cols: int
    # the lon/lat box (WGS 84) that holds the whole grid
    west: float
    south: float
    east: float
    north: float


@dataclass(frozen=True, slots=True)
class CoverageRaster:
    operator: str  # an operator, or "any"
    grid: RasterGrid
    levels: bytes  # zlib of rows·cols bytes (see encode)
    computed_at: datetime

    def dbm(self) -> F32:
        """(rows, cols) levels in dBm, NaN where there is no signal."""
        return decode(self.levels, self.grid.rows, self.grid.cols)


def encode(dbm: npt.ArrayLike) -> bytes:
    """Levels in dBm (NaN: no signal) to the stored bytes."""
    code = np.rint(np.clip(-np.asarray(dbm, np.float32), 1, 255))  # NaN: no signal
    return zlib.compress(np.nan_to_num(code, nan=NO_SIGNAL).astype(np.uint8).tobytes(), ZLIB_LEVEL)


def decode(levels: bytes, rows: int, cols: int) -> F32:
    code = np.frombuffer(zlib.decompress(levels), np.uint8).reshape(rows, cols)
    out = -code.astype(np.float32)
    out[code == NO_SIGNAL] = np.nan
    return out


UPSERT = """
INSERT INTO coverage_rasters (province_code, operator, crs, x0_m, y0_m, res_m, rows, cols, west,
    south, east, north, levels, computed_at)
VALUES (%(province_code)s, %(operator)s, %(crs)s, %(x0_m)s, %(y0_m)s, %(res_m)s, %(rows)s,
    %(cols)s, %(west)s, %(south)s, %(east)s, %(north)s, %(levels)s, %(computed_at)s)
ON CONFLICT (province_code, operator) DO UPDATE SET
    crs = EXCLUDED.crs, x0_m = EXCLUDED.x0_m, y0_m = EXCLUDED.y0_m, res_m = EXCLUDED.res_m,
    rows = EXCLUDED.rows, cols = EXCLUDED.cols, west = EXCLUDED.west, south = EXCLUDED.south,
    east = EXCLUDED.east, north = EXCLUDED.north, levels = EXCLUDED.levels,
    computed_at = EXCLUDED.computed_at
"""

_COLUMNS = "operator, crs, x0_m, y0_m, res_m, rows, cols, west, south, east, north, levels," \
    " computed_at"  # fmt: skip


async def write_rasters(
    conn: psycopg.AsyncConnection, rasters: list[CoverageRaster], *, province: int
) -> None:
    """Replace these operators' rasters of ``province`` (GSO code), all in one transaction (the
    map never mixes two)."""
    rows = [
        {
            "province_code": province,
            "operator": r.operator,
            **dataclasses.asdict(r.grid),
            "levels": r.levels,
            "computed_at": r.computed_at,
        }
        for r in rasters
    ]
    async with conn.transaction():
        await conn.cursor().executemany(UPSERT, rows)


async def keep_provinces(conn: psycopg.AsyncConnection, provinces: list[int]) -> None:
    """Drop the rasters of every province but these (the ones loaded now)."""
    await conn.execute(
        "DELETE FROM coverage_rasters WHERE province_code <> ALL (%s::integer[])", (provinces,)
    )


def stamps(conn: psycopg.Connection, *, scope: Scope) -> dict[tuple[int, str], datetime]:
    """(province, operator) → when its raster was computed, for the provinces of ``scope``:
    cheap, for a map refresh to tell what moved."""
    cur = conn.execute(
        "SELECT province_code, operator, computed_at FROM coverage_rasters"
        f" WHERE {province_clause('province_code', '%(scope)s')}",
        {"scope": scope.param},
    )
    return {(r[0], r[1]): r[2] for r in cur.fetchall()}


def _raster(row: tuple[Any, ...]) -> CoverageRaster:
    operator, *grid, levels, computed_at = row
    return CoverageRaster(str(operator), RasterGrid(*grid), bytes(levels), computed_at)


def read_raster(conn: psycopg.Connection, operator: str, *, province: int) -> CoverageRaster | None:
    """``operator``'s (or "any") raster of ``province`` (GSO code); None until one is written.
    The caller checks the province against its reader's scope (``Scope.allows``)."""
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM coverage_rasters WHERE province_code = %s AND operator = %s",
        (province, operator),
    )
    row = cur.fetchone()
    return _raster(row) if row else None
