"""Availability over a period (issue 18 part 4): minutes without signal and people x minutes lost
per district, commune or operator, the worst villages, the sites that caused it, dead spots
apart; CSV and XLSX as the coverage page exports them. The SQL is store/availability.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboard import auth
from dashboard.coverage_view import OPERATORS, to_xlsx
from dashboard.data import db
from dashboard.i18n import labeller, localized, num, t, when
from devices.clock import LOCAL_ZONE as ZONE
from processing.coverage.availability import (
    PeriodError,
    default_period,
    kept_period,
    labelled,
    tables,
)
from store.availability import availability, history_span

GROUPINGS = ("district", "commune", "operator")
SECTIONS = ("groups", "villages", "sites", "dead_spots")


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZONE)


st.caption(t("avail.intro"))
now = datetime.now(UTC)
first, last = default_period(now)
left, middle, right = st.columns([1, 1, 2])
start_day = left.date_input(t("avail.from"), first.date(), key="avail_from")
end_day = middle.date_input(t("avail.to"), (last - timedelta(days=1)).date(), key="avail_to")
by = right.radio(t("avail.by"), GROUPINGS, key="avail_by", horizontal=True,
                 format_func=labeller("avail.by.", GROUPINGS))  # fmt: skip
assert isinstance(start_day, date) and isinstance(end_day, date)

scope = auth.scope()
with db() as conn:
    try:
        period = kept_period(
            local_midnight(start_day),
            local_midnight(end_day + timedelta(days=1)),  # the end day is included
            history_span(conn, scope=scope),
            now,
        )
    except PeriodError as err:
        st.error(t(f"avail.error.{err.reason}", moment=when(err.moment)))
        st.stop()
    report = availability(
        conn, period.start, period.end, scope=scope, by=by, operators=list(OPERATORS)
    )

frames = tables(report, period)
st.markdown(
    t("avail.period", start=when(period.start), end=when(period.end),
      outages=num(sum(g.outages for g in report.groups)),
      lost=num(sum(g.people_minutes for g in report.groups)))
)  # fmt: skip
st.caption(t("avail.rules"))


def header(column: str) -> str:
    return t(f"avail.by.{by}") if column == "group" else t(f"avail.col.{column}")


shown = {t(f"avail.{name}"): labelled(frames[name], header) for name in SECTIONS}
st.download_button(
    t("cov.export_xlsx"),
    to_xlsx(shown),
    file_name="availability.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    key="avail_xlsx",
)
for name, (title, frame) in zip(SECTIONS, shown.items(), strict=True):
    st.subheader(title)
    if frame.empty and name != "dead_spots":
        st.caption(t("avail.none"))
    st.dataframe(localized(frame, {header("availability_pct"): 3}), hide_index=True,
                 width="stretch")  # fmt: skip
    st.download_button(
        t("cov.export_csv"),
        # utf-8-sig: Excel opens Vietnamese names correctly only with the BOM.
        frame.to_csv(index=False).encode("utf-8-sig"),
        file_name=f"availability-{name.replace('_', '-')}.csv",
        mime="text/csv",
        key=f"avail_csv_{name}",
    )
