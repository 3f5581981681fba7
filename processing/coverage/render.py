"""A picture of the raster: a PNG drawn with numpy and zlib (no imaging library needed).

Colour is the best margin above the threshold over the broadband layers shown (grey: no
broadband), white outside the province; dead-spot villages are red rings, towers black dots.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator

U8 = npt.NDArray[np.uint8]
# (margin above threshold from, RGB): the first row whose bound the margin reaches wins.
SCALE: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (30.0, (0, 90, 50)),
    (20.0, (35, 139, 69)),
    (10.0, (116, 196, 118)),
    (0.0, (255, 221, 87)),
    (-1e9, (200, 200, 200)),
)
OUTSIDE = (255, 255, 255)


def margin_raster(
    value: npt.NDArray[np.float32],
    layers: Sequence[tuple[Operator, object]],
    thresholds: npt.NDArray[np.float32],
    shown: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float32]:
    """Best level minus threshold over the shown layers, per cell."""
    best = np.full(value.shape[1:], -1e9, np.float32)
    for i in np.flatnonzero(shown):
        np.maximum(best, value[i] - thresholds[i], out=best)
    return best


def colour(margin: npt.NDArray[np.float32], inside: npt.NDArray[np.bool_]) -> U8:
    img = np.empty((*margin.shape, 3), np.uint8)
    img[:] = OUTSIDE
    done = ~inside
    for bound, rgb in SCALE:
        hit = ~done & (margin >= bound)
        img[hit] = rgb
        done |= hit
    return img


def mark(
    img: U8,
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    *,
    radius: int,
    rgb: tuple[int, int, int],
    ring: bool,
) -> None:
    """Stamp a disk (or a ring two pixels wide) at each (row, col)."""
    di, dj = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    d2 = di * di + dj * dj
    stamp = (d2 <= radius * radius) & ((d2 >= (radius - 2) ** 2) if ring else True)
    h, w = img.shape[:2]
    for r, c in zip(np.atleast_1d(rows), np.atleast_1d(cols), strict=True):
        rr, cc = di[stamp] + int(r), dj[stamp] + int(c)
        ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        img[rr[ok], cc[ok]] = rgb


def write_png(path: Path, img: U8) -> None:
    """8-bit RGB PNG (ISO/IEC 15948): signature, IHDR, one zlib IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    h, w = img.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * 3)], axis=1)  # filter 0
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
    png += chunk(b"IEND", b"")
    path.write_bytes(png)
