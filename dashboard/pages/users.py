"""Users and roles (admin only; the action itself re-checks the role)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth
from dashboard.actions import add_user
from dashboard.data import db, refusals_shown
from dashboard.i18n import labeller, t
from store import users
from store.users import Role

me = auth.current_user()
if me is None or not me.role.allows(Role.ADMIN):  # the page may be reached by its URL
    st.error(t("users.admin_only"))
    st.stop()
with db() as conn:
    everyone = users.list_users(conn)
st.dataframe(
    pd.DataFrame(
        {
            t("login.username"): [u.username for u in everyone],
            t("users.name"): [u.display_name for u in everyone],
            t("users.role"): [t("role." + u.role.value) for u in everyone],
        }
    ),
    hide_index=True,
)
with st.form("add_user", clear_on_submit=True):
    st.subheader(t("users.add"))
    username = st.text_input(t("login.username"))
    name = st.text_input(t("users.name"))
    role = st.selectbox(
        t("users.role"),
        [r.value for r in Role],
        format_func=labeller("role.", [r.value for r in Role]),
    )
    password = st.text_input(t("login.password"), type="password")
    submitted = st.form_submit_button(t("users.add"))
if submitted:
    with refusals_shown():
        with db() as conn:
            user = add_user(conn, auth.token(), username, password, role, name)
        st.success(t("users.saved", name=user.username))
