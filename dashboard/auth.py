"""Login for the dashboard. The browser holds only a session token; who it belongs to and what
they may do is looked up in the database on every run (store/users.py), which also throttles
failed logins per account and per client address and writes the audit log."""

from __future__ import annotations

import streamlit as st

from dashboard import i18n
from dashboard.data import db, idle_timeout, login_limits, session_ttl
from dashboard.i18n import lang, t
from store import users
from store.users import LoginLocked, PasswordResetNeeded, User

# One line for an account whose argon2 hash (an older version's) the database cannot check.
_RESET_NEEDED: dict[str, str] = {
    "vi": "Mật khẩu của tài khoản này cần được quản trị viên đặt lại.",
    "en": "An admin must reset this account's password.",
}

TOKEN_KEY = "session_token"


def token() -> str | None:
    value = st.session_state.get(TOKEN_KEY)
    return value if isinstance(value, str) else None


def address() -> str | None:
    """The browser's address as Streamlit saw it; None from localhost (and in AppTest). Behind a
    reverse proxy this is the proxy's, which then throttles everyone behind it as one."""
    try:
        value = st.context.ip_address
    except AttributeError:  # no script run context (a bare import)
        return None
    return value if isinstance(value, str) else None  # AppTest hands out a mock


def current_user() -> User | None:
    """The logged-in user, or None (a session that has expired is forgotten here)."""
    if token() is None:
        return None
    with db() as conn:
        user = users.session_user(conn, token())
    if user is None:
        del st.session_state[TOKEN_KEY]
        st.session_state["login_notice"] = "login.expired"
    return user


def language_picker() -> None:
    i18n.language_picker()  # the choice must outlive the radio's widget state: see there


def login_page() -> None:
    st.title(t("app.title"))
    language_picker()
    notice = st.session_state.pop("login_notice", None)
    if notice:
        st.warning(t(notice))
    with st.form("login"):
        st.subheader(t("login.title"))
        username = st.text_input(t("login.username"), key="login_username")
        password = st.text_input(t("login.password"), type="password", key="login_password")
        submitted = st.form_submit_button(t("login.submit"), type="primary")
    if submitted:
        with db() as conn:
            try:
                session = users.login(conn, username, password, ttl=session_ttl(),
                                      idle=idle_timeout(), limits=login_limits(),
                                      address=address())  # fmt: skip
            except LoginLocked:
                # The same words whatever the password was: a lock tells nothing more.
                st.error(t("login.locked"))
                return
            except PasswordResetNeeded:
                st.error(_RESET_NEEDED[lang()])
                return
            anyone = bool(session) or bool(users.list_users(conn))
        if session is None:
            st.error(t("login.failed") if anyone else t("login.no_users"))
            return
        st.session_state[TOKEN_KEY] = session.token
        st.rerun()


def logout() -> None:
    current = token()
    if current:
        with db() as conn:
            users.logout(conn, current, address=address())
    st.session_state.pop(TOKEN_KEY, None)
