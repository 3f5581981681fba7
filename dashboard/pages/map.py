"""Home page: the headline strip and the live map of the province; refreshes itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import coverage_view, headline
from dashboard.data import config, db, refresh_seconds, tile_url
from dashboard.i18n import labeller, t, when
from dashboard.livemap import LEGEND_COLOURS, MapOptions, deck
from store import alerts, readings, registry
from store import places as scenario_places


@st.cache_data(ttl=300, show_spinner=False)
def places() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Districts, map features and villages: scenario data, re-read every few minutes."""
    with db() as conn:
        return (
            scenario_places.districts(conn),
            scenario_places.map_features(conn),
            scenario_places.villages(conn),
        )


def focus_point(
    subject: str | None, devices: list[registry.MapDevice]
) -> tuple[float, float] | None:
    if not subject:
        return None
    districts, _, villages = places()
    for d in devices:
        if d.device_id == subject:
            return d.lat, d.lon
    for v in villages:
        if v["village_id"] == subject:
            return v["lat"], v["lon"]
    for dist in districts:
        if str(dist["code"]) == subject:
            return dist["lat"], dist["lon"]
    return None


COVERAGE_LABELS = {"off": t("map.none"), "any": t("map.any_operator")} | {
    op: op for op in ("viettel", "mobifone", "vinaphone", "vietnamobile")
}
controls = st.columns([2, 3, 2, 2])
colour_by = controls[0].radio(
    t("map.colour_by"),
    ["state", "operator"],
    format_func=labeller("map.by_", ["state", "operator"]),
    horizontal=True,
    key="map_colour_by",
)
kinds = controls[1].multiselect(
    t("map.layers"),
    ["bts", "camera", "broadband"],
    default=["bts", "camera", "broadband"],
    format_func=labeller("kind.", ["bts", "camera", "broadband"]),
    key="map_kinds",
)
show_villages = controls[2].toggle(t("head.dead_spots"), value=True, key="map_villages")
coverage_choice = controls[3].selectbox(
    t("map.coverage_layer"),
    list(COVERAGE_LABELS),
    format_func=COVERAGE_LABELS.__getitem__,
    key="map_coverage",
)
focus = st.query_params.get("focus")


@st.fragment(run_every=refresh_seconds())
def live_map() -> None:
    now = datetime.now(UTC)
    districts, features, villages = places()
    with db() as conn:
        devices = registry.map_devices(conn, now)
        health = readings.ingest_health(conn, now)
        open_alerts = alerts.open_counts(conn)
        snap = coverage_view.snapshot(conn)
    dead = coverage_view.dead_spot_ids(snap)
    cov = coverage_view.headline(snap)
    extra = coverage_view.layer(snap, villages, coverage_choice) if coverage_choice != "off" else []
    headline.strip(devices, open_alerts, cov, health)
    options = MapOptions(
        colour_by=colour_by,
        kinds=tuple(kinds),
        villages=show_villages,
        focus=focus_point(focus, devices),
        tile_url=tile_url(),
        extra_layers=extra,
        skip=config().map_skip,
    )
    if focus:
        st.caption(t("map.focus", subject=focus))
    st.pydeck_chart(
        deck(devices, villages, dead, districts, features, options), height=680, key="live-map"
    )
    legend = "  ".join(f":{c}[●] {t('state.' + s)}" for s, c in LEGEND_COLOURS.items())
    st.caption(
        f"{legend}  ·  {t('map.legend_villages')}  ·  {t('map.updated', when=when(now, 'medium'))}"
    )
    st.caption(t("map.synthetic"))


live_map()
