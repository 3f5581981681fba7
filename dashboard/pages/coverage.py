"""Coverage report per district and commune, N-1 critical towers; CSV and XLSX export."""

from __future__ import annotations

import streamlit as st

from dashboard import advise_view, auth
from dashboard.coverage_view import headline, report, snapshot, to_xlsx
from dashboard.data import db
from dashboard.i18n import localized, num, pct, t
from store import coverage

scope = auth.scope()
with db() as conn:
    snap = snapshot(conn, scope=scope)
    critical = coverage.critical_top(conn, 50, scope=scope) if snap else []
if snap is None:
    st.info(t("cov.unavailable"))
    st.stop()

head = headline(snap)
assert head is not None
st.markdown(
    t("cov.summary", dead=num(head.dead_spot_villages), population=num(head.population_affected),
      centres=pct(head.centres_covered))
)  # fmt: skip
tables = report(snap, critical)


st.download_button(
    t("cov.export_xlsx"),
    to_xlsx(tables),
    file_name="coverage-report.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    key="cov_xlsx",
)
for i, (title, frame) in enumerate(tables.items()):
    st.subheader(title)
    st.dataframe(localized(frame), hide_index=True, width="stretch")
    st.download_button(
        t("cov.export_csv"),
        # utf-8-sig: Excel opens Vietnamese names correctly only with the BOM.
        frame.to_csv(index=False).encode("utf-8-sig"),
        file_name=f"coverage-{i + 1}.csv",
        mime="text/csv",
        key=f"cov_csv_{i}",
    )

advise_view.panel()  # siting advisor (issue 18)
