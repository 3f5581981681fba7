"""Layers of the live map, built from store rows. No basemap is needed: the province outline,
district areas, roads and towns come from the scenario, so it works on a closed network; a
raster tile URL (``IOC_DASHBOARD_TILE_URL``) adds one where a tile server is reachable.

A few layers of aggregated state, never one marker redrawn per message."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pydeck as pdk

from dashboard.i18n import lang, num, t, when
from devices.kinds import Kind
from devices.metrics import metric
from store.dashboard import MapDevice

STATE_COLOURS: dict[str, list[int]] = {
    "online": [46, 204, 113, 230],
    "on_battery": [241, 196, 15, 240],
    "degraded": [230, 126, 34, 240],
    "offline": [231, 76, 60, 250],
    "unknown": [149, 165, 166, 200],
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
PROVINCE_VIEW = {"latitude": 14.08, "longitude": 108.95, "zoom": 8.4}
TOOLTIP = {
    "html": "<b>{title}</b><br/>{line1}<br/>{line2}<br/>{line3}",
    "style": {"backgroundColor": "#17202a", "color": "#ecf0f1", "fontSize": "12px"},
}
_KEY_METRICS: dict[str, tuple[str, ...]] = {
    "bts": ("power_source", "battery_pct", "active_users", "sectors_up", "backhaul_up"),
    "camera": ("fps", "recording", "tamper"),
    "broadband": ("onts_online", "latency_ms", "uplink_up"),
}


@dataclass(frozen=True, slots=True)
class MapOptions:
    colour_by: str = "state"  # or "operator"
    kinds: tuple[str, ...] = ("bts", "camera", "broadband")
    villages: bool = True
    focus: tuple[float, float] | None = None  # (lat, lon) to centre on
    tile_url: str | None = None
    extra_layers: list[pdk.Layer] = field(default_factory=list)  # e.g. the coverage layer


def _value(kind: str, name: str, value: Any) -> str:
    spec = metric(Kind(kind), name)
    label = spec.label[lang()]  # metric names come from their declarations
    if isinstance(value, list):
        shown = f"{sum(bool(v) for v in value)}/{len(value)}"
    elif isinstance(value, bool):
        shown = "✓" if value else "✗"
    elif isinstance(value, float):
        shown = num(value, 1 if abs(value) < 100 else 0)
    elif isinstance(value, int):
        shown = num(value)
    else:
        shown = str(value)
    return f"{label}: {shown} {spec.unit}".rstrip()


def device_frame(rows: Sequence[MapDevice], colour_by: str = "state") -> pd.DataFrame:
    def colour(row: MapDevice) -> list[int]:
        if colour_by == "operator" and row.operator in OPERATOR_COLOURS:
            return OPERATOR_COLOURS[row.operator]
        return STATE_COLOURS.get(row.state, STATE_COLOURS["unknown"])

    def details(row: MapDevice) -> str:
        latest = row.latest or {}
        names = [n for n in _KEY_METRICS.get(row.kind, ()) if latest.get(n) is not None]
        return " · ".join(_value(row.kind, n, latest[n]) for n in names) or "—"

    return pd.DataFrame(
        {
            "device_id": [r.device_id for r in rows],
            "kind": [r.kind for r in rows],
            "lat": [r.lat for r in rows],
            "lon": [r.lon for r in rows],
            "state": [r.state for r in rows],
            "colour": [colour(r) for r in rows],
            "outline": [KIND_OUTLINE.get(r.kind, [0, 0, 0, 0]) for r in rows],
            "radius": [KIND_RADIUS_M.get(r.kind, 400) for r in rows],
            "title": [f"{r.name or r.device_id} ({r.device_id})" for r in rows],
            "line1": [
                f"{t('kind.' + r.kind)} · {r.operator or ''} · "
                f"{t('tip.state')}: {t('state.' + r.state)}"
                for r in rows
            ],
            "line2": [f"{t('tip.last_seen')}: {when(r.last_seen, 'medium')}" for r in rows],
            "line3": [details(r) for r in rows],
        }
    )


def village_frame(villages: Iterable[dict[str, Any]], dead_spots: set[str]) -> pd.DataFrame:
    rows = list(villages)
    dead = [v["village_id"] in dead_spots for v in rows]
    return pd.DataFrame(
        {
            "lat": [v["lat"] for v in rows],
            "lon": [v["lon"] for v in rows],
            # Area follows population: radius grows with its square root.
            "radius": [
                (90 + 14 * math.sqrt(v["population"])) if d else 120
                for v, d in zip(rows, dead, strict=True)
            ],
            "colour": [[255, 59, 48, 235] if d else [189, 195, 199, 90] for d in dead],
            "title": [v["name"] for v in rows],
            "line1": [f"{v['commune_name']} · {v['district_name']}" for v in rows],
            "line2": [f"{t('tip.population')}: {num(v['population'])}" for v in rows],
            "line3": [t("head.dead_spots") if d else "" for d in dead],
            "dead": dead,
        }
    ).sort_values("dead")  # dead spots drawn last, on top


def _basemap(tile_url: str) -> pdk.Layer:
    # deck.gl's TileLayer needs a JS callback to draw raster tiles; the JSON form takes it as
    # an expression string.
    return pdk.Layer(
        "TileLayer",
        data=tile_url,
        id="basemap",
        min_zoom=0,
        max_zoom=19,
        tile_size=256,
        render_sub_layers="@@=(props) => new BitmapLayer(props, {data: null, image: props.data,"
        " bounds: [props.tile.bbox.west, props.tile.bbox.south, props.tile.bbox.east,"
        " props.tile.bbox.north]})",
    )


def deck(
    devices: Sequence[MapDevice],
    villages: Iterable[dict[str, Any]],
    dead_spots: set[str],
    districts: list[dict[str, Any]],
    features: list[dict[str, Any]],
    options: MapOptions,
) -> pdk.Deck:
    areas = pd.DataFrame(
        {
            "name": [d["name"] for d in districts],
            "polygon": [[[lon, lat] for lat, lon in d["polygon"]] for d in districts],
        }
    )
    labels = pd.DataFrame(
        {
            "name": [d["name"] for d in districts],
            "lat": [d["lat"] for d in districts],
            "lon": [d["lon"] for d in districts],
        }
    )
    paths = pd.DataFrame(
        {
            "kind": [f["kind"] for f in features],
            "path": [[[lon, lat] for lat, lon in f["points"]] for f in features],
            "colour": [
                [236, 240, 241, 230] if f["kind"] == "outline" else [200, 170, 90, 170]
                for f in features
            ],
            "width": [3 if f["kind"] == "outline" else 1 for f in features],
        }
    )
    layers: list[pdk.Layer] = [_basemap(options.tile_url)] if options.tile_url else []
    layers += [
        pdk.Layer(
            "PolygonLayer",
            areas,
            id="districts",
            get_polygon="polygon",
            get_fill_color=[28, 40, 51, 110 if options.tile_url else 200],
            get_line_color=[133, 146, 158, 255],
            line_width_min_pixels=1,
            stroked=True,
        ),
        *options.extra_layers,
        pdk.Layer(
            "PathLayer",
            paths,
            id="roads",
            get_path="path",
            get_color="colour",
            get_width="width",
            width_units="'pixels'",
        ),
    ]
    if options.villages:
        layers.append(
            pdk.Layer(
                "ScatterplotLayer",
                village_frame(villages, dead_spots),
                id="villages",
                get_position=["lon", "lat"],
                get_fill_color="colour",
                get_radius="radius",
                radius_min_pixels=1,
                pickable=True,
            )
        )
    shown = [d for d in devices if d.kind in options.kinds]
    for kind in ("broadband", "bts", "camera"):  # small markers on top of big ones
        rows = [d for d in shown if d.kind == kind]
        if rows:
            layers.append(
                pdk.Layer(
                    "ScatterplotLayer",
                    device_frame(rows, options.colour_by),
                    id=f"devices-{kind}",
                    get_position=["lon", "lat"],
                    get_fill_color="colour",
                    get_line_color="outline",
                    get_radius="radius",
                    stroked=True,
                    line_width_min_pixels=1,
                    radius_min_pixels=2.5 if kind == "bts" else 1.5,
                    radius_max_pixels=14,
                    pickable=True,
                )
            )
    layers.append(
        pdk.Layer(
            "TextLayer",
            labels,
            id="district-labels",
            get_position=["lon", "lat"],
            get_text="name",
            get_color=[236, 240, 241, 255],
            get_size=13,
            get_alignment_baseline="'bottom'",
            # deck.gl's default atlas is ASCII only, so Vietnamese names lost their diacritics;
            # "auto" builds it from the data. Quoted: pydeck reads bare strings as expressions.
            character_set="'auto'",
            outline_width=2,
            outline_color=[23, 32, 42, 255],
            font_settings={"sdf": True},
        )
    )
    view = dict(PROVINCE_VIEW)
    if options.focus:
        view = {"latitude": options.focus[0], "longitude": options.focus[1], "zoom": 11.5}
    return pdk.Deck(
        layers=layers,
        initial_view_state=pdk.ViewState(**view),
        # No map_style: pydeck's default sentinel with no provider tells Streamlit to draw no
        # basemap; map_style=None would make it fetch one from the internet.
        map_provider=None,
        tooltip=TOOLTIP,
    )
