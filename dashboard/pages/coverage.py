"""Coverage report per district and commune, N-1 critical towers; CSV and XLSX export."""

from __future__ import annotations

import streamlit as st

from dashboard.coverage_view import report
from dashboard.data import db
from dashboard.i18n import t

with db() as conn:
    tables = report(conn)
if tables is None:
    st.info(t("cov.unavailable"))
    st.stop()
