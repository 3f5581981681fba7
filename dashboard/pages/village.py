"""One village (``?village=ID``, or picked here; the map opens it when a dead spot is clicked):
where it is, how many live there, its coverage now per operator, its outage timeline with the
towers recorded as the cause of each change, the towers serving it now by operator
(``place_towers``), and the nearest ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import auth, history_view, live, runway_view
from dashboard.app import page
from dashboard.data import db
from dashboard.i18n import num, t, when
from store import villages

OPERATORS = ("viettel", "mobifone", "vinaphone", "vietnamobile")
# Towers serving it linked per operator, nearest first: in the province's towns the prediction
# has a village within reach of a hundred towers or more, and the count says how many.
SITES_SHOWN = 5


# The picker lists every village of the user's provinces, from the data the map already caches.
scope = auth.scope()
names = {v["village_id"]: f"{v['name']} · {v['commune_name']} · {v['village_id']}"
         for v in live.places(scope)[2]}  # fmt: skip
wanted = st.query_params.get("village")
# Follow each new link once; afterwards the picker is the user's.
if wanted in names and (
    st.session_state.get("village_link") != wanted or "village_pick" not in st.session_state
):
    st.session_state["village_link"] = wanted
    st.session_state["village_pick"] = wanted
elif wanted and wanted not in names:
    st.warning(t("village.unknown", village=wanted))
village_id = st.selectbox(
    t("village.pick"),
    list(names),
    index=None,
    format_func=names.__getitem__,
    placeholder="Thôn 1 · …",
    key="village_pick",
)
if village_id is None:
    st.stop()
if st.query_params.get("village") != village_id:
    st.query_params["village"] = village_id  # the address bar names what is shown: a link

with db() as conn:
    row = villages.village(conn, village_id, scope=scope)
    events = villages.village_events(conn, village_id, scope=scope)
    near = villages.nearest_towers(conn, row["lat"], row["lon"], scope=scope) if row else []
    serving = villages.village_serving(conn, village_id, scope=scope)
    at_risk = runway_view.at_risk(conn, operator=None, scope=scope)
if row is None:
    st.stop()


def operators(names: list[str] | None) -> str:
    return ", ".join(names) if names else "—"


st.subheader(f"{row['name']} · {row['village_id']}")
# Names and a position are too long for st.metric's large type: one line of text instead.
st.markdown(
    f"**{t('village.commune')}:** {row['commune_name']} · "
    f"**{t('village.district')}:** {row['district_name']} · "
    f"**{t('village.position')}:** {row['lat']:.4f}, {row['lon']:.4f}"
)
st.metric(t("village.population"), num(row["population"]))
st.page_link(page("map"), label=t("village.on_map"), query_params={"focus": village_id})

st.subheader(t("village.coverage"))
runway_view.village_lines(at_risk, village_id, datetime.now(UTC))
if row["dead_spot"] is None:
    st.info(t("village.not_judged"))
else:
    (st.error if row["dead_spot"] else st.success)(
        t(
            "village.dead_since" if row["dead_spot"] else "village.covered_since",
            since=when(row["since"], "medium"),
        )
    )
    levels: dict[str, dict[str, Any]] = row["levels"] or {}
    covering = set(row["operators"] or [])
    st.dataframe(
        pd.DataFrame(
            {
                t("village.operator"): list(OPERATORS),
                t("village.covered"): [op in covering for op in OPERATORS],
                t("village.level"): [
                    "  ".join(
                        f"{tech} {num(v, 1)}" for tech, v in sorted(levels.get(op, {}).items())
                    )
                    or "—"
                    for op in OPERATORS
                ],
                t("village.measured"): [op in (row["measured"] or []) for op in OPERATORS],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(t("village.updated", when=when(row["updated_at"], "medium")))

st.subheader(t("history.outages"))
history_view.timeline_chart(events, datetime.now(UTC))  # bars from the events listed below

left, right = st.columns(2)
with left:
    st.subheader(t("village.timeline"))
    if not events:
        st.caption(t("village.no_events"))
    for e in events:
        line = t(
            "village.event_" + e["kind"],
            when=when(e["ts"], "medium"),
            lost=operators(e["operators_lost"]),
            now=operators(e["operators_now"]),
        )
        (st.error if e["kind"] == "lost" else st.markdown)(line)
        for tower in e["towers"][:6]:
            st.page_link(page("device"), label=f"↳ {tower}", query_params={"device": tower})
with right:
    st.subheader(t("village.serving"))
    st.caption(t("village.serving_note", shown=num(SITES_SHOWN)))
    for op in OPERATORS:
        sites = [s for s in serving if s["operator"] == op]
        if not sites:
            st.markdown(t("village.serving_none", operator=op))
            continue
        st.markdown(t("village.serving_operator", operator=op, n=num(len(sites))))
        for s in sites[:SITES_SHOWN]:
            km = "—" if s["distance_km"] is None else num(s["distance_km"], 1)
            state = t("state." + s["state"]) if s["state"] else "—"
            label = t("village.serving_site", device=s["device_id"], state=state, km=km)
            st.page_link(
                page("device"), label=f"↳ {label}", query_params={"device": s["device_id"]}
            )
    # The nearest towers still say where signal could come from where none does now.
    with st.expander(t("village.sites"), expanded=not serving):
        st.caption(t("village.sites_note"))
        for s in near:
            label = t(
                "village.site",
                device=s["device_id"],
                operator=s["operator"] or "—",
                state=t("state." + s["state"]),
                km=num(s["distance_km"], 1),
            )
            st.page_link(page("device"), label=label, query_params={"device": s["device_id"]})
