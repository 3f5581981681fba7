"""Home page: the headline strip and the live map of the provinces in the user's scope;
refreshes itself. With several provinces it opens on the national view (each province coloured
by its state, a table of their figures) and drills into one (the selector, or ``?province=24``);
with one province it is that province's map."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import pandas as pd
import pydeck as pdk
import streamlit as st

from dashboard import (
    auth,
    coverage_raster,
    coverage_view,
    headline,
    history_view,
    live,
    runway_view,
)
from dashboard.app import page
from dashboard.data import config, db, refresh_seconds, tile_url
from dashboard.i18n import follow_language, labeller, t, translated, when
from dashboard.live import places
from dashboard.livemap import (
    LEGEND_COLOURS,
    MAP_HEIGHT_PX,
    MapOptions,
    deck,
    national_deck,
    province_state,
)
from store import national, registry
from store.scope import Scope

ALL = 0  # the selector's "All provinces"


def province_choice(provinces: dict[int, str]) -> int | None:
    """The province drilled into, or None for the national view. A ``?province=`` link is
    followed once (afterwards the selector is the user's) and the address names the choice."""
    if len(provinces) == 1:
        return next(iter(provinces))
    wanted = st.query_params.get("province")
    code = int(wanted) if wanted and wanted.isdigit() else None
    if code in provinces and st.session_state.get("map_province_link") != code:
        st.session_state["map_province_link"] = code
        st.session_state["map_province"] = code
    names = {ALL: t("nat.all"), **provinces}
    chosen = st.selectbox(
        t("nat.pick"),
        list(names),
        format_func=names.__getitem__,
        key=translated("map_province", default=ALL),
    )
    if chosen == ALL:
        st.query_params.pop("province", None)
        return None
    st.query_params["province"] = str(chosen)
    return int(chosen)


scope = auth.scope()
province = province_choice(live.provinces(scope))
shown = scope if province is None else Scope.of([province])  # within the user's: listed above
nationwide = province is None


def focus_point(
    subject: str | None, devices: list[registry.MapDevice]
) -> tuple[float, float] | None:
    if not subject:
        return None
    districts, _, villages = places(shown)
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
# A past moment to look at, or None: live. One province at a time: the past map draws the
# province's background, which for the whole scope would be far too large an image.
past = None if nationwide else history_view.control()


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
        if layer_id == "provinces" and objects:  # the national view: drill into it
            st.session_state["map_province"] = int(objects[0]["id"])
            st.session_state[_OPEN] = (layer_id, str(objects[0]["id"]))
            return
        if layer_id in _DETAIL and objects and objects[0].get("id"):
            st.session_state[_OPEN] = (layer_id, str(objects[0]["id"]))
            return


def open_picked() -> None:
    wanted = st.session_state.pop(_OPEN, None)
    if wanted is None:
        return
    st.session_state[_OPENED] = st.session_state.get(_OPENED, 0) + 1
    if wanted[0] == "provinces":  # the selector (outside this fragment) takes the pick
        st.rerun(scope="app")
    target, param = _DETAIL[wanted[0]]
    st.switch_page(page(target), query_params={param: wanted[1]})


def province_table(rows: list[national.ProvinceHeadline]) -> None:
    """The provinces' figures, sortable (a click on a column's head)."""
    states = {s: t(f"nat.state_{s}") for s in ("red", "amber", "green")}
    frame = pd.DataFrame(
        {
            t("nat.province"): [r.name for r in rows],
            t("nat.state"): [states[province_state(r)] for r in rows],
            t("nat.sites"): [r.sites for r in rows],
            t("nat.online"): [r.sites_online for r in rows],
            t("nat.offline"): [r.sites_offline for r in rows],
            t("nat.unknown"): [r.sites_unknown for r in rows],
            t("nat.cameras_offline"): [r.cameras_offline for r in rows],
            t("nat.broadband_offline"): [r.broadband_offline for r in rows],
            t("nat.dead"): [r.dead_spot_villages for r in rows],
            t("nat.people"): [r.dead_spot_population for r in rows],
            t("nat.critical"): [r.alerts_critical for r in rows],
            t("nat.major"): [r.alerts_major for r in rows],
        }
    )
    st.markdown(f"**{t('nat.table')}**")
    st.dataframe(frame, hide_index=True, key="map_provinces_table")


def options_now(devices: list[registry.MapDevice], extra: list[pdk.Layer]) -> MapOptions:
    return MapOptions(
        colour_by=colour_by,
        kinds=tuple(kinds),
        villages=show_villages,
        focus=focus_point(focus, devices),
        tile_url=tile_url(),
        extra_layers=extra,
        skip=config().map_skip,
    )


@st.fragment(run_every=history_view.refresh_every(refresh_seconds()))
def live_map() -> None:
    follow_language()
    open_picked()
    now = datetime.now(UTC)
    districts, features, villages = places(shown)
    fleet = live.state(now, shown)
    devices, dead = fleet.devices, fleet.dead_spots
    if past is not None:  # states and dark villages then, from the kept history
        key = chart_key()
        chart = partial(st.pydeck_chart, height=MAP_HEIGHT_PX, key=key,
                        on_select=partial(picked, key), selection_mode="single-object")  # fmt: skip
        history_view.draw_past(past, devices, (districts, features, villages),
                               options_now(devices, []), chart, scope=shown)  # fmt: skip
        return
    rasters = []
    with db() as conn:
        if coverage_choice != "off":  # a raster is read only when its stamp moved
            rasters = coverage_raster.images(conn, coverage_choice, districts, scope=shown)
        at_risk = runway_view.at_risk(conn, scope=shown)
        figures = national.province_headlines(conn, scope=shown) if nationwide else []
    headline.strip(devices, fleet.open_alerts, fleet.headline, fleet.health)
    options = options_now(devices, coverage_view.layer(rasters))
    if focus:
        st.caption(t("map.focus", subject=focus))
    if nationwide:
        chart = national_deck(figures, features, devices, villages, dead, options)
    else:
        chart = deck(devices, villages, dead, districts, features, options)
    st.pydeck_chart(
        runway_view.over(chart, at_risk, now),
        height=MAP_HEIGHT_PX,
        key=chart_key(),
        on_select=partial(picked, chart_key()),
        selection_mode="single-object",
    )
    legend = "  ".join(f":{c}[●] {t('state.' + s)}" for s, c in LEGEND_COLOURS.items())
    st.caption(
        f"{legend}  ·  {t('map.legend_villages')}  ·  {t('map.updated', when=when(now, 'medium'))}"
    )
    if nationwide:
        st.caption(t("nat.legend"))
        province_table(figures)
    if coverage_choice != "off":
        st.caption(coverage_view.legend(rasters[0] if rasters else None))
    st.caption(t("map.synthetic"))
    runway_view.next_dark(at_risk, now)


live_map()
