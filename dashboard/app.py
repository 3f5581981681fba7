"""The IOC view (Streamlit, multipage). Run with `ioc dashboard` or `ioc up`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import auth
from dashboard.i18n import t
from store.users import Role

HERE = Path(__file__).parent

st.set_page_config(page_title="IOC Bình Định", page_icon="📡", layout="wide")

user = auth.current_user()
if user is None:
    auth.login_page()
    st.stop()

with st.sidebar:
    auth.language_picker()
    st.caption(t("app.signed_in", name=user.display_name, role=t("role." + user.role.value)))
    if st.button(t("app.logout"), key="logout"):
        auth.logout()
        st.rerun()

pages = [
    st.Page(HERE / "pages/map.py", title=t("page.map"), url_path="map", default=True),
    st.Page(HERE / "pages/alerts.py", title=t("page.alerts"), url_path="alerts"),
    st.Page(HERE / "pages/device.py", title=t("page.device"), url_path="device"),
    st.Page(HERE / "pages/coverage.py", title=t("page.coverage"), url_path="coverage"),
    st.Page(HERE / "pages/ingest.py", title=t("page.ingest"), url_path="ingest"),
]
if user.role.allows(Role.ADMIN):
    pages.append(st.Page(HERE / "pages/users.py", title=t("page.users"), url_path="users"))
st.navigation(pages).run()
