"""A hardened dashboard login (issue 16): failed logins throttled per account and per address,
a lock an admin lifts with `ioc users unlock`, an idle timeout beside the absolute one, an
audit log only admins read, and Streamlit's error details off in production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard.actions import acknowledge_alert, audit_log
from ioc.cli import app as cli
from store import users
from store.db import connect
from store.migrate import upgrade
from store.throttle import Throttle
from store.users import LoginLocked, PermissionDenied
from tests.fixtures.dashboard import PASSWORDS

APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")
LIMITS = Throttle(
    account_failures=5,
    address_failures=8,
    window=timedelta(minutes=15),
    lockout=timedelta(minutes=15),
)
PW = "right-password-1"


@pytest.fixture
def db(database_url):
    with connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        yield conn


def login_form(url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("IOC_DATABASE_URL", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = "en"
    return at.run()


def try_login(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_thirty_wrong_passwords_lock_the_account_until_unlocked(
    scenario_url, monkeypatch, tmp_path
):
    with connect(scenario_url, autocommit=True) as conn:
        users.add_user(conn, "lock-admin", PW, "admin")
    at = login_form(scenario_url, monkeypatch)
    for _ in range(30):
        try_login(at, "lock-admin", "wrong-password")
    try_login(at, "lock-admin", PW)
    locked = "Too many failed logins: locked for now. Try again later or ask an administrator."
    assert [e.value for e in at.error] == [locked], "the right password is refused while locked"
    assert "session_token" not in at.session_state
    try_login(at, "lock-admin", "wrong-password")
    assert [e.value for e in at.error] == [locked], "the same words whatever the password"

    monkeypatch.setenv("IOC_DATABASE_URL", scenario_url)
    monkeypatch.setenv("IOC_CONFIG", str(tmp_path / "absent.toml"))
    listed = CliRunner().invoke(cli, ["users", "list"])
    assert "lock-admin" in listed.output and "locked until" in listed.output, listed.output
    result = CliRunner().invoke(cli, ["users", "unlock", "lock-admin"])
    assert result.exit_code == 0, result.output
    assert "lock-admin: unlocked" in result.output
    try_login(at, "lock-admin", PW)
    assert not at.error and "session_token" in at.session_state


def test_an_address_is_locked_across_accounts_and_unknown_names_count(db):
    users.add_user(db, "ops", PW, "operator")
    attacker, colleague = "203.0.113.7", "198.51.100.4"
    # Eight names, none of which exists: each stays under the account limit, the address not.
    for n in range(LIMITS.address_failures):
        assert users.login(db, f"ghost{n}", PW, limits=LIMITS, address=attacker) is None
    with pytest.raises(LoginLocked):
        users.login(db, "ops", PW, limits=LIMITS, address=attacker)
    assert users.login(db, "ops", PW, limits=LIMITS, address=colleague) is not None
    # A name that does not exist locks like one that does: a lock tells nothing of who exists.
    for _ in range(LIMITS.account_failures):
        assert users.login(db, "nobody", PW, limits=LIMITS, address=None) is None
    with pytest.raises(LoginLocked):
        users.login(db, "nobody", PW, limits=LIMITS, address=colleague)


def test_an_unknown_name_costs_a_password_check(db, monkeypatch):
    real = bcrypt.checkpw
    checked: list[bytes] = []

    def counting(password: bytes, hashed: bytes) -> bool:
        checked.append(password)
        return bool(real(password, hashed))

    users.add_user(db, "ops", PW, "operator")
    monkeypatch.setattr(bcrypt, "checkpw", counting)
    users.login(db, "ops", "wrong-password")
    users.login(db, "nobody", "wrong-password")
    assert checked == [b"wrong-password", b"wrong-password"], "one bcrypt check for each"


def test_idle_sessions_end_while_used_ones_live(db):
    users.add_user(db, "ops", PW, "operator")
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    idle = timedelta(minutes=30)
    kept = users.login(db, "ops", PW, idle=idle, now=start)
    left = users.login(db, "ops", PW, idle=idle, now=start)
    assert kept is not None and left is not None
    for minutes in (20, 40, 60, 80):  # used every 20 minutes: lives past the idle limit
        assert users.session_user(db, kept.token, now=start + timedelta(minutes=minutes))
    assert users.session_user(db, left.token, now=start + timedelta(minutes=31)) is None
    fresh = users.login(db, "ops", PW, idle=idle, now=start + timedelta(minutes=31))
    assert fresh is not None
    assert users.session_user(db, fresh.token, now=start + timedelta(minutes=32)) is not None


def test_a_page_run_touches_its_session_at_most_once_a_minute(db):
    users.add_user(db, "ops", PW, "operator")
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    session = users.login(db, "ops", PW, idle=timedelta(minutes=30), now=start)
    assert session is not None

    def last_seen() -> datetime:
        row = db.execute("SELECT last_seen FROM user_sessions WHERE username = 'ops'").fetchone()
        assert row is not None and isinstance(row[0], datetime)
        return row[0]

    users.session_user(db, session.token, now=start + timedelta(seconds=30))
    assert last_seen() == start
    users.session_user(db, session.token, now=start + timedelta(seconds=90))
    assert last_seen() == start + timedelta(seconds=90)


def test_audit_log_records_logins_and_acks_with_the_address(scenario_url, alert_ids):
    address = "192.0.2.10"
    with connect(scenario_url, autocommit=True) as conn:
        assert users.login(conn, "operator", "wrong", limits=LIMITS, address=address) is None
        session = users.login(conn, "operator", PASSWORDS["operator"], address=address)
        assert session is not None
        acknowledge_alert(conn, session.token, alert_ids[0], "on it", address=address)
        admin = users.login(conn, "admin", PASSWORDS["admin"])
        viewer = users.login(conn, "viewer", PASSWORDS["viewer"])
        assert admin is not None and viewer is not None
        entries = audit_log(conn, admin.token, "operator")
        with pytest.raises(PermissionDenied, match="role viewer"):
            audit_log(conn, viewer.token)
    latest = [(e.event, e.address, e.subject) for e in entries[:3]]
    assert latest == [
        ("acknowledge", address, f"alert {alert_ids[0]}"),
        ("login_ok", address, None),
        ("login_failed", address, None),
    ]


def test_admins_read_the_audit_log_on_the_users_page(scenario_url, monkeypatch):
    with connect(scenario_url, autocommit=True) as conn:
        admin = users.login(conn, "admin", PASSWORDS["admin"], address="192.0.2.77")
    assert admin is not None
    monkeypatch.setenv("IOC_DATABASE_URL", scenario_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = "en"
    at.session_state["session_token"] = admin.token
    at.switch_page("../dashboard/pages/users.py").run()
    assert not at.exception, at.exception
    assert "Audit log" in [s.value for s in at.subheader]
    log = at.dataframe[-1].value
    assert "192.0.2.77" in set(log["Address"]) and "login_ok" in set(log["Event"])


def test_production_dashboard_hides_error_details():
    from ioc.up import dashboard_command

    production = dashboard_command(8501, production=True)
    at = production.index("--client.showErrorDetails")
    assert production[at + 1] == "none"  # Streamlit 1.67: "false" still shows stack traces
    assert "--client.showErrorDetails" not in dashboard_command(8501)


def test_cli_reads_the_audit_log_and_removes_users(db, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("IOC_DATABASE_URL", database_url)
    monkeypatch.setenv("IOC_CONFIG", str(tmp_path / "absent.toml"))
    users.add_user(db, "ops", PW, "operator")
    assert users.login(db, "ops", "wrong-password", address="192.0.2.5") is None
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "remove", "ops"]).exit_code == 0
    logged = runner.invoke(cli, ["users", "audit"]).output.splitlines()
    assert "user_removed" in logged[0] and "ops" in logged[0]
    assert "192.0.2.5" in logged[1] and "login_failed" in logged[1]
    assert "user_added" in logged[2]
    nothing = runner.invoke(cli, ["users", "unlock"])
    assert nothing.exit_code == 2 and "name an account" in nothing.output
