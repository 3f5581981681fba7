"""Layers of the live map, built from store rows. No basemap is needed: the province outline,
district areas, roads and district names come from the scenario (drawn once into an image by
dashboard/background.py), so it works on a closed network; a raster tile URL
(``IOC_DASHBOARD_TILE_URL``) adds one where a tile server is reachable.

A few layers of aggregated state, never one marker redrawn per message."""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pydeck as pdk

from dashboard import background
from dashboard.i18n import ZONE, metric_label, num, t
from devices.health import KEY_METRICS, DisplayState
from devices.kinds import Kind
from devices.metrics import metric
from store.national import ProvinceHeadline
from store.registry import MapDevice

STATE_COLOURS: dict[str, list[int]] = {
    DisplayState.ONLINE: [46, 204, 113, 230],
    DisplayState.ON_BATTERY: [241, 196, 15, 240],
    DisplayState.DEGRADED: [230, 126, 34, 240],
    DisplayState.OFFLINE: [231, 76, 60, 250],
    DisplayState.UNKNOWN: [149, 165, 166, 200],
}
# The same states in the legend under the map (Streamlit's named colours).
LEGEND_COLOURS: dict[DisplayState, str] = {
    DisplayState.ONLINE: "green",
    DisplayState.ON_BATTERY: "orange",
    DisplayState.DEGRADED: "orange",
    DisplayState.OFFLINE: "red",
    DisplayState.UNKNOWN: "gray",
}
OPERATOR_COLOURS: dict[str, list[int]] = {
    "viettel": [236, 64, 122, 230],
    "mobifone": [52, 152, 219, 230],
    "vinaphone": [26, 188, 156, 230],
    "vietnamobile": [243, 156, 18, 230],
}
KIND_RADIUS_M: dict[str, int] = {"bts": 650, "camera": 260, "broadband": 900}
KIND_OUTLINE: dict[str, list[int]] = {
    "bts": [20, 24, 30, 200],
    "camera": [174, 214, 241, 255],
    "broadband": [187, 143, 206, 255],
}
PROVINCE_VIEW = {"latitude": 14.08, "longitude": 108.95, "zoom": 8.4}  # Bình Định, no places
MAP_HEIGHT_PX = 680  # the live map's height (dashboard/pages/map.py)
MAP_MIN_WIDTH_PX = 900  # the narrowest main column the view is fitted to (wider screens: margin)
TOOLTIP = {
    "html": "<b>{title}</b><br/>{line1}<br/>{line2}<br/>{line3}",
    "style": {"backgroundColor": "#17202a", "color": "#ecf0f1", "fontSize": "12px"},
}


@dataclass(frozen=True, slots=True)
class MapOptions:
    colour_by: str = "state"  # or "operator"
    kinds: tuple[str, ...] = ("bts", "camera", "broadband")
    villages: bool = True
    focus: tuple[float, float] | None = None  # (lat, lon) to centre on
    tile_url: str | None = None  # an XYZ raster tile URL on the closed network
    extra_layers: list[pdk.Layer] = field(default_factory=list)  # e.g. the coverage layer
    skip: tuple[str, ...] = ()  # layer ids left out (bench/dashboard.py times each layer so)


def _value(kind: str, name: str, value: Any) -> str | None:
    """A key metric, tersely: numbers with their unit, flags only when they are down."""
    spec = metric(Kind(kind), name)
    if isinstance(value, list):
        return f"{t('device.sectors')} {sum(bool(v) for v in value)}/{len(value)}"
    if isinstance(value, bool):
        return None if value else f"{metric_label(Kind(kind), name)}: ✗"
    if isinstance(value, float):
        return f"{num(value, 1 if abs(value) < 100 else 0)} {spec.unit}".rstrip()
    if isinstance(value, int):
        return f"{num(value)} {spec.unit}".rstrip()
    return str(value)


def _clock(moment: datetime | None) -> str:
    # Thousands of rows a refresh: a plain strftime in the province's zone, not babel per row.
    return moment.astimezone(ZONE).strftime("%H:%M:%S %d/%m") if moment else "—"


def device_frame(rows: Sequence[MapDevice], colour_by: str = "state") -> pd.DataFrame:
    """Only what the layer draws and the tooltip shows: this goes to the browser each refresh."""
    states = {s.value: t("state." + s) for s in DisplayState}
    seen = t("tip.last_seen")

    def colour(row: MapDevice) -> list[int]:
        if colour_by == "operator" and row.operator in OPERATOR_COLOURS:
            return OPERATOR_COLOURS[row.operator]
        return STATE_COLOURS.get(row.state, STATE_COLOURS["unknown"])

    def details(row: MapDevice) -> str:
        latest = row.latest or {}
        shown = (_value(row.kind, n, latest[n]) for n in KEY_METRICS.get(Kind(row.kind), ())
                 if latest.get(n) is not None)  # fmt: skip
        return " · ".join(v for v in shown if v) or "—"

    return pd.DataFrame(
        {
            "id": [r.device_id for r in rows],  # what a click on the map opens (?device=)
            "lat": [round(r.lat, 5) for r in rows],
            "lon": [round(r.lon, 5) for r in rows],
            "colour": [colour(r) for r in rows],
            "title": [f"{r.name or r.device_id} ({r.device_id})" for r in rows],
            "line1": [f"{r.operator or ''} · {states.get(r.state, r.state)}" for r in rows],
            "line2": [f"{seen}: {_clock(r.last_seen)}" for r in rows],
            "line3": [details(r) for r in rows],
        }
    )


def village_frames(
    villages: Iterable[dict[str, Any]], dead_spots: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all villages as bare points, dead spots with their tooltip and population-sized radius)."""
    rows = list(villages)
    dead = [v for v in rows if v["village_id"] in dead_spots]
    people = t("tip.population")
    points = pd.DataFrame(
        {"lat": [round(v["lat"], 5) for v in rows], "lon": [round(v["lon"], 5) for v in rows]}
    )
    spots = pd.DataFrame(
        {
            "id": [v["village_id"] for v in dead],  # what a click on the map opens (?village=)
            "lat": [v["lat"] for v in dead],
            "lon": [v["lon"] for v in dead],
            # Area follows population: the radius grows with its square root.
            "radius": [90 + 14 * math.sqrt(v["population"]) for v in dead],
            "title": [v["name"] for v in dead],
            "line1": [f"{v['commune_name']} · {v['district_name']}" for v in dead],
            "line2": [f"{people}: {num(v['population'])}" for v in dead],
            "line3": [t("head.dead_spots")] * len(dead),
        }
    )
    return points, spots


def basemap_style(tile_url: str) -> str:
    """A MapLibre style with one raster source, as a data: URL (no style server needed)."""
    style = {
        "version": 8,
        "sources": {"tiles": {"type": "raster", "tiles": [tile_url], "tileSize": 256}},
        "layers": [{"id": "tiles", "type": "raster", "source": "tiles"}],
    }
    return "data:application/json," + urllib.parse.quote(json.dumps(style))


def view_of(frame: background.Frame) -> dict[str, float]:
    """The view that frames the places drawn, for any province: deck.gl's world is 512·2^zoom
    pixels across 360° of longitude (and 2π of Mercator y), fitted with a 10 % margin."""
    pad = background.PAD_DEG
    north, south = frame.north - pad, frame.south + pad
    lon_turns = (frame.east - frame.west - 2 * pad) / 360.0
    y_turns = (background.mercator_y(north) - background.mercator_y(south)) / (2 * math.pi)
    fit = 0.9 * min(MAP_MIN_WIDTH_PX / max(lon_turns, 1e-9), MAP_HEIGHT_PX / max(y_turns, 1e-9))
    return {
        "latitude": round((north + south) / 2, 4),
        "longitude": round((frame.east + frame.west) / 2, 4),
        "zoom": round(math.log2(fit / 512.0), 2),
    }


def _points(
    frame: pd.DataFrame, layer_id: str, *, outline: list[int] | None = None, **style: Any
) -> pdk.Layer:
    """A dot a row of ``frame`` at its lon/lat; with an ``outline`` colour, a 1-pixel ring."""
    if outline is not None:
        style |= {"get_line_color": outline, "stroked": True, "line_width_min_pixels": 1}
    return pdk.Layer("ScatterplotLayer", frame, id=layer_id, get_position=["lon", "lat"], **style)


def _live_layers(
    devices: Sequence[MapDevice],
    villages: Iterable[dict[str, Any]],
    dead_spots: set[str],
    options: MapOptions,
) -> list[pdk.Layer]:
    """Villages, dead-spot rings and device markers: the layers each refresh changes."""
    layers: list[pdk.Layer] = []
    if options.villages:
        points, spots = village_frames(villages, dead_spots)
        layers.append(
            _points(
                points,
                "villages",
                get_fill_color=[189, 195, 199, 90],
                get_radius=120,
                radius_min_pixels=1,
            )
        )
        layers.append(
            _points(
                spots,
                "dead-spots",
                # Rings, not discs: over the coverage raster a village must not hide the
                # signal around it; red with a faint white fill reads on every band's colour.
                get_fill_color=[255, 255, 255, 50],
                get_line_color=[255, 59, 48, 255],
                stroked=True,
                line_width_min_pixels=2.5,
                get_radius="radius",
                radius_min_pixels=5,
                pickable=True,
            )
        )
    shown = [d for d in devices if d.kind in options.kinds]
    for kind in ("broadband", "bts", "camera"):  # small markers on top of big ones
        rows = [d for d in shown if d.kind == kind]
        if rows:
            layers.append(
                _points(
                    device_frame(rows, options.colour_by),
                    f"devices-{kind}",
                    outline=KIND_OUTLINE[kind],
                    get_fill_color="colour",
                    get_radius=KIND_RADIUS_M[kind],
                    radius_min_pixels=2.5 if kind == "bts" else 1.5,
                    radius_max_pixels=14,
                    pickable=True,
                )
            )
    return layers


def _deck(layers: list[pdk.Layer], view: dict[str, float], options: MapOptions) -> pdk.Deck:
    layers = [layer for layer in layers if layer.id not in options.skip]
    if options.focus:
        view = {"latitude": options.focus[0], "longitude": options.focus[1], "zoom": 11.5}
    if options.tile_url:
        return pdk.Deck(
            layers=layers,
            initial_view_state=pdk.ViewState(**view),
            map_style=basemap_style(options.tile_url),
            map_provider=None,
            tooltip=TOOLTIP,
        )
    return pdk.Deck(
        layers=layers,
        initial_view_state=pdk.ViewState(**view),
        # No map_style: pydeck's default sentinel with no provider tells Streamlit to draw no
        # basemap; map_style=None would make it fetch one from the internet.
        map_provider=None,
        tooltip=TOOLTIP,
    )


def deck(
    devices: Sequence[MapDevice],
    villages: Iterable[dict[str, Any]],
    dead_spots: set[str],
    districts: list[dict[str, Any]],
    features: list[dict[str, Any]],
    options: MapOptions,
) -> pdk.Deck:
    """One province (or the few a provincial IOC watches, side by side)."""
    # The static background is one image drawn on the server (dashboard/background.py): as
    # polygon, path and text layers it cost seconds a navigation in software WebGL.
    # A database without a scenario has no places to draw: the live layers alone, then.
    bg = None
    if districts or features:
        bg = background.cached(districts, features, fill_alpha=110 if options.tile_url else 200)
    layers: list[pdk.Layer] = [*options.extra_layers]
    if bg is not None:
        # Quoted: pydeck would read a bare string as an expression.
        layers.insert(0, pdk.Layer("BitmapLayer", id="background", image=f"'{bg.data_url}'",
                                   bounds=bg.frame.bounds))  # fmt: skip
    layers += _live_layers(devices, villages, dead_spots, options)
    if bg is not None:
        layers.append(pdk.Layer("BitmapLayer", id="labels", image=f"'{bg.labels_url}'",
                                bounds=bg.frame.bounds))  # fmt: skip
    view = dict(PROVINCE_VIEW) if bg is None else view_of(bg.frame)
    return _deck(layers, view, options)


# A province on the national map: red where villages have no signal now or a critical alert is
# open, amber with sites, cameras or broadband nodes offline, green otherwise.
PROVINCE_COLOURS: dict[str, list[int]] = {
    "red": [231, 76, 60, 120],
    "amber": [241, 196, 15, 110],
    "green": [46, 204, 113, 80],
}


def province_state(row: ProvinceHeadline) -> str:
    if row.dead_spot_villages or row.alerts_critical:
        return "red"
    if row.sites_offline or row.cameras_offline or row.broadband_offline:
        return "amber"
    return "green"


def province_frame(
    headlines: Sequence[ProvinceHeadline], features: Iterable[dict[str, Any]]
) -> pd.DataFrame:
    """Each province's outline (lon/lat, as deck.gl takes them) with its colour and figures."""
    outlines = {f["province_code"]: f["points"] for f in features if f["kind"] == "outline"}
    rows = [h for h in headlines if h.code in outlines]
    return pd.DataFrame(
        {
            "id": [h.code for h in rows],  # what a click on the map drills into
            "polygon": [[[p[1], p[0]] for p in outlines[h.code]] for h in rows],
            "colour": [PROVINCE_COLOURS[province_state(h)] for h in rows],
            "title": [h.name for h in rows],
            "line1": [
                t(
                    "nat.tip_sites",
                    online=num(h.sites_online),
                    total=num(h.sites),
                    offline=num(h.sites_offline),
                )
                for h in rows
            ],
            "line2": [
                t("nat.tip_dead", n=num(h.dead_spot_villages), people=num(h.dead_spot_population))
                for h in rows
            ],
            "line3": [
                t("nat.tip_alerts", critical=num(h.alerts_critical), major=num(h.alerts_major))
                for h in rows
            ],
        }
    )


def national_deck(
    headlines: Sequence[ProvinceHeadline],
    features: list[dict[str, Any]],
    devices: Sequence[MapDevice],
    villages: Iterable[dict[str, Any]],
    dead_spots: set[str],
    options: MapOptions,
) -> pdk.Deck:
    """Several provinces: each outline filled by its state, with its figures on hover; over
    them only what is wrong (villages without signal, devices failed), so the layers stay
    as light for the nation as for one province. No background image: at the province view's
    resolution one spanning the country would be gigapixels."""
    provinces = province_frame(headlines, features)
    outline = pdk.Layer(
        "PolygonLayer",
        provinces,
        id="provinces",
        get_polygon="polygon",
        get_fill_color="colour",
        get_line_color=[44, 62, 80, 230],  # dark: no basemap under it on a closed network
        line_width_min_pixels=2,
        stroked=True,
        filled=True,
        pickable=True,
    )
    dead = [v for v in villages if v["village_id"] in dead_spots]
    # Never heard from (every device at a start-up) is not news on a national map: the table
    # counts those; only what has failed is drawn.
    wrong = [d for d in devices if d.state not in (DisplayState.ONLINE, DisplayState.UNKNOWN)]
    # Names on hover and in the table, not as a text layer: deck.gl's font atlas drew
    # Vietnamese letters with gaps in the browser test.
    layers = [outline, *options.extra_layers, *_live_layers(wrong, dead, dead_spots, options)]
    points = [(float(p[0]), float(p[1])) for f in features if f["kind"] == "outline"
              for p in f["points"]]  # fmt: skip
    view = view_of(background.Frame.around(points, 1.0)) if points else dict(PROVINCE_VIEW)
    return _deck(layers, view, options)
