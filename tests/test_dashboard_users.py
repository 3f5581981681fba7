"""Dashboard users in the database: hashes, sessions that expire, roles, and `ioc users`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from dashboard import i18n
from ioc.cli import app
from store.db import connect
from store.migrate import upgrade
from store.scope import NATIONAL
from store.users import (
    PermissionDenied,
    Role,
    add_user,
    list_users,
    login,
    password_scheme,
    require_role,
    session_user,
    set_disabled,
)


@pytest.fixture
def db(database_url):
    with connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        yield conn


def test_password_is_hashed_and_checked(db):
    add_user(db, "ops1", "correct horse", "operator")
    assert password_scheme(db, "ops1") == "bcrypt"
    assert login(db, "ops1", "wrong horse") is None
    assert login(db, "nobody", "correct horse") is None
    session = login(db, "OPS1 ", "correct horse")
    assert session is not None and session.user.role is Role.OPERATOR


def test_sessions_expire_and_end_when_disabled(db):
    add_user(db, "ops2", "correct horse", "operator")
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    session = login(db, "ops2", "correct horse", ttl=timedelta(hours=12), now=start)
    assert session is not None
    assert session_user(db, session.token, now=start + timedelta(hours=11)) is not None
    assert session_user(db, session.token, now=start + timedelta(hours=12, seconds=1)) is None
    fresh = login(db, "ops2", "correct horse")
    assert fresh is not None and session_user(db, fresh.token) is not None
    set_disabled(db, "ops2", True)
    assert session_user(db, fresh.token) is None
    assert login(db, "ops2", "correct horse") is None


def test_roles_are_ranked(db):
    for role in Role:
        add_user(db, f"u-{role.value}", "long enough", role)
    sessions = {r: login(db, f"u-{r.value}", "long enough") for r in Role}
    tokens = {r: s.token for r, s in sessions.items() if s is not None}
    assert require_role(db, tokens[Role.ADMIN], Role.OPERATOR).username == "u-admin"
    with pytest.raises(PermissionDenied, match="role viewer"):
        require_role(db, tokens[Role.VIEWER], Role.OPERATOR)
    with pytest.raises(PermissionDenied, match="role operator"):
        require_role(db, tokens[Role.OPERATOR], Role.ADMIN)
    with pytest.raises(PermissionDenied, match="not logged in"):
        require_role(db, None, Role.VIEWER)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name", "--role", "viewer"], "username 'Bad Name'"),
        (["someone", "--role", "root"], "role 'root'"),
    ],
)
def test_bad_input_is_one_line(db, database_url, monkeypatch, args, message):
    monkeypatch.setenv("IOC_DATABASE_URL", database_url)
    result = CliRunner().invoke(
        app, ["users", "add", *args, "--password-stdin"], input="pw123456\n"
    )
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_cli_adds_and_lists_users(db, database_url, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", database_url)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["users", "add", "night", "--role", "operator", "--name", "Ca đêm", "--password-stdin"],
        input="night-shift-1\n",
    )
    assert result.exit_code == 0, result.output
    assert {u.username: u.role for u in list_users(db, scope=NATIONAL)} == {"night": Role.OPERATOR}
    assert login(db, "night", "night-shift-1") is not None
    again = runner.invoke(app, ["users", "add", "night", "--password-stdin"], input="x" * 9 + "\n")
    assert again.exit_code == 2 and "exists" in again.output
    listed = runner.invoke(app, ["users", "list"])
    assert "night" in listed.output and "operator" in listed.output and "Ca đêm" in listed.output


def test_catalogue_is_complete_in_both_languages():
    import re

    for key, (vi, en) in i18n.CATALOGUE.items():
        assert vi.strip() and en.strip(), key
        fields = re.compile(r"{(\w+)}")
        assert set(fields.findall(vi)) == set(fields.findall(en)), key


def test_numbers_and_dates_follow_the_language(monkeypatch):
    moment = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    monkeypatch.setattr(i18n, "lang", lambda: "vi")
    vi = (i18n.num(1234567.5, 1), i18n.pct(0.987), i18n.when(moment))
    monkeypatch.setattr(i18n, "lang", lambda: "en")
    en = (i18n.num(1234567.5, 1), i18n.pct(0.987), i18n.when(moment))
    assert vi[:2] == ("1.234.567,5", "98,7%") and en[:2] == ("1,234,567.5", "98.7%")
    assert vi[2].startswith("08:30") and "25/11/26" in vi[2]  # ICT is UTC+7
    assert "25/11/2026" in en[2] and "08:30" in en[2]


def test_basemap_is_a_setting_and_none_by_default():
    import json
    import urllib.parse

    from dashboard.livemap import MapOptions, deck

    closed = json.loads(deck([], [], set(), [], [], MapOptions()).to_json())
    # pydeck's sentinel with no provider: Streamlit draws no basemap and fetches nothing.
    assert closed["mapStyle"] == "__MAP_STYLE__"
    tiles = "http://tiles.ioc.local/{z}/{x}/{y}.png"
    spec = json.loads(deck([], [], set(), [], [], MapOptions(tile_url=tiles)).to_json())
    prefix = "data:application/json,"
    assert spec["mapStyle"].startswith(prefix)
    style = json.loads(urllib.parse.unquote(spec["mapStyle"][len(prefix) :]))
    assert style["sources"]["tiles"]["tiles"] == [tiles]
