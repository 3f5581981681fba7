"""The IOC video wall (``?wall=1``): the headline, the live map and the open alerts in large
type, refreshing itself, with no sidebar and nothing to click. A viewer's login is enough; a
wall PC can pin its language in the address (``?wall=1&lang=en``)."""

from __future__ import annotations

import html
from datetime import UTC, datetime

import streamlit as st

from dashboard import auth, headline, live, runway_view
from dashboard.data import db, refresh_seconds, tile_url
from dashboard.i18n import LANGS, choose, follow_language, lang, mark_drawn, t, when
from dashboard.live import places
from dashboard.livemap import LEGEND_COLOURS, MapOptions, deck
from store import alerts

MAX_ALERTS = 12  # as many as a wall panel shows legibly from across the room
# A coloured dot, not an emoji: a wall PC's browser may have no colour emoji font.
SEVERITY_COLOUR = {"critical": "#e74c3c", "major": "#e67e22", "minor": "#f1c40f", "info": "#95a5a6"}

# Read across a room: bigger metrics and table text, none of Streamlit's own chrome.
WALL_CSS = """
<style>
header[data-testid="stHeader"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stToolbar"], footer { display: none !important; }
.block-container { padding-top: 0.8rem !important; max-width: 100% !important; }
[data-testid="stMetricLabel"] p { font-size: 1.35rem !important; }
[data-testid="stMetricValue"] { font-size: 3rem !important; }
[data-testid="stMetricDelta"] { font-size: 1.15rem !important; }
.ioc-wall-alerts td, .ioc-wall-alerts th { font-size: 1.3rem; padding: 0.35rem 0.5rem; }
h1 { font-size: 2.4rem !important; }
</style>
"""

st.html(WALL_CSS)


def pinned_language() -> None:
    """The address's ``?lang=`` holds on every refresh: after the login form the browser still
    sends that form's language radio with its old value, which would switch the wall back."""
    wanted = st.query_params.get("lang")
    if wanted in LANGS:
        choose(wanted)


def alert_lines(rows: list[alerts.AlertRow]) -> str:
    """The open alerts as an HTML table (st.table would show the index; a dataframe scrolls)."""

    def summary(a: alerts.AlertRow) -> str:
        return html.escape((a.summary_vi if lang() == "vi" else a.summary)[:120])

    cells = "".join(
        f'<tr><td><span style="color:{SEVERITY_COLOUR.get(a.severity, "#95a5a6")}">●</span>'
        f" {t('severity.' + a.severity)}</td>"
        f"<td>{when(a.opened_at, 'short')}</td><td><b>{html.escape(a.subject)}</b></td>"
        f"<td>{summary(a)}</td></tr>"
        for a in rows
    )
    head = (
        f"<tr><th>{t('alerts.severity')}</th><th>{t('alerts.opened')}</th>"
        f"<th>{t('alerts.subject')}</th><th>{t('alerts.summary')}</th></tr>"
    )
    return f'<table class="ioc-wall-alerts">{head}{cells}</table>'


pinned_language()
mark_drawn()


@st.fragment(run_every=refresh_seconds())
def wall() -> None:
    pinned_language()
    follow_language()
    now = datetime.now(UTC)
    scope = auth.scope()
    districts, features, villages = places(scope)
    fleet = live.state(now, scope)
    with db() as conn:
        rows = alerts.list_alerts(
            conn, alerts.AlertFilter(states=alerts.UNRESOLVED, limit=MAX_ALERTS + 1), scope=scope
        )
        at_risk = runway_view.at_risk(conn, scope=scope)
    st.title(f"{t('app.title')} · {when(now, 'short')}")
    headline.strip(fleet.devices, fleet.open_alerts, fleet.headline, fleet.health)
    risk = runway_view.wall_line(at_risk, now)
    if risk:
        st.error(risk)
    left, right = st.columns([5, 3])
    options = MapOptions(tile_url=tile_url())
    with left:
        st.pydeck_chart(deck(fleet.devices, villages, fleet.dead_spots, districts, features,
                             options), height=700, key="wall-map")  # fmt: skip
        legend = "  ".join(f":{c}[●] {t('state.' + s)}" for s, c in LEGEND_COLOURS.items())
        st.caption(f"{legend}  ·  {t('map.legend_villages')}")
    with right:
        total = sum((fleet.open_alerts or {}).values())
        st.subheader(t("wall.open_alerts", n=total))
        if not rows:
            st.info(t("wall.no_alerts"))
        else:
            st.html(alert_lines(rows[:MAX_ALERTS]))
            if total > MAX_ALERTS:
                st.caption(t("wall.more", n=total - MAX_ALERTS))
        st.caption(t("map.updated", when=when(now, "medium")))


wall()
