"""The map at a past moment (issue 18, part 3), and a village's outage timeline.

The map's control picks a moment (date and time, in the province's zone; default: live). At a
past moment the map shows each device's state then and the villages dark then, read from the
history the services keep (store/coverage_history.py), never recomputed; the coverage raster
is current only, so it is hidden and the page says so; a banner names the moment, with a way
back to live, and the map stops refreshing itself while it shows the past.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import altair as alt
import pandas as pd
import pydeck as pdk
import streamlit as st

from dashboard.data import db
from dashboard.i18n import num, t, when
from dashboard.livemap import MapOptions, deck
from devices.clock import LOCAL_ZONE as ZONE
from store import registry
from store.coverage_history import coverage_at, device_states_at, history_span, sites_down_at
from store.scope import Scope

PAST_ON = "map_past_on"
PAST_DATE = "map_past_date"
PAST_TIME = "map_past_time"
OPERATORS = ("viettel", "mobifone", "vinaphone", "vietnamobile")


def _back_to_live() -> None:
    st.session_state[PAST_ON] = False


def control() -> datetime | None:
    """The map's time control; the moment chosen (aware), or None for live."""
    if not st.toggle(t("history.look_back"), key=PAST_ON):
        return None
    local_now = datetime.now(ZONE)
    default = local_now - timedelta(hours=1)
    st.session_state.setdefault(PAST_DATE, default.date())
    st.session_state.setdefault(PAST_TIME, default.time().replace(second=0, microsecond=0))
    left, right = st.columns(2)
    day: date = left.date_input(t("history.date"), key=PAST_DATE, format="DD/MM/YYYY")
    clock: time = right.time_input(t("history.time"), key=PAST_TIME, step=timedelta(minutes=5))
    return datetime.combine(day, clock, tzinfo=ZONE)


def refresh_every(live_seconds: float) -> float | None:
    """The map fragment's period: none while a past moment is shown (nothing there changes)."""
    return None if st.session_state.get(PAST_ON) else live_seconds


def _short(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%H:%M %d/%m")


def outside_history(moment: datetime, *, scope: Scope) -> str | None:
    """One line saying why the kept history cannot show ``moment``; None where it can."""
    with db() as conn:
        span = history_span(conn, scope=scope)
    if span is None:
        return t("history.none_kept")
    if moment < span.earliest:
        return t("history.before_kept", earliest=when(span.earliest, "medium"))
    if moment > datetime.now(UTC):
        return t("history.future")
    return None


def past_devices(
    devices: Iterable[registry.MapDevice], moment: datetime, *, scope: Scope
) -> list[Any]:
    """The devices as the map draws them, in their state at ``moment`` (no reading then: the
    tooltip's metrics are today's, so they are left out)."""
    with db() as conn:
        states = device_states_at(conn, moment, scope=scope)
    out = []
    for d in devices:
        then = states.get(d.device_id)
        state = then.state if then is not None and then.since is not None else "unknown"
        since = then.since if then is not None else None
        out.append(dataclasses.replace(d, state=state, last_seen=since, latest=None))
    return out


def draw_past(
    moment: datetime,
    devices: list[registry.MapDevice],
    places: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]],
    options: MapOptions,
    chart: Callable[[pdk.Deck], Any],
    *,
    scope: Scope,
) -> None:
    """The banner and the map of ``scope`` at ``moment``; one clear line where the history
    cannot show it."""
    problem = outside_history(moment, scope=scope)
    banner, back = st.columns([5, 1])
    if back.button(t("history.back_to_live"), on_click=_back_to_live, key="map_past_back"):
        st.rerun(scope="app")  # the whole page: the map refreshes itself again
    if problem is not None:
        banner.error(problem)
        return
    with db() as conn:
        picture = coverage_at(conn, moment, scope=scope)
        down = sites_down_at(conn, moment, scope=scope)
    dark = picture.dark
    banner.warning(
        t(
            "history.as_of",
            when=_short(moment),
            villages=num(len(dark)),
            people=num(sum(v.population for v in dark)),
            sites=num(len(down)),
        )
    )
    districts, features, villages = places
    shown = past_devices(devices, moment, scope=scope)
    dead = {v.village_id for v in dark}
    chart(deck(shown, villages, dead, districts, features, dataclasses.replace(options)))
    st.caption(t("history.raster_hidden"))
    if picture.outages:
        st.dataframe(
            pd.DataFrame(
                {
                    t("history.village"): [v.name for v in picture.outages],
                    t("village.commune"): [v.commune for v in picture.outages],
                    t("village.district"): [v.district for v in picture.outages],
                    t("village.population"): [num(v.population) for v in picture.outages],
                    t("history.lost"): [", ".join(v.lost) for v in picture.outages],
                    t("history.sites"): [
                        ", ".join(_site(picture.devices, d) for d in v.towers)
                        for v in picture.outages
                    ],
                }
            ),
            hide_index=True,
            width="stretch",
        )


def _site(devices: dict[str, Any], device_id: str) -> str:
    then = devices.get(device_id)
    state = then.state if then is not None and then.since is not None else "unknown"
    return f"{device_id} ({t('state.' + state)})"


# -- a village's outage timeline ----------------------------------------------------------


def outage_periods(events: Iterable[dict[str, Any]], until: datetime) -> pd.DataFrame:
    """Periods without signal from a village's coverage events (any order): per operator
    from the event that lost it to the one that brought it back, and for all operators from
    "lost" to "restored". A period still open ends at ``until``."""
    rows: list[dict[str, Any]] = []
    opened: dict[str, datetime] = {}
    for e in sorted(events, key=lambda e: (e["ts"], e.get("id", 0))):
        ts = e["ts"]
        for op in e["operators_lost"]:
            opened.setdefault(op, ts)
        if e["kind"] == "lost":
            opened.setdefault("", ts)
        for op in list(opened):
            back = op in e["operators_now"] if op else bool(e["operators_now"])
            if back:
                rows.append({"track": op, "start": opened.pop(op), "end": ts})
    rows += [{"track": op, "start": start, "end": until} for op, start in opened.items()]
    return pd.DataFrame(rows, columns=["track", "start", "end"])


def timeline_chart(events: list[dict[str, Any]], until: datetime) -> None:
    """Bars over time: the periods without signal, one row per operator and one for all."""
    periods = outage_periods(events, until)
    if periods.empty:
        st.caption(t("history.no_outages"))
        return
    every = t("history.all_operators")
    frame = periods.assign(
        track=periods["track"].map(lambda op: op or every),
        start=periods["start"].map(lambda m: m.astimezone(ZONE).replace(tzinfo=None)),
        end=periods["end"].map(lambda m: m.astimezone(ZONE).replace(tzinfo=None)),
    )
    frame["minutes"] = (frame["end"] - frame["start"]).dt.total_seconds() / 60
    now = until.astimezone(ZONE).replace(tzinfo=None)
    chart = (
        alt.Chart(frame)
        .mark_bar(color="#e74c3c")
        .encode(
            x=alt.X(
                "start:T",
                title=t("history.time_axis"),
                axis=alt.Axis(format="%H:%M %d/%m"),
                # up to now: a period long over reads as over, not as the whole picture
                scale=alt.Scale(domain=[frame["start"].min().isoformat(), now.isoformat()]),
            ),
            x2="end:T",
            y=alt.Y("track:N", title=None, sort=[every, *OPERATORS]),
            tooltip=[
                alt.Tooltip("track:N", title=t("village.operator")),
                alt.Tooltip("start:T", title=t("history.from"), format="%H:%M %d/%m"),
                alt.Tooltip("end:T", title=t("history.to"), format="%H:%M %d/%m"),
                alt.Tooltip("minutes:Q", title=t("history.minutes"), format=",.0f"),
            ],
        )
        .properties(height=alt.Step(28))  # a row per track, each tall enough for its label
    )
    st.altair_chart(chart, width="stretch")
