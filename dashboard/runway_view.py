"""The battery runway (store/runway.py) as the dashboard shows it: villages about to lose signal
as a map layer and a "next to go dark" list, the ranked table of the alerts page, a village's
and a tower's forecast.

A forecast is a moment; what a reader needs is how soon, so every time is shown as "at about
HH:MM (in ~N min)" against the refresh's ``now``. A place whose towers include one with no
forecast has no time (``loses_at`` NULL): it is shown as unknown, never as a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import psycopg
import pydeck as pdk
import streamlit as st
from babel import Locale
from babel.numbers import NumberPattern, parse_pattern

from dashboard.app import page
from dashboard.coverage_view import OPERATORS
from dashboard.data import db
from dashboard.i18n import ZONE, locale, localized, num, t, translated, when
from store import runway
from store.runway import PlaceAtRisk, SiteRunway
from store.scope import Scope

LAYER_ID = "runway"
SOON_MIN = 30  # a band's upper edge in minutes left: red below this, orange below the next
HOUR_MIN = 60
BANDS = ("soon", "hour", "later", "unknown")
# Hues the towers' states do not use (livemap.STATE_COLOURS: red offline, orange degraded,
# yellow on battery), so a village going dark is never read as a tower's state.
BAND_COLOURS: dict[str, list[int]] = {
    "soon": [214, 30, 120, 230],
    "hour": [142, 68, 173, 230],
    "later": [84, 110, 222, 220],
    "unknown": [250, 250, 250, 240],  # white: no time is known, not "later"
}
# The legend's swatches: Streamlit's named colours nearest each band.
LEGEND_COLOURS = {"soon": "red", "hour": "violet", "later": "blue", "unknown": "gray"}
NEXT_SHOWN = 8  # the "next to go dark" list under the map
SITES_NAMED = 4  # towers named in a tooltip or a line; the rest counted


def minutes_left(moment: datetime, now: datetime) -> float:
    return (moment - now).total_seconds() / 60


def band(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    left = minutes_left(moment, now)
    return "soon" if left < SOON_MIN else "hour" if left < HOUR_MIN else "later"


class Words:
    """This session's labels and number format, looked up once a draw: a refresh formats
    every village at risk, and each :func:`t` or :func:`num` reads the session's language."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}
        self._locale = Locale.parse(locale())
        self._patterns: dict[int, NumberPattern] = {}

    def __call__(self, key: str, **fields: object) -> str:
        text = self._labels.get(key)
        if text is None:
            text = self._labels[key] = t(key)
        return text.format(**fields) if fields else text

    def num(self, value: float, digits: int = 0) -> str:
        # As i18n.num, with the locale and the pattern parsed once, not per row.
        pattern = self._patterns.get(digits)
        if pattern is None:
            spec = "#,##0" + ("." + "0" * digits if digits else "")
            pattern = self._patterns[digits] = parse_pattern(spec)
        return str(pattern.apply(value, self._locale))


def clock(moment: datetime, now: datetime) -> str:
    """HH:MM in the province's zone, with the day when it is not today's. The same in both
    languages, so a plain strftime: babel per row cost a map refresh with hundreds of rows."""
    local = moment.astimezone(ZONE)
    same_day = local.date() == now.astimezone(ZONE).date()
    return local.strftime("%H:%M" if same_day else "%H:%M %d/%m")


def in_about(w: Words, moment: datetime, now: datetime) -> str:
    """Time left as "in ~N min" (hours past two), or "due now" once the time has passed."""
    left = minutes_left(moment, now)
    if left <= 0:
        return w("runway.due")
    if left < 120:
        return w("runway.in", span=w("runway.minutes", n=w.num(max(1, round(left)))))
    return w("runway.in", span=w("runway.hours", n=w.num(left / 60, 1)))


def loses_line(w: Words, row: PlaceAtRisk, now: datetime) -> str:
    """A place's forecast line: "loses all mobile signal at about HH:MM (in ~N min)", or
    "loses viettel at ..." for one operator."""
    whole = row.operator == "any"
    if row.loses_at is None:
        key = "runway.loses_all_unknown" if whole else "runway.loses_op_unknown"
        return w(key, operator=row.operator)
    key = "runway.loses_all" if whole else "runway.loses_op"
    at, left = clock(row.loses_at, now), in_about(w, row.loses_at, now)
    return w(key, operator=row.operator, at=at, left=left)


def sites_text(w: Words, sites: Sequence[str]) -> str:
    named = ", ".join(sites[:SITES_NAMED])
    if len(sites) > SITES_NAMED:
        named += " " + w("runway.and_more", n=w.num(len(sites) - SITES_NAMED))
    return w("runway.sites", sites=named)


def spread(w: Words, early: datetime | None, late: datetime | None, now: datetime) -> str:
    if early is None or late is None:
        return w("runway.band_unknown")
    return f"{clock(early, now)}–{clock(late, now)}"


def at_risk(
    conn: psycopg.Connection, operator: str | None = "any", *, scope: Scope
) -> list[PlaceAtRisk]:
    """Villages of the scope every serving tower of which (of ``operator``) is on battery,
    soonest first. Read on each refresh, not cached: the table holds only the places at risk,
    a few rows beside the thousands of towers the map reads anyway."""
    return runway.places_at_risk(conn, scope=scope, operator=operator, place_kind="village")


def frame(rows: Sequence[PlaceAtRisk], now: datetime) -> pd.DataFrame:
    """The layer's rows: what it draws and the tooltip (title, line1..3) shows."""
    rows = [r for r in rows if r.lat is not None and r.lon is not None]
    w = Words()
    return pd.DataFrame(
        {
            "id": [r.place_id for r in rows],  # what a click on the map opens (?village=)
            "lat": [r.lat for r in rows],
            "lon": [r.lon for r in rows],
            # Area follows population, as the dead spots' rings do.
            "radius": [110 + 14 * math.sqrt(r.population) for r in rows],
            "colour": [BAND_COLOURS[band(r.loses_at, now)] for r in rows],
            "title": [f"{r.name} · {r.commune}" for r in rows],
            "line1": [loses_line(w, r, now) for r in rows],
            "line2": [w("runway.people", n=w.num(r.population)) for r in rows],
            "line3": [sites_text(w, r.sites) for r in rows],
        }
    )


def layers(rows: Sequence[PlaceAtRisk], now: datetime) -> list[pdk.Layer]:
    """One ring a village at risk, coloured by how soon. Rings, not discs: drawn over the
    towers (see :func:`over`), a ring leaves the towers on battery inside it in sight and
    clickable, and a click on the ring itself opens the village."""
    if not rows:
        return []
    return [
        pdk.Layer(
            "ScatterplotLayer",
            frame(rows, now),
            id=LAYER_ID,
            get_position=["lon", "lat"],
            filled=False,
            stroked=True,
            get_line_color="colour",
            line_width_min_pixels=3.5,
            get_radius="radius",
            radius_min_pixels=10,
            pickable=True,
        )
    ]


def over(chart: pdk.Deck, rows: Sequence[PlaceAtRisk], now: datetime) -> pdk.Deck:
    """``chart`` (dashboard/livemap.py's deck) with the villages at risk drawn over the towers'
    markers and under the district names: in a town, under the towers, they were hidden."""
    ids = [layer.id for layer in chart.layers]
    at = ids.index("labels") if "labels" in ids else len(ids)
    chart.layers[at:at] = layers(rows, now)
    return chart


def legend(rows: Sequence[PlaceAtRisk]) -> str:
    """The layer's colours as Markdown for a caption, with when it was forecast."""
    swatches = "  ".join(f":{LEGEND_COLOURS[b]}[●] {t('runway.band_' + b)}" for b in BANDS)
    computed = max(r.computed_at for r in rows)
    return f"{t('runway.legend')}: {swatches}  ·  {t('runway.computed', when=when(computed))}"


def next_dark(rows: Sequence[PlaceAtRisk], now: datetime) -> None:
    """Under the map: the villages forecast to lose all signal soonest, each a link."""
    st.markdown(f"**{t('runway.next', n=num(len(rows)))}**")
    if not rows:
        st.caption(t("runway.none"))
        return
    st.caption(legend(rows))
    w = Words()
    for r in rows[:NEXT_SHOWN]:
        label = t("runway.next_line", name=r.name, commune=r.commune,
                  loses=loses_line(w, r, now), people=num(r.population))  # fmt: skip
        st.page_link(page("village"), label=label, query_params={"village": r.place_id})
    if len(rows) > NEXT_SHOWN:
        st.caption(t("runway.and_more_villages", n=num(len(rows) - NEXT_SHOWN)))


def table(rows: Sequence[PlaceAtRisk], now: datetime) -> pd.DataFrame:
    """The alerts page's ranked list (the store's order: soonest first, unknown last)."""
    w = Words()
    return pd.DataFrame(
        {
            t("runway.village"): [r.name for r in rows],
            t("runway.commune"): [r.commune for r in rows],
            t("runway.district"): [r.district for r in rows],
            t("runway.loses_at"): [
                clock(r.loses_at, now) if r.loses_at else w("runway.band_unknown") for r in rows
            ],
            t("runway.left"): [
                in_about(w, r.loses_at, now) if r.loses_at else w("runway.band_unknown")
                for r in rows
            ],
            t("runway.urgency"): [w("runway.band_" + band(r.loses_at, now)) for r in rows],
            t("runway.spread"): [spread(w, r.loses_early, r.loses_late, now) for r in rows],
            t("runway.population"): [r.population for r in rows],
            t("runway.sites_col"): [", ".join(r.sites) for r in rows],
            "#": [r.place_id for r in rows],
        }
    )


def operator_label(operator: str) -> str:
    return t("runway.any") if operator == "any" else operator


def risk_panel(now: datetime, *, scope: Scope) -> None:
    """The alerts page's "coverage at risk": the ranked villages, for all signal or one
    operator's."""
    with db() as conn:
        rows = at_risk(conn, operator=None, scope=scope)
    whole = [r for r in rows if r.operator == "any"]
    with st.expander(t("runway.panel", n=num(len(whole))), expanded=bool(rows)):
        st.caption(t("runway.panel_note"))
        choice = st.selectbox(
            t("runway.operator"),
            ["any", *OPERATORS],
            format_func={op: operator_label(op) for op in ("any", *OPERATORS)}.__getitem__,
            key=translated("runway_operator", default="any"),
        )
        shown = [r for r in rows if r.operator == choice]
        if not shown:
            st.caption(t("runway.none"))
            return
        st.dataframe(localized(table(shown, now)), hide_index=True, width="stretch",
                     height=min(420, 38 + 35 * len(shown)))  # fmt: skip


def village_lines(rows: Sequence[PlaceAtRisk], village_id: str, now: datetime) -> None:
    """On a village's page: all signal first, then each operator it would lose."""
    mine = [r for r in rows if r.place_id == village_id]
    mine.sort(key=lambda r: (r.operator != "any", r.operator))
    w = Words()
    for r in mine:
        line = f"{loses_line(w, r, now)} · {sites_text(w, r.sites)}"
        line = line[:1].upper() + line[1:]  # a sentence of its own here, not after a name
        (st.error if r.operator == "any" else st.warning)(line)


def _drain(site: SiteRunway) -> str:
    if site.drain_pct_per_h is None:
        return t("runway.band_unknown")
    return t("runway.drain_value", rate=num(site.drain_pct_per_h, 1))


def device_forecast(site: SiteRunway | None, now: datetime) -> None:
    """On a tower's page, while it is on battery: its charge, drain and when it goes dark."""
    if site is None:
        return
    st.subheader(t("runway.device_title"))
    w = Words()
    st.caption(t("runway.on_battery_since", when=when(site.on_battery_since, "medium")))
    cols = st.columns(4)
    charge = "—" if site.battery_pct is None else f"{num(site.battery_pct, 0)} %"
    cols[0].metric(t("runway.battery"), charge, delta=when(site.read_at), delta_color="off",
                   delta_arrow="off")  # fmt: skip
    cols[1].metric(t("runway.drain"), _drain(site))
    cols[2].metric(t("runway.method"), t("runway.method_" + site.method),
                   delta=t("runway.readings", n=num(site.readings)), delta_color="off",
                   delta_arrow="off")  # fmt: skip
    if site.dark_at is None:
        cols[3].metric(t("runway.dark_at"), t("runway.band_unknown"))
        st.info(t("runway.device_unknown"))
        return
    cols[3].metric(
        t("runway.dark_at"),
        clock(site.dark_at, now),
        delta=in_about(w, site.dark_at, now),
        delta_color="off",
        delta_arrow="off",
    )
    line = t("runway.device_dark", at=clock(site.dark_at, now), left=in_about(w, site.dark_at, now),
             spread=spread(w, site.dark_early, site.dark_late, now),
             urgency=t("runway.band_" + band(site.dark_at, now)))  # fmt: skip
    (st.error if band(site.dark_at, now) == "soon" else st.warning)(line)


def site_forecast(conn: psycopg.Connection, device_id: str, *, scope: Scope) -> SiteRunway | None:
    sites = runway.site_runways(conn, scope=scope)
    return next((s for s in sites if s.device_id == device_id), None)


def wall_line(rows: Sequence[PlaceAtRisk], now: datetime) -> str | None:
    """The wall's one line: villages forecast to lose all signal within the hour."""
    soon = [r for r in rows if band(r.loses_at, now) in ("soon", "hour")]
    if not soon:
        return None
    people = sum(r.population for r in soon)
    return t("runway.wall", n=num(len(soon)), people=num(people), minutes=num(HOUR_MIN))
