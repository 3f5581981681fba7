"""The coverage page's "Where to build" panel: the siting advisor (processing/coverage/advise.py)
run on the live verdicts, its picks as a table and on a map with the villages each brings
online."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pydeck as pdk
import streamlit as st

from dashboard import livemap
from dashboard.auth import scope
from dashboard.data import config, db, tile_url
from dashboard.i18n import localized, num, t
from devices.kinds import Operator
from processing.coverage.advise import (
    Advice,
    AdvisorSetup,
    Ground,
    StandardSite,
    advise,
    candidate_mask,
    ground_from_db,
)
from store.places import districts, map_features

ANY = "any"
RESULT_KEY = "advise_result"
# Bright on the map's dark district fill: amber sites, cyan villages they light, red left dark.
PICK_RGB = [255, 196, 0]
ONLINE_RGB = [0, 200, 255]
LEFT_RGB = [255, 59, 48]


def site_text(site: StandardSite) -> str:
    def n(value: float) -> str:
        return num(value, 0 if float(value).is_integer() else 1)

    return t("advise.site", technology=site.technology.value, band=n(site.band_mhz),
             height=n(site.height_m), power=n(site.tx_power_dbm), sectors=n(site.sectors),
             tilt=n(site.tilt_deg))  # fmt: skip


def operator_label(value: str) -> str:
    return t("advise.any") if value == ANY else value.capitalize()


def setup() -> AdvisorSetup:
    advisor = config().advisor
    assert advisor is not None  # the panel is shown only with it
    return advisor


def run(operator: str, towers: int, road_km: float) -> tuple[Ground, Advice] | str:
    """The advice, or why there is none (a translated line)."""
    url = config().database_url
    assert url is not None  # the page has opened db() before
    how = setup()
    try:
        provinces = scope().provinces  # a scoped user's first; national: the only one loaded
        ground = ground_from_db(url, how.coverage, province=min(provinces) if provinces else None)
    except ValueError:
        return t("cov.unavailable")
    op = None if operator == ANY else Operator(operator)
    if not ground.uncovered(op):
        return t("advise.nothing", operator=operator_label(operator))
    if not candidate_mask(ground, how.spacing_m, road_km).any():
        return t("advise.no_candidates", km=num(road_km, 1))
    return ground, advise(ground, op, towers, site=how.site, spacing_m=how.spacing_m,
                          road_km=road_km)  # fmt: skip


def table(ground: Ground, advice: Advice) -> pd.DataFrame:
    communes = {p.commune_code: p.name for p in ground.communes}
    return pd.DataFrame(
        [
            {
                t("advise.rank"): p.rank,
                t("advise.position"): f"{p.lat:.5f}, {p.lon:.5f}",
                t("advise.commune"): communes.get(p.commune_code, ""),
                t("advise.district"): ground.district_names.get(p.district_code, ""),
                t("advise.villages"): ", ".join(v.name for v in p.villages),
                t("advise.people"): p.population,
            }
            for p in advice.picks
        ]
    )


def layers(ground: Ground, advice: Advice) -> list[pdk.Layer]:
    communes = {p.commune_code: p.name for p in ground.communes}
    online = {v.place_id for p in advice.picks for v in p.villages}
    picks = pd.DataFrame(
        [
            {"lat": p.lat, "lon": p.lon, "title": t("advise.pick", rank=p.rank),
             "line1": f"{communes.get(p.commune_code, '')}, "
                      f"{ground.district_names.get(p.district_code, '')}",
             "line2": t("advise.brings", villages=num(len(p.villages)), people=num(p.population)),
             "line3": ""}
            for p in advice.picks
        ]
    )  # fmt: skip
    villages = pd.DataFrame(
        [
            {"lat": v.lat, "lon": v.lon, "title": v.name, "line1": communes.get(v.commune_code, ""),
             "line2": t("advise.village_people", people=num(v.population)),
             "line3": t("advise.online_by", rank=p.rank), "plat": p.lat, "plon": p.lon}
            for p in advice.picks
            for v in p.villages
        ]
    )  # fmt: skip
    left = pd.DataFrame(
        [
            {"lat": v.lat, "lon": v.lon, "title": v.name, "line1": communes.get(v.commune_code, ""),
             "line2": t("advise.village_people", people=num(v.population)),
             "line3": t("advise.still_dark")}
            for v in ground.uncovered(advice.operator)
            if v.place_id not in online
        ]
    )  # fmt: skip
    out = []
    if not villages.empty:
        out.append(pdk.Layer("LineLayer", villages, id="advise-links",
                             get_source_position=["plon", "plat"],
                             get_target_position=["lon", "lat"],
                             get_color=ONLINE_RGB, get_width=2))  # fmt: skip
    for frame, layer_id, rgb, pixels in (
        (left, "advise-left", LEFT_RGB, 5),
        (villages, "advise-online", ONLINE_RGB, 5),
        (picks, "advise-picks", PICK_RGB, 9),
    ):
        if not frame.empty:
            out.append(pdk.Layer("ScatterplotLayer", frame, id=layer_id,
                                 get_position=["lon", "lat"], get_fill_color=[*rgb, 235],
                                 get_line_color=[0, 0, 0, 255], stroked=True,
                                 line_width_min_pixels=1.5, get_radius=pixels * 60,
                                 radius_min_pixels=pixels, pickable=True))  # fmt: skip
    return out


def panel() -> None:
    """The panel: a form, then the last result of this session."""
    if config().advisor is None:
        return
    st.subheader(t("advise.title"))
    st.caption(t("advise.note", site=site_text(setup().site)))
    with st.form("advise_form"):
        left, middle, right = st.columns(3)
        operator = left.selectbox(t("advise.operator"), [ANY, *(o.value for o in Operator)],
                                  format_func=operator_label, key="advise_operator")  # fmt: skip
        towers = middle.number_input(t("advise.towers"), min_value=1, max_value=20, value=3,
                                     step=1, key="advise_towers")  # fmt: skip
        road_km = right.number_input(t("advise.road_km"), min_value=0.0, max_value=50.0,
                                     value=setup().road_km, step=0.5,
                                     key="advise_road_km")  # fmt: skip
        if st.form_submit_button(t("advise.run")):
            with st.spinner(t("advise.running")):
                st.session_state[RESULT_KEY] = run(str(operator), int(towers), float(road_km))
    result: Any = st.session_state.get(RESULT_KEY)
    if result is None:
        return
    if isinstance(result, str):
        st.warning(result)
        return
    ground, advice = result
    st.markdown(
        t("advise.summary", people=num(advice.population_gained), sites=num(len(advice.picks)),
          uncovered=num(advice.uncovered_population), villages=num(advice.uncovered_villages))
    )  # fmt: skip
    if len(advice.picks) < advice.towers_asked:
        st.info(t("advise.fewer", placed=num(len(advice.picks)), asked=num(advice.towers_asked)))
    st.dataframe(localized(table(ground, advice)), hide_index=True, width="stretch")
    with db() as conn:
        shapes, features = districts(conn, scope=scope()), map_features(conn, scope=scope())
    options = livemap.MapOptions(kinds=(), villages=False, tile_url=tile_url(),
                                 extra_layers=layers(ground, advice))  # fmt: skip
    st.pydeck_chart(livemap.deck([], [], set(), shapes, features, options), height=520)
    st.caption(t("advise.legend"))
