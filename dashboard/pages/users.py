"""Users and roles, and the audit log (admin only; the actions themselves re-check the role)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import auth
from dashboard.actions import add_user, audit_log
from dashboard.data import db, refusals_shown
from dashboard.i18n import labeller, t, when
from store import places, users
from store.scope import NATIONAL
from store.users import Role

me = auth.current_user()
if me is None or not me.role.allows(Role.ADMIN):  # the page may be reached by its URL
    st.error(t("users.admin_only"))
    st.stop()
with db() as conn:
    everyone = users.list_users(conn, scope=auth.scope())
    # The admin's own provinces are what it may give; every user's are named from all of them.
    mine = {int(p["code"]): str(p["name"]) for p in places.provinces(conn, scope=auth.scope())}
    named = {int(p["code"]): str(p["name"]) for p in places.provinces(conn, scope=NATIONAL)}


def provinces_text(codes: list[int] | None) -> str:
    if codes is None:
        return t("users.national")
    return ", ".join(named.get(c, str(c)) for c in codes)


st.dataframe(
    pd.DataFrame(
        {
            t("login.username"): [u.username for u in everyone],
            t("users.name"): [u.display_name for u in everyone],
            t("users.role"): [t("role." + u.role.value) for u in everyone],
            t("users.provinces"): [provinces_text(u.provinces) for u in everyone],
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
    given = st.multiselect(
        t("users.provinces"),
        list(mine),
        default=[] if me.scope.national else list(mine),
        format_func=mine.__getitem__,
        placeholder=t("users.national"),
        help=t("users.provinces_help"),
    )
    password = st.text_input(t("login.password"), type="password")
    submitted = st.form_submit_button(t("users.add"))
if submitted:
    with refusals_shown():
        with db() as conn:
            # None (nothing picked) asks for a national user: the database refuses it to a
            # provincial admin, and refusals_shown says so.
            user = add_user(conn, auth.token(), username, password, role, name,
                            provinces=list(given) or None, address=auth.address())  # fmt: skip
        st.success(t("users.saved", name=user.username))

st.subheader(t("users.audit"))
ALL = ""  # the filter's "everyone" choice
actor = st.selectbox(
    t("users.audit_filter"),
    [ALL, *(u.username for u in everyone)],
    # The labels now, in this session's language (format_func may run outside the script).
    format_func={
        ALL: t("users.audit_all"),
        **{u.username: u.username for u in everyone},
    }.__getitem__,
    key="audit_actor",
)
with refusals_shown():
    with db() as conn:
        entries = audit_log(conn, auth.token(), actor or None)
    st.dataframe(
        pd.DataFrame(
            {
                t("audit.at"): [when(e.at) for e in entries],
                t("audit.actor"): [e.actor for e in entries],
                t("audit.address"): [e.address or "" for e in entries],
                t("audit.event"): [e.event for e in entries],
                t("audit.subject"): [e.subject or "" for e in entries],
                t("audit.detail"): [e.detail or "" for e in entries],
            }
        ),
        hide_index=True,
        key="audit_log",
    )
