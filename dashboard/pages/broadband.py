"""Fibre broadband: households passed and their share per district and commune, the communes
without fibre, per OLT the communes and households it serves; for an OLT that is down or has lost
its uplink, the households cut off and the base stations whose backhaul rides on it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import auth
from dashboard.data import db
from dashboard.i18n import num, pct, t, when
from devices.health import DisplayState
from store import broadband

# What cuts an OLT's households: dark, or alive with its uplink down (health: degraded).
FAULTED = (DisplayState.OFFLINE.value, DisplayState.DEGRADED.value)

now = datetime.now(UTC)
scope = auth.scope()
with db() as conn:
    communes = broadband.commune_fibre(conn, scope=scope)
    nodes = broadband.olts(conn, now, scope=scope)


def share(part: int | None, whole: int | None) -> float | None:
    return part / whole if part is not None and whole else None


households = sum(c.households or 0 for c in communes)
passed = sum(c.households_passed or 0 for c in communes)
with_fibre = sum(c.has_fibre for c in communes)
faulted = [o for o in nodes if o.state in FAULTED]
cut = sum(o.households_passed or 0 for o in faulted)

head = st.columns(4)
head[0].metric(
    t("bb.households_passed"),
    num(passed),
    delta=t("bb.of_households", share=pct(share(passed, households)), total=num(households)),
    delta_color="off",
    delta_arrow="off",
)
head[1].metric(
    t("bb.communes_fibre"),
    t("bb.n_of", n=num(with_fibre), total=num(len(communes))),
    delta=pct(share(with_fibre, len(communes))),
    delta_color="off",
    delta_arrow="off",
)
head[2].metric(
    t("head.online_of", kind=t("kind.broadband"), total=num(len(nodes))),
    num(sum(DisplayState(o.state).live for o in nodes)),
    delta=t("head.not_online", n=num(sum(not DisplayState(o.state).live for o in nodes))),
    delta_color="inverse" if faulted else "off",
    delta_arrow="off",
)
head[3].metric(t("bb.households_cut"), num(cut))

st.subheader(t("bb.faults", n=num(len(faulted))))
if not faulted:
    st.success(t("bb.no_faults"))
else:
    st.caption(t("bb.faults_caption"))
    st.dataframe(
        pd.DataFrame(
            {
                t("bb.olt"): [f"{o.device_id} · {o.name or ''}" for o in faulted],
                t("cov.district"): [o.district_name or "—" for o in faulted],
                t("device.state"): [t("state." + o.state) for o in faulted],
                t("device.last_seen"): [when(o.last_seen) for o in faulted],
                t("bb.households_cut"): [num(o.households_passed) for o in faulted],
                t("bb.communes_served"): [", ".join(o.communes) for o in faulted],
                t("bb.bts_backhaul"): [num(len(o.bts)) for o in faulted],
                t("bb.bts_ids"): [", ".join(o.bts) for o in faulted],
            }
        ),
        hide_index=True,
        width="stretch",
    )

st.subheader(t("cov.by_district"))
by_district: dict[str, list[broadband.CommuneFibre]] = defaultdict(list)
for c in communes:
    by_district[c.district_name].append(c)
district_passed = {d: sum(c.households_passed or 0 for c in cs) for d, cs in by_district.items()}
district_households = {d: sum(c.households or 0 for c in cs) for d, cs in by_district.items()}
st.dataframe(
    pd.DataFrame(
        {
            t("cov.district"): list(by_district),
            t("bb.communes"): [num(len(cs)) for cs in by_district.values()],
            t("bb.communes_fibre"): [
                num(sum(c.has_fibre for c in cs)) for cs in by_district.values()
            ],
            t("bb.households"): [num(district_households[d]) for d in by_district],
            t("bb.households_passed"): [num(district_passed[d]) for d in by_district],
            t("bb.share"): [
                pct(share(district_passed[d], district_households[d])) for d in by_district
            ],
        }
    ),
    hide_index=True,
    width="stretch",
    height="content",  # eleven districts: all in sight, no scrolling
)

st.subheader(t("bb.without_fibre"))
dark = [c for c in communes if not c.has_fibre]
if dark:
    st.markdown(
        "\n".join(
            f"- {c.commune_name} ({c.district_name}): " + t("bb.households_n", n=num(c.households))
            for c in dark
        )
    )
else:
    st.caption(t("bb.all_fibre"))

st.subheader(t("cov.by_commune"))
districts = list(by_district)
everywhere = t("alerts.all")  # now: format_func may run outside this run's language
chosen = st.selectbox(
    t("cov.district"), ["", *districts], key="bb_district", format_func=lambda d: d or everywhere
)
shown = [c for c in communes if not chosen or c.district_name == chosen]
st.dataframe(
    pd.DataFrame(
        {
            t("cov.district"): [c.district_name for c in shown],
            t("cov.commune"): [c.commune_name for c in shown],
            t("bb.households"): [num(c.households) for c in shown],
            t("bb.households_passed"): [num(c.households_passed) for c in shown],
            t("bb.share"): [pct(share(c.households_passed, c.households)) for c in shown],
            t("bb.olt"): [c.olt_id or "—" for c in shown],
        }
    ),
    hide_index=True,
    width="stretch",
)

st.subheader(t("bb.by_olt"))
st.dataframe(
    pd.DataFrame(
        {
            t("bb.olt"): [f"{o.device_id} · {o.name or ''}" for o in nodes],
            t("cov.district"): [o.district_name or "—" for o in nodes],
            t("device.state"): [t("state." + o.state) for o in nodes],
            t("bb.communes_served"): [", ".join(o.communes) for o in nodes],
            t("bb.households_passed"): [num(o.households_passed) for o in nodes],
            t("bb.bts_backhaul"): [num(len(o.bts)) for o in nodes],
        }
    ),
    hide_index=True,
    width="stretch",
)
