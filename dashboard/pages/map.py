"""Home page: the headline strip and the live map of the province; refreshes itself."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import streamlit as st

from dashboard import coverage_view, headline, history_view, live, runway_view
from dashboard.app import page
from dashboard.data import config, db, refresh_seconds, tile_url
from dashboard.i18n import follow_language, labeller, t, translated, when
from dashboard.live import places
from dashboard.livemap import LEGEND_COLOURS, MAP_HEIGHT_PX, MapOptions, deck
from store import registry


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
    key=translated("map_colour_by"),
)
kinds = controls[1].multiselect(
    t("map.layers"),
    ["bts", "camera", "broadband"],
    format_func=labeller("kind.", ["bts", "camera", "broadband"]),
    key=translated("map_kinds", default=["bts", "camera", "broadband"]),
)
show_villages = controls[2].toggle(t("head.dead_spots"), value=True, key="map_villages")
coverage_choice = controls[3].selectbox(
    t("map.coverage_layer"),
    list(COVERAGE_LABELS),
    format_func=COVERAGE_LABELS.__getitem__,
    key=translated("map_coverage"),
)
focus = st.query_params.get("focus")
past = history_view.control()  # a past moment to look at, or None: live


# Click-through: the chart's selection callback runs once per new click (never on the
# fragment's timed reruns, which leave the selection as it is) and notes what was picked; the
# fragment then opens its page. A callback cannot switch pages itself. The browser keeps a
# chart's last selection and sends it again when its page comes back (the back button), which
# would open the same page once more: each click that opened a page retires the chart's key,
# so the map comes back as a new chart with nothing selected.
_OPEN = "map_open"
_OPENED = "map_opened"  # how many clicks opened a page: the chart's key follows it
_DETAIL = {"dead-spots": ("village", "village")} | {
    f"devices-{kind}": ("device", "device") for kind in ("bts", "camera", "broadband")
}
_DETAIL[runway_view.LAYER_ID] = ("village", "village")  # a village at risk opens its page too


def chart_key() -> str:
    return f"live-map-{st.session_state.get(_OPENED, 0)}"


def picked(key: str) -> None:
    # A retired chart's selection can still arrive (with the rerun that leaves the page).
    if key != chart_key() or key not in st.session_state:
        return
    chosen = st.session_state[key].selection.objects
    for layer_id, objects in chosen.items():
        if layer_id in _DETAIL and objects and objects[0].get("id"):
            st.session_state[_OPEN] = (layer_id, str(objects[0]["id"]))
            return


def open_picked() -> None:
    wanted = st.session_state.pop(_OPEN, None)
    if wanted is not None:
        target, param = _DETAIL[wanted[0]]
        st.session_state[_OPENED] = st.session_state.get(_OPENED, 0) + 1
        st.switch_page(page(target), query_params={param: wanted[1]})


@st.fragment(run_every=history_view.refresh_every(refresh_seconds()))
def live_map() -> None:
    follow_language()
    open_picked()
    now = datetime.now(UTC)
    districts, features, villages = places()
    fleet = live.state(now)
    devices, dead = fleet.devices, fleet.dead_spots
    if past is not None:  # states and dark villages then, from the kept history
        options = MapOptions(
            colour_by=colour_by,
            kinds=tuple(kinds),
            villages=show_villages,
            focus=focus_point(focus, devices),
            tile_url=tile_url(),
            skip=config().map_skip,
        )
        key = chart_key()
        chart = partial(st.pydeck_chart, height=MAP_HEIGHT_PX, key=key,
                        on_select=partial(picked, key), selection_mode="single-object")  # fmt: skip
        history_view.draw_past(past, devices, (districts, features, villages), options, chart)
        return
    raster = None
    if coverage_choice != "off":  # the raster is read only when its stamp moved
        with db() as conn:
            raster = coverage_view.raster_image(conn, coverage_choice, districts)
    with db() as conn:
        at_risk = runway_view.at_risk(conn)
    extra = coverage_view.layer(raster)
    headline.strip(devices, fleet.open_alerts, fleet.headline, fleet.health)
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
        runway_view.over(deck(devices, villages, dead, districts, features, options), at_risk, now),
        height=MAP_HEIGHT_PX,
        key=chart_key(),
        on_select=partial(picked, chart_key()),
        selection_mode="single-object",
    )
    legend = "  ".join(f":{c}[●] {t('state.' + s)}" for s, c in LEGEND_COLOURS.items())
    st.caption(
        f"{legend}  ·  {t('map.legend_villages')}  ·  {t('map.updated', when=when(now, 'medium'))}"
    )
    if coverage_choice != "off":
        st.caption(coverage_view.legend(raster))
    st.caption(t("map.synthetic"))
    runway_view.next_dark(at_risk, now)


live_map()
