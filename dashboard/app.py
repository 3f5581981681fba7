"""The IOC view (Streamlit, multipage): run from the shell's entry script, ioc/dashboard_main.py
(`ioc dashboard`, `ioc up`), which hands it the dashboard's config."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import auth, live
from dashboard.data import DashboardConfig, configure
from dashboard.i18n import t
from store.users import Role

HERE = Path(__file__).parent


def page(name: str) -> str:
    """A page's file, absolute: Streamlit resolves page paths against the entry script's
    folder, which is ioc/ (ioc/dashboard_main.py), not this one."""
    return str(HERE / "pages" / f"{name}.py")


def main(config: DashboardConfig) -> None:
    configure(config)
    st.set_page_config(page_title="IOC", page_icon="📡", layout="wide")

    user = auth.current_user()
    if user is None:
        auth.login_page()
        st.stop()
    st.set_page_config(page_title=f"IOC {live.place_name(user.scope)}")

    if st.query_params.get("wall") == "1":
        # The video wall: one read-only page, no sidebar or navigation (pages/wall.py).
        wall = st.Page(page("wall"), title=t("page.wall"), url_path="wall", default=True)
        auth.sync_cookie()
        st.navigation([wall], position="hidden").run()
        return

    with st.sidebar:
        auth.language_picker()
        role = t("role." + user.role.value)
        st.caption(t("app.signed_in", name=user.display_name, role=role))
        if st.button(t("app.logout"), key="logout"):
            auth.logout()
            st.rerun()
        auth.sync_cookie()

    pages = [
        st.Page(page("map"), title=t("page.map"), url_path="map", default=True),
        st.Page(page("alerts"), title=t("page.alerts"), url_path="alerts"),
        st.Page(page("device"), title=t("page.device"), url_path="device"),
        st.Page(page("village"), title=t("page.village"), url_path="village"),
        st.Page(page("coverage"), title=t("page.coverage"), url_path="coverage"),
        st.Page(page("availability"), title=t("page.availability"), url_path="availability"),
        st.Page(page("broadband"), title=t("page.broadband"), url_path="broadband"),
        st.Page(page("cameras"), title=t("page.cameras"), url_path="cameras"),
        st.Page(page("ingest"), title=t("page.ingest"), url_path="ingest"),
    ]
    if user.role.allows(Role.ADMIN):
        pages.append(st.Page(page("users"), title=t("page.users"), url_path="users"))
    navigation = st.navigation(pages)
    follow_link(pages)
    navigation.run()


def follow_link(pages: list[st.Page]) -> None:
    """After the login form, go where the deep link that led to it pointed."""
    wanted = auth.wanted_link()
    if wanted is None:
        return
    path, query = wanted
    for target in pages:
        if path and target.url_path == path:
            st.switch_page(target, query_params=query)
