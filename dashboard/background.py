"""The map's static background (province outline, district areas, roads, district names) drawn
once on the server as one PNG, shown in the browser as a single deck.gl ``BitmapLayer``.

Drawn as vector layers it cost the browser seconds on every navigation in software WebGL (the
wall PCs have no GPU): polygon tessellation, thousands of road segments and a text atlas built
from the Vietnamese names. As an image it is one texture upload. It changes only when the
scenario's places change, so it is cached per process, keyed by a hash of those places.

deck.gl draws a bitmap's ``bounds`` linearly in Web Mercator, so rows here are spaced in
Mercator y, not in latitude; ``Frame.pixel`` is the one mapping, and the tests check the image
against pyproj's EPSG:3857.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec
from PIL import Image, ImageDraw, ImageFont

# Pixels per degree of longitude: 4x the province view (zoom 8.4, ~480 px/deg), so a focused
# view (zoom 11.5) still upscales it only ~2x; the browser mipmaps it down for the overview.
PX_PER_DEG = 1920.0
SUPERSAMPLE = 2  # drawn at twice the size and shrunk: Pillow's lines have no anti-aliasing
PAD_DEG = 0.03
FILL = (28, 40, 51)
DISTRICT_LINE = (133, 146, 158, 255)
OUTLINE = (236, 240, 241, 230)
ROAD = (200, 170, 90, 200)
LABEL = (236, 240, 241, 255)
LABEL_HALO = (23, 32, 42, 255)
# Widths in output pixels: /4 on screen in the province view (district lines ~1 px there).
WIDTH = {"district": 3, "outline": 10, "road": 4}
PALETTE = 64
LABEL_PX = 52  # ~13 px in the province view
LABEL_SHRINK = 2
FONTS = ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def mercator_y(lat: float) -> float:
    """Web Mercator's y on the unit sphere (up is positive)."""
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


@dataclass(frozen=True, slots=True)
class Frame:
    """The image's lon/lat box and its size; pixel (0, 0) is the north-west corner."""

    west: float
    south: float
    east: float
    north: float
    width: int
    height: int

    @classmethod
    def around(cls, points: Iterable[tuple[float, float]], px_per_deg: float = PX_PER_DEG) -> Frame:
        """The box around (lat, lon) ``points`` with a margin, in square Mercator pixels."""
        lats, lons = zip(*points, strict=True)
        west, east = min(lons) - PAD_DEG, max(lons) + PAD_DEG
        south, north = min(lats) - PAD_DEG, max(lats) + PAD_DEG
        width = round((east - west) * px_per_deg)
        height = round((mercator_y(north) - mercator_y(south)) / math.radians(1) * px_per_deg)
        return cls(west, south, east, north, width, height)

    @property
    def bounds(self) -> list[float]:
        """deck.gl's BitmapLayer ``bounds``: [left, bottom, right, top]."""
        return [self.west, self.south, self.east, self.north]

    def pixel(self, lat: float, lon: float) -> tuple[float, float]:
        """Where (lat, lon) falls in the image, in pixels from its top-left corner."""
        x = (lon - self.west) / (self.east - self.west) * self.width
        top, bottom = mercator_y(self.north), mercator_y(self.south)
        y = (top - mercator_y(lat)) / (top - bottom) * self.height
        return x, y


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@dataclass(frozen=True)
class Background:
    """Two images on one frame: the areas, lines and roads under the live layers, and the
    district names over them (markers would hide names drawn underneath)."""

    png: bytes
    labels: bytes
    frame: Frame

    @cached_property
    def data_url(self) -> str:
        """The image inline: no static route is needed, and it is encoded once per process."""
        return _data_url(self.png)

    @cached_property
    def labels_url(self) -> str:
        return _data_url(self.labels)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)  # Pillow's own; it lacks some Vietnamese letters


def render(
    districts: Sequence[dict[str, Any]],
    features: Sequence[dict[str, Any]],
    fill_alpha: int = 200,
    px_per_deg: float = PX_PER_DEG,
) -> Background:
    """District areas and lines, the province outline and roads; district names apart.

    ``districts`` are ``store.places.districts`` rows (``polygon`` as [lat, lon] pairs),
    ``features`` ``store.places.map_features`` rows (``points`` likewise, kind outline/road)."""
    s = SUPERSAMPLE
    font = _font(LABEL_PX * s)
    everything = [tuple(p) for d in districts for p in d["polygon"]]
    everything += [tuple(p) for f in features for p in f["points"]]
    for d in districts:  # a name near the edge widens the box rather than being cut
        half = font.getlength(d["name"]) / s / 2 / px_per_deg
        everything += [(d["lat"], d["lon"] - half), (d["lat"], d["lon"] + half)]
    frame = Frame.around(((float(lat), float(lon)) for lat, lon in everything), px_per_deg)
    big = Image.new("RGBA", (frame.width * s, frame.height * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)

    def xy(points: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
        return [(x * s, y * s) for x, y in (frame.pixel(p[0], p[1]) for p in points)]

    for d in districts:
        draw.polygon(xy(d["polygon"]), fill=(*FILL, fill_alpha))
    for d in districts:
        ring = xy(d["polygon"])
        draw.line([*ring, ring[0]], fill=DISTRICT_LINE, width=WIDTH["district"] * s, joint="curve")
    for kind in ("road", "outline"):  # the outline over the roads that end on it
        for f in features:
            if f["kind"] == kind:
                draw.line(xy(f["points"]), fill=OUTLINE if kind == "outline" else ROAD,
                          width=WIDTH[kind] * s, joint="curve")  # fmt: skip
    names = Image.new("RGBA", big.size, (0, 0, 0, 0))
    write = ImageDraw.Draw(names)
    for d in districts:
        (x, y), = xy([(d["lat"], d["lon"])])  # fmt: skip
        write.text((x, y), d["name"], font=font, fill=LABEL, anchor="md",
                   stroke_width=4 * s, stroke_fill=LABEL_HALO)  # fmt: skip
    # Names at half the resolution, a quarter of the pixels to decode and upload: smooth type
    # needs less than the thin lines do (13 px letters in the province view either way).
    return Background(_png(big, frame), _png(names, frame, LABEL_SHRINK), frame)


def _png(big: Image.Image, frame: Frame, shrink: int = 1) -> bytes:
    image = big.resize((frame.width // shrink, frame.height // shrink), Image.Resampling.LANCZOS)
    # 64 colours (with alpha) keep the edges smooth at a sixth of the bytes: the images go to
    # the browser inline with every refresh of the map.
    image = image.quantize(PALETTE, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def fingerprint(
    districts: Sequence[dict[str, Any]], features: Sequence[dict[str, Any]], fill_alpha: int
) -> str:
    """A hash of what the image shows: the scenario's places and the fill."""
    shown = (
        [(d["name"], d["lat"], d["lon"], d["polygon"]) for d in districts],
        [(f["kind"], f["points"]) for f in features],
        fill_alpha,
    )
    return hashlib.sha256(msgspec.json.encode(shown)).hexdigest()


_cache: dict[str, Background] = {}
_lock = threading.Lock()  # Streamlit runs sessions on threads: render once, not once each


def cached(
    districts: Sequence[dict[str, Any]], features: Sequence[dict[str, Any]], fill_alpha: int = 200
) -> Background:
    """``render``'s image for these places, drawn once per process (the latest few kept)."""
    key = fingerprint(districts, features, fill_alpha)
    with _lock:
        if key not in _cache:
            if len(_cache) >= 4:
                _cache.pop(next(iter(_cache)))
            _cache[key] = render(districts, features, fill_alpha)
        return _cache[key]
