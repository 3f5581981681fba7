"""Login for the dashboard. The browser holds only a session token; who it belongs to and what
they may do is looked up in the database on every run (store/users.py), which also throttles
failed logins per account and per client address and writes the audit log.

The token also lives in a cookie so that a reload or a pasted link keeps the session: Streamlit
reads cookies only from the request that opened the session (``st.context.cookies``) and has no
API to set one, so the browser sets it from a script (``st.html``) and a new session reads it
back once. The cookie is not HttpOnly (a script writes it); it lives no longer than the session
and the database still judges the token on every run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import streamlit as st

from dashboard import i18n
from dashboard.data import db, idle_timeout, login_limits, session_ttl
from dashboard.i18n import lang, t
from store import users
from store.scope import NATIONAL, Scope
from store.users import LoginLocked, PasswordResetNeeded, User

# One line for an account whose argon2 hash (an older version's) the database cannot check.
_RESET_NEEDED: dict[str, str] = {
    "vi": "Mật khẩu của tài khoản này cần được quản trị viên đặt lại.",
    "en": "An admin must reset this account's password.",
}

TOKEN_KEY = "session_token"
COOKIE = "ioc_session"
# What the browser's cookie should hold: ("set", token, HTTP expiry date) after a login,
# ("kept",) when it brought this session's token, ("clear",) after a logout or when its session
# has ended; absent while this session has no cookie to manage.
_COOKIE_STATE = "session_cookie"
_COOKIE_READ = "session_cookie_read"
# The page and query parameters a deep link asked for, kept across the login form.
_WANTED = "after_login"
# The user this run's session belongs to, as the database said at the top of the run.
_RUN_USER = "run_user"


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


def _cookie_token() -> str | None:
    """The token the browser sent when this session opened; read once, so that a logout within
    the session is not undone by the (stale) cookie of its opening request."""
    if st.session_state.get(_COOKIE_READ):
        return None
    st.session_state[_COOKIE_READ] = True
    try:
        value = st.context.cookies.get(COOKIE)
    except AttributeError:  # no script run context (a bare import)
        return None
    return value if isinstance(value, str) and value else None


def current_user() -> User | None:
    """The logged-in user, or None (a session that has expired is forgotten here)."""
    st.session_state[_RUN_USER] = None
    if token() is None:
        from_cookie = _cookie_token()
        if from_cookie is None:
            return None
        st.session_state[TOKEN_KEY] = from_cookie
        st.session_state[_COOKIE_STATE] = ("kept",)
    with db() as conn:
        user = users.session_user(conn, token())
    st.session_state[_RUN_USER] = user
    if user is None:
        del st.session_state[TOKEN_KEY]
        st.session_state["login_notice"] = "login.expired"
        if _COOKIE_STATE in st.session_state:
            st.session_state[_COOKIE_STATE] = ("clear",)
    return user


def scope() -> Scope:
    """The provinces this run's user sees, for every store read a page makes. Looked up with
    the session at the top of the run (``current_user``); a run without a user stops here,
    so a page can never read with a scope nobody was given."""
    user = st.session_state.get(_RUN_USER)
    if not isinstance(user, User):
        st.stop()
    return user.scope


def _cookie_script(state: tuple[str, ...]) -> str | None:
    if state[0] == "set":
        value, expires = state[1], state[2]
        attrs = f"; expires={expires}"
    elif state[0] == "clear":
        value, attrs = "", "; max-age=0"
    else:
        return None
    # Secure whenever the page itself came over https (behind the Caddy proxy).
    return (
        "<script>document.cookie = "
        f"{json.dumps(f'{COOKIE}={value}; path=/; SameSite=Strict{attrs}')}"
        " + (location.protocol === 'https:' ? '; Secure' : '');</script>"
    )


def sync_cookie() -> None:
    """Have the browser's cookie follow this session's login state. Written on every full run
    (the same script again is harmless), since a rerun right after a login or logout can cut
    the first delivery short."""
    state = st.session_state.get(_COOKIE_STATE)
    script = _cookie_script(state) if state else None
    if script:
        st.html(script, unsafe_allow_javascript=True, width=1)


def remember_link() -> None:
    """Keep what a deep link asked for (its page and query) across the login form."""
    if _WANTED in st.session_state:
        return
    try:
        url = st.context.url or ""
    except AttributeError:  # no script run context (a bare import)
        url = ""
    # The page is the URL's last segment (a proxy may put the app under a path prefix).
    page = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    st.session_state[_WANTED] = (page, st.query_params.to_dict())


def wanted_link() -> tuple[str, dict[str, str]] | None:
    """(page url path, query) a deep link asked for before the login form, once."""
    wanted = st.session_state.pop(_WANTED, None)
    return wanted if isinstance(wanted, tuple) else None


def language_picker() -> None:
    i18n.language_picker()  # the choice must outlive the radio's widget state: see there


def login_page() -> None:
    remember_link()
    sync_cookie()
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
            anyone = bool(session) or bool(users.list_users(conn, scope=NATIONAL))
        if session is None:
            st.error(t("login.failed") if anyone else t("login.no_users"))
            return
        st.session_state[TOKEN_KEY] = session.token
        st.session_state[_COOKIE_STATE] = ("set", session.token, _cookie_date(session.expires_at))
        st.rerun()


def _cookie_date(moment: datetime) -> str:
    """The cookie's ``expires``: the session's own absolute end, in the HTTP date format."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def logout() -> None:
    current = token()
    if current:
        with db() as conn:
            users.logout(conn, current, address=address())
    st.session_state.pop(TOKEN_KEY, None)
    st.session_state[_COOKIE_STATE] = ("clear",)
