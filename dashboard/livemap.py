"""Layers of the live map, built from store rows. No basemap is needed: the province outline,
district areas, roads and towns come from the scenario, so it works on a closed network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pydeck as pdk

from store.queries import DeviceMapRow

STATE_COLOURS: dict[str, list[int]] = {
    "online": [39, 174, 96, 220],
    "offline": [231, 76, 60, 235],
    "unknown": [149, 165, 166, 200],
}
KIND_RADIUS_M: dict[str, int] = {"bts": 700, "camera": 350, "broadband": 550}
VIEW = pdk.ViewState(latitude=14.08, longitude=108.95, zoom=8.4)


def device_frame(rows: Sequence[DeviceMapRow]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "device_id": [r.device_id for r in rows],
            "kind": [r.kind for r in rows],
            "name": [r.name or r.device_id for r in rows],
            "operator": [r.operator or "" for r in rows],
            "lat": [r.lat for r in rows],
            "lon": [r.lon for r in rows],
            "state": [r.state for r in rows],
            "last_seen": [
                r.last_seen.strftime("%Y-%m-%d %H:%M:%S") if r.last_seen else "—" for r in rows
            ],
        }
    )
    frame["colour"] = [STATE_COLOURS.get(s, STATE_COLOURS["unknown"]) for s in frame["state"]]
    frame["radius"] = [KIND_RADIUS_M.get(k, 400) for k in frame["kind"]]
    return frame


def deck(
    devices: pd.DataFrame, districts: list[dict[str, Any]], features: list[dict[str, Any]]
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
            "name": [f["name"] for f in features],
            "kind": [f["kind"] for f in features],
            "path": [[[lon, lat] for lat, lon in f["points"]] for f in features],
        }
    )
    layers = [
        pdk.Layer(
            "PolygonLayer",
            areas,
            get_polygon="polygon",
            get_fill_color=[30, 45, 60, 160],
            get_line_color=[120, 140, 160, 255],
            line_width_min_pixels=1,
            stroked=True,
        ),
        pdk.Layer(
            "PathLayer", paths, get_path="path", get_color=[200, 170, 90, 200], width_min_pixels=1
        ),
        pdk.Layer(
            "ScatterplotLayer",
            devices,
            id="devices",
            get_position=["lon", "lat"],
            get_fill_color="colour",
            get_radius="radius",
            radius_min_pixels=2,
            radius_max_pixels=12,
            pickable=True,
        ),
        pdk.Layer(
            "TextLayer",
            labels,
            get_position=["lon", "lat"],
            get_text="name",
            get_color=[236, 240, 241, 255],
            get_size=13,
            get_alignment_baseline="'bottom'",
            # deck.gl's default atlas is ASCII only, so Vietnamese names lost their diacritics;
            # "auto" builds it from the data. Quoted: pydeck reads bare strings as expressions.
            character_set="'auto'",
        ),
    ]
    tooltip = {
        "html": "<b>{name}</b><br/>{device_id} · {kind} {operator}<br/>"
        "state: {state}<br/>last seen: {last_seen}"
    }
    return pdk.Deck(layers=layers, initial_view_state=VIEW, map_style=None, tooltip=tooltip)
