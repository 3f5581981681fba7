"""The map's pre-rendered background (dashboard/background.py) and the deck that shows it."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from pyproj import Transformer

from dashboard import background
from dashboard.livemap import MapOptions, deck

NORTH_SPOT = (14.6, 108.7)  # (lat, lon): far from the box's middle, where Mercator bends most
SOUTH_SPOT = (13.6, 109.2)


def square(name: str, lat: float, lon: float, half: float = 0.01) -> dict[str, object]:
    ring = [[lat - half, lon - half], [lat - half, lon + half],
            [lat + half, lon + half], [lat + half, lon - half]]  # fmt: skip
    return {"name": name, "lat": lat, "lon": lon, "polygon": ring}


def pixels(bg: background.Background) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bg.png)).convert("RGBA"))


def test_a_place_is_drawn_where_deck_puts_its_lon_lat():
    """deck.gl spreads a bitmap linearly in Web Mercator between its bounds: a spot's pixel in
    the PNG must be where EPSG:3857 (pyproj, not our formula) puts it within those bounds.

    Over one province plain latitude rows would be off by ~1 pixel, too little to tell apart,
    so the spots here are 14 degrees apart (drawn at 40 px a degree)."""
    spots = ((24.0, 108.7), (17.0, 108.95), (10.0, 109.2))  # the middle one bends most
    bg = background.render(
        [square("", *spot, half=0.3) for spot in spots], [], fill_alpha=255, px_per_deg=40
    )
    frame = bg.frame
    image = pixels(bg)
    assert image.shape[:2] == (frame.height, frame.width)
    to_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    west_x, south_y = to_mercator.transform(frame.west, frame.south)
    east_x, north_y = to_mercator.transform(frame.east, frame.north)
    ys, xs = np.nonzero(image[..., 3] > 128)
    for lat, lon in spots:
        x, y = to_mercator.transform(lon, lat)
        want = ((x - west_x) / (east_x - west_x) * frame.width,
                (north_y - y) / (north_y - south_y) * frame.height)  # fmt: skip
        mine = np.abs(ys - want[1]) < 40  # this spot's square, not the others
        got = (xs[mine].mean() + 0.5, ys[mine].mean() + 0.5)  # pixel centres
        assert got == pytest.approx(want, abs=1.5)
    # The test tells Mercator from plain latitude rows: those would put the middle spot off.
    linear = (frame.north - 17.0) / (frame.north - frame.south) * frame.height
    assert abs(linear - frame.pixel(17.0, 108.95)[1]) > 4


def test_the_box_holds_every_place_and_its_name():
    wide = square("Thành phố Quy Nhơn", 14.0, 109.3)
    road = [{"kind": "road", "points": [[13.9, 109.1], [14.1, 109.2]]}]
    bg = background.render([wide], road)
    unnamed = background.render([square("", 14.0, 109.3)], road)  # the same without its name
    frame = bg.frame
    assert frame.west < 109.1 and frame.south < 13.9 and frame.north > 14.1
    # The name is wider than the square: the box grew so that it is not cut at the edge.
    assert unnamed.frame.east < 109.35 < 109.4 < frame.east
    image = pixels(bg)
    assert image[:, -1, 3].max() == 0 and image[:, 0, 3].max() == 0  # margins left clear
    # The name is in the image drawn over the markers, not under them.
    names = np.asarray(Image.open(io.BytesIO(bg.labels)).convert("RGBA"))
    assert names.shape[:2] == (frame.height // 2, frame.width // 2)  # same box, half the pixels
    assert (names[..., 3] > 128).sum() > 200
    assert (pixels(unnamed)[..., 3] > 128).sum() == pytest.approx(
        (image[..., 3] > 128).sum(), rel=0.05
    )


def test_background_is_rendered_once_per_set_of_places(monkeypatch):
    calls: list[int] = []
    real = background.render

    def counting(*args: object, **kwargs: object) -> background.Background:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(background, "render", counting)
    monkeypatch.setattr(background, "_cache", {})
    places = [square("A", *NORTH_SPOT)]
    first = background.cached(places, [])
    assert background.cached([dict(p) for p in places], []) is first  # equal places: no redraw
    assert len(calls) == 1
    moved = background.cached([square("A", *SOUTH_SPOT)], [])
    assert moved is not first and len(calls) == 2
    assert background.cached(places, [], fill_alpha=110) is not first  # with a tile basemap
    assert len(calls) == 3


def layers_of(spec: str) -> dict[str, dict[str, object]]:
    return {layer["id"]: layer for layer in json.loads(spec)["layers"]}


def test_deck_draws_the_background_as_one_image_and_no_vector_layers():
    places = [square("Huyện An Lão", *NORTH_SPOT), square("Huyện Vân Canh", *SOUTH_SPOT)]
    roads = [{"kind": "road", "points": [[13.6, 109.2], [14.6, 108.7]]}]
    layers = layers_of(deck([], [], set(), places, roads, MapOptions()).to_json())
    types = {layer["@@type"] for layer in layers.values()}
    assert "BitmapLayer" in types
    assert not types & {"PolygonLayer", "PathLayer", "TextLayer"}
    image = layers["background"]
    # A literal data URL (pydeck would have made a bare string an expression: "@@=...").
    assert str(image["image"]).startswith("data:image/png;base64,")
    bg = background.cached(places, roads)
    assert image["bounds"] == pytest.approx(bg.frame.bounds)
    # District names last, over the markers, on the same frame.
    names = list(layers.values())[-1]
    assert names["id"] == "labels" and names["@@type"] == "BitmapLayer"
    assert names["image"] == bg.labels_url and names["bounds"] == image["bounds"]


def test_a_skipped_layer_is_left_out():
    places = [square("A", *NORTH_SPOT)]
    spec = deck([], [], set(), places, [], MapOptions(skip=("background",))).to_json()
    assert "background" not in layers_of(spec)
    assert "villages" in layers_of(spec)


@pytest.mark.parametrize("province", [None, "Bắc Giang", "Thái Nguyên", "Hà Nội"])
def test_the_live_map_frames_the_province_it_watches(province: str | None) -> None:
    """The first view is centred on the loaded province's places and zoomed so they fill the
    map pane without spilling out (a view fixed on Bình Định showed an empty map elsewhere)."""
    from dashboard.livemap import MAP_HEIGHT_PX, MAP_MIN_WIDTH_PX, view_of
    from seeds import load_scenario

    outline = load_scenario(province).outline
    view = view_of(background.Frame.around(outline))
    lats, lons = [p[0] for p in outline], [p[1] for p in outline]
    assert min(lats) < view["latitude"] < max(lats)
    assert min(lons) < view["longitude"] < max(lons)
    world_px = 512.0 * 2 ** view["zoom"]  # deck.gl's world at that zoom
    width = (max(lons) - min(lons)) / 360.0 * world_px
    y = background.mercator_y
    height = (y(max(lats)) - y(min(lats))) / (2 * math.pi) * world_px
    assert width <= MAP_MIN_WIDTH_PX and height <= MAP_HEIGHT_PX
    assert max(width / MAP_MIN_WIDTH_PX, height / MAP_HEIGHT_PX) > 0.75
