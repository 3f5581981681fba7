"""One database role per service (migration 0013, `ioc roles login`): under a login of its
role each service's real store functions do their job, and the database refuses the rest —
reading password hashes, forging a session, deleting failed logins, writing another service's
tables, connecting to another IOC database of the same server. On plain PostgreSQL and on
TimescaleDB (hypertables, continuous aggregates)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psycopg
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from devices.codec import Codec, MetaRecord, Readings, StatusRecord
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.cli import app
from store import alerts, coverage, coverage_rasters, throttle, users, villages
from store.alert_engine import (
    NewAlert,
    engine_transition,
    open_alert,
    set_cursor,
    take_status_changes,
)
from store.alert_outbox import fan_out, mark_delivered, pending
from store.audit import reading_count
from store.audit_log import latest
from store.coverage_rasters import CoverageRaster, RasterGrid, encode
from store.db import aconnect, connect
from store.gauges import alert_figures, devices_by_state, login_figures
from store.liveness import apply_liveness
from store.migrate import upgrade
from store.registry import map_devices
from store.roles import SERVICES, member_of, service_login
from store.scope import NATIONAL
from store.throttle import Throttle
from store.writer import Batch, prune_rejects, write_batch
from tests.support.databases import scratch_database
from tests.support.procs import register_devices

DENIED = psycopg.errors.InsufficientPrivilege
DEVICE = "BTS-ROLE-1"
PW = "operator-password"
HOUR = timedelta(hours=1)


def _as(url: str, user: str, dbname: str | None = None) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["user"] = user
    if dbname:
        info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo("", **info)


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def ioc_url(request: pytest.FixtureRequest) -> str:
    """A migrated database with one device, on plain PostgreSQL or TimescaleDB."""
    url = str(request.getfixturevalue("database_url" if request.param == "postgresql" else
                                      "tsdb_url"))  # fmt: skip
    with connect(url) as conn:
        upgrade(conn)
    register_devices(url, [DEVICE])
    return url


def _drop_roles(url: str, names: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as owner:
        for name in names:
            found = owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            if found.fetchone() is None:
                continue
            ident = psycopg.sql.Identifier(name)
            # Its CONNECT on this database first: a role with privileges cannot be dropped.
            owner.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident))
            owner.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


@pytest.fixture
def logins(ioc_url: str) -> Iterator[dict[str, str]]:
    """service → a URL of ``ioc_url`` as a fresh login of that service's role."""
    tag = uuid.uuid4().hex[:8]
    names = {s: f"ioc_{s}_t{tag}" for s in SERVICES}
    with connect(ioc_url) as owner:
        for service, name in names.items():
            assert service_login(owner, service, name, f"a-real-secret-{tag}") is True
            assert member_of(owner, name, service)
            assert not any(member_of(owner, name, s) for s in SERVICES if s != service)
    try:
        yield {s: _as(ioc_url, name) for s, name in names.items()}
    finally:
        _drop_roles(ioc_url, list(names.values()))


def _batch(now: datetime, seq: int, *, status: str | None = None) -> Batch:
    """What the ingester makes of a birth, a reading, a status and a malformed message."""
    codec = Codec(Topics(), is_known={DEVICE}.__contains__)
    topics = Topics()
    batch = Batch()
    messages = [
        (Channel.META, {"device_id": DEVICE, "lat": 14.0, "lon": 109.0, "interval_s": 60}),
        (Channel.TELEMETRY, {"device_id": DEVICE, "ts": now.isoformat(), "seq": seq,
                             "power_source": "mains", "backhaul_up": True}),
    ]  # fmt: skip
    if status:
        messages.append((Channel.STATUS, {"device_id": DEVICE, "state": status}))
    for channel, doc in messages:
        decoded = codec.decode(topics.device(Kind.BTS, DEVICE, channel), msgspec.json.encode(doc),
                               now)  # fmt: skip
        record = decoded.record
        assert record is not None, decoded.rejections
        if isinstance(record, MetaRecord):
            batch.metas.append(record)
        elif isinstance(record, StatusRecord):
            batch.statuses.append(record)
        elif isinstance(record, Readings):
            batch.readings[Kind.BTS].extend(record.items)
    bad = codec.decode(topics.device(Kind.BTS, DEVICE, Channel.TELEMETRY), b"{not json", now)
    batch.rejections.extend((now, r) for r in bad.rejections)
    batch.messages = len(messages) + 1
    return batch


async def test_the_ingester_writes_readings_status_registry_and_rejects_only(
    ioc_url: str, logins: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    async with await aconnect(logins["ingest"]) as ingest:
        result = await write_batch(ingest, _batch(now, 1, status="offline"))
        assert result.stored >= 1 and result.rejected == 1 and result.state_changes == 1
        await prune_rejects(ingest)
        await ingest.commit()
        for forbidden in ("INSERT INTO alerts (rule) VALUES ('x')", "DELETE FROM coverage_places",
                          "SELECT password_hash FROM users", "DELETE FROM audit_log"):  # fmt: skip
            with pytest.raises(DENIED):
                await ingest.execute(forbidden)
            await ingest.rollback()
    with connect(ioc_url) as owner:
        assert reading_count(owner, Kind.BTS).rows == 1
        # The status change reached the alert engine's inbox through its trigger.
        assert owner.execute("SELECT count(*) FROM alert_inbox").fetchone() == (1,)


async def test_liveness_and_coverage_write_their_own_tables(
    ioc_url: str, logins: dict[str, str]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    with connect(ioc_url) as owner:  # heard from once, long before `later`
        owner.execute("UPDATE devices SET last_seen = now(), state = 'online', state_since = now()")
    async with await aconnect(logins["processing"]) as liveness:
        silent, _ = await apply_liveness(liveness, later, missed=3, min_silence_s=1)
        assert silent == [DEVICE]
        await liveness.commit()
        with pytest.raises(DENIED):
            await liveness.execute("INSERT INTO coverage_events (ts) VALUES (now())")
    with connect(logins["processing"]) as liveness_sync:
        assert list(devices_by_state(liveness_sync))  # its /metrics
    async with await aconnect(logins["coverage"]) as cov:
        assert [r["device_id"] for r in await coverage.serving_inputs(cov)] == [DEVICE]
        place = {"place_kind": "village", "place_id": "V1", "name": "Thôn 1",
                 "district_code": 540, "commune_code": 21550, "population": 100,
                 "operators": ["viettel"], "measured": [], "unknown": [], "dead_spot": False,
                 "levels": {}, "ts": later}  # fmt: skip
        history = {k: place[k] for k in ("place_kind", "place_id", "operators", "measured",
                                         "dead_spot", "ts")}  # fmt: skip
        await coverage.write_coverage(cov, places=[place], history=[history], events=[])
        await coverage.write_rejections(cov, "probe", [], later)
        grid = RasterGrid("EPSG:32649", 0.0, 0.0, 100.0, 1, 1, 108.9, 13.9, 109.0, 14.0)
        raster = CoverageRaster("any", grid, encode([[-90.0]]), later)
        await coverage_rasters.write_rasters(cov, [raster, raster], province=52)  # then an upsert
        serving = ("village", "V1", "viettel", DEVICE)
        assert await coverage.write_place_towers(cov, {serving}, later) == (1, 0)
        assert await coverage.write_place_towers(cov, set(), later) == (0, 1)  # stale: deleted
        assert await coverage.place_states(cov) == {("village", "V1"): (["viettel"], [])}
        with pytest.raises(DENIED):
            await cov.execute("UPDATE devices SET state = 'offline'")
        await cov.rollback()
        with pytest.raises(DENIED):
            await cov.execute("INSERT INTO alert_inbox (ts, device_id, state, reason)"
                              " VALUES (now(), 'x', 'offline', 'forged')")  # fmt: skip


async def test_the_alert_engine_opens_updates_and_delivers(
    ioc_url: str, logins: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    alert = NewAlert(rule="tower_down", subject=DEVICE, subject_kind="bts", severity="major",
                     summary="down", summary_vi="mất", details={}, district_code=None)  # fmt: skip
    with connect(ioc_url) as owner:  # what the ingester's status trigger leaves
        owner.execute("INSERT INTO alert_inbox (ts, device_id, state, reason)"
                      " VALUES (now(), %s, 'offline', 'reported')", (DEVICE,))  # fmt: skip
    async with await aconnect(logins["alerts"]) as engine:
        async with engine.transaction():
            assert [c.device_id for c in await take_status_changes(engine, 100)] == [DEVICE]
            alert_id = await open_alert(engine, alert, now)
            assert alert_id is not None
            assert await engine_transition(engine, "flapping", alert_id, now)
            await set_cursor(engine, "coverage_events", 7)
            assert await fan_out(engine, ["webhook:ops"], now) == 2
        heads = await pending(engine, "webhook:ops", now)
        await mark_delivered(engine, heads[0].outbox_id, now)
        await engine.commit()
        for forbidden in ("INSERT INTO status_events (ts, device_id, state, reason)"
                          " VALUES (now(), 'x', 'offline', 'forged')",
                          "INSERT INTO alert_silences (rule, starts_at, ends_at, created_by)"
                          " VALUES ('x', now(), now() + interval '1 h', 'forged')",
                          "SELECT token_hash FROM user_sessions"):  # fmt: skip
            with pytest.raises(DENIED):
                await engine.execute(forbidden)
            await engine.rollback()
    with connect(logins["alerts"]) as engine_sync:
        assert list(alert_figures(engine_sync, ["webhook:ops"]))  # its /metrics
    with connect(ioc_url) as owner:
        assert [t.event for t in alerts.transitions(owner, alert_id, scope=NATIONAL)] == [
            "opened",
            "flapping",
        ]


async def _open_two(url: str) -> tuple[int, int]:
    now = datetime.now(UTC)
    alert = NewAlert(rule="tower_down", subject=DEVICE, subject_kind="bts", severity="major",
                     summary="down", summary_vi="mất", details={}, district_code=None)  # fmt: skip
    async with await aconnect(url) as owner:
        first = await open_alert(owner, alert, now)
        second = await open_alert(owner, dataclasses.replace(alert, rule="camera_down"), now)
    assert first is not None and second is not None
    return first, second


async def test_the_dashboard_reads_logs_in_and_acts_through_its_functions(
    ioc_url: str, logins: dict[str, str]
) -> None:
    alert_id, other_id = await _open_two(ioc_url)
    with connect(ioc_url) as owner:
        users.add_user(owner, "op1", PW, "operator")
        users.add_user(owner, "viewer1", "viewer-password", "viewer")
        users.add_user(owner, "admin", "admin-password", "admin")
        if owner.execute("SELECT to_regproc('ioc_login')").fetchone() == (None,):
            pytest.skip("this server has no pgcrypto: the dashboard runs as the owner")
    one_strike = Throttle(account_failures=1, address_failures=9, window=HOUR, lockout=HOUR)
    with connect(logins["dashboard"], autocommit=True) as dash:
        # Reads: the registry, readings (a hypertable and its continuous aggregate), alerts.
        assert [d.device_id for d in map_devices(dash, datetime.now(UTC), scope=NATIONAL)] == [
            DEVICE
        ]
        assert dash.execute("SELECT count(*) FROM telemetry_bts_1m").fetchone() == (0,)
        assert coverage_rasters.stamps(dash, scope=NATIONAL) == {}  # the map's raster: none here
        assert (
            villages.tower_serves(dash, DEVICE, scope=NATIONAL) == []
        )  # who serves whom: none written here
        assert villages.village_serving(dash, "V1", scope=NATIONAL) == []
        assert {a.alert_id for a in alerts.list_alerts(dash, scope=NATIONAL)} == {
            alert_id,
            other_id,
        }
        assert {u.username for u in users.list_users(dash, scope=NATIONAL)} == {
            "op1",
            "viewer1",
            "admin",
        }
        assert list(login_figures(dash))  # its /metrics: sessions counted, no token read
        # Logging in: the password checked inside the database, the session made there.
        session = users.login(dash, "op1", PW, limits=one_strike, address="192.0.2.1")
        assert session is not None and session.user.username == "op1"
        assert users.session_user(dash, session.token) == session.user
        viewer = users.login(dash, "viewer1", "viewer-password")
        assert viewer is not None
        admin = users.login(dash, "admin", "admin-password")
        assert admin is not None
        # A new user from the users page: an admin's session only.
        users.add_user_in_session(dash, admin.token, "op2", "another-password", "operator")
        assert users.login(dash, "op2", "another-password") is not None
        with pytest.raises(DENIED):
            users.add_user_in_session(dash, session.token, "op3", "another-password", "admin")
        # Throttling: a failure counted to a lock, refused even with the right password.
        assert users.login(dash, "admin", "wrong-password", limits=one_strike) is None
        with pytest.raises(users.LoginLocked):
            users.login(dash, "admin", "admin-password", limits=one_strike)
        # Acknowledge and silence: the operator's session names the actor.
        acked = alerts.acknowledge_in_session(dash, session.token, alert_id, "on it")
        assert acked.state == "acknowledged" and acked.acknowledged_by == "op1"
        with pytest.raises(alerts.AlertStateError):
            alerts.acknowledge_in_session(dash, session.token, alert_id)
        hush = alerts.SilenceRequest(rule="camera_down", subject=DEVICE, created_by="forged",
                                     ends_at=datetime.now(UTC) + HOUR)  # fmt: skip
        assert alerts.silence_in_session(dash, session.token, hush).created_by == "op1"
        # A viewer's session, a forged token: refused by the database.
        for token in (viewer.token, "forged-token"):
            with pytest.raises(DENIED):
                alerts.acknowledge_in_session(dash, token, other_id)
            with pytest.raises(DENIED):
                alerts.silence_in_session(dash, token, hush)
        users.logout(dash, session.token)
        assert users.session_user(dash, session.token) is None
        with pytest.raises(DENIED):
            alerts.acknowledge_in_session(dash, session.token, other_id)
        _refused_to_the_dashboard(dash, other_id)
    with connect(ioc_url) as owner:
        events = [(r.actor, r.event) for r in latest(owner)][::-1]
        assert ("op1", "acknowledge") in events and ("op1", "silence") in events
        assert ("op1", "logout") in events and ("admin", "locked") in events
        assert ("admin", "user_added") in events
        assert alerts.get_alert(owner, other_id, scope=NATIONAL).state == "open"


def _refused_to_the_dashboard(dash: psycopg.Connection, alert_id: int) -> None:
    forged = "INSERT INTO user_sessions (token_hash, username, created_at, expires_at, last_seen)"
    for statement in (
        "SELECT password_hash FROM users",
        "SELECT token_hash FROM user_sessions",
        f"{forged} VALUES ('x', 'admin', now(), now() + interval '1 day', now())",
        "DELETE FROM login_failures",
        "DELETE FROM login_locks",
        "INSERT INTO audit_log (actor, event) VALUES ('admin', 'logout')",
        f"UPDATE alerts SET state = 'acknowledged' WHERE alert_id = {alert_id}",
        "INSERT INTO users (username, display_name, role, password_hash)"
        " VALUES ('intruder', 'x', 'admin', 'x')",
        "INSERT INTO telemetry_bts (ts, device_id) VALUES (now(), 'x')",
        "DELETE FROM coverage_rasters",
        "DELETE FROM place_towers",
        "SELECT ioc_login_finish('admin', true, NULL, NULL, interval '1 day', NULL,"
        " NULL, NULL, NULL, NULL)",
        f"SELECT ioc_alert_operator_transition('resolved', {alert_id}, 'op1', 'x', NULL, NULL)",
        "SELECT ioc_alert_silence('x', NULL, now(), now() + interval '1 h', 'op1', NULL, NULL)",
    ):
        with pytest.raises(DENIED):
            dash.execute(statement)


def test_the_dashboard_cannot_loosen_the_owners_login_limits(
    ioc_url: str, logins: dict[str, str]
) -> None:
    with connect(ioc_url, autocommit=True) as owner:
        users.add_user(owner, "admin", "admin-password", "admin")
        throttle.set_floor(owner, Throttle(account_failures=2, address_failures=9, window=HOUR,
                                           lockout=HOUR))  # fmt: skip
        if owner.execute("SELECT to_regproc('ioc_login')").fetchone() == (None,):
            pytest.skip("this server has no pgcrypto")
    lax = Throttle(account_failures=1000, address_failures=1000,
                   window=timedelta(seconds=1), lockout=timedelta(seconds=1))  # fmt: skip
    with connect(logins["dashboard"], autocommit=True) as dash:
        for limits in (None, lax):  # none at all, then lax ones: the floor counts both
            assert users.login(dash, "admin", "wrong-password", limits=limits) is None
        with pytest.raises(users.LoginLocked):
            users.login(dash, "admin", "admin-password", limits=lax)


def test_an_argon2_password_is_rehashed_by_the_owner_and_refused_to_the_dashboard(
    ioc_url: str, logins: dict[str, str]
) -> None:
    old = PasswordHasher().hash(PW)
    with connect(ioc_url, autocommit=True) as owner:
        users.add_user(owner, "old1", "placeholder", "operator")
        users.add_user(owner, "old2", "placeholder", "operator")
        owner.execute("UPDATE users SET password_hash = %s", (old,))
        dashboard_checks = owner.execute("SELECT to_regproc('ioc_login')").fetchone() != (None,)
        assert users.password_scheme(owner, "old1") == "argon2id"
        assert users.login(owner, "old1", PW) is not None  # the owner checks argon2 itself …
        assert users.password_scheme(owner, "old1") == "bcrypt"  # … and rewrites it as bcrypt
    if not dashboard_checks:
        pytest.skip("this server has no pgcrypto")
    with connect(logins["dashboard"], autocommit=True) as dash:
        with pytest.raises(users.PasswordResetNeeded):
            users.login(dash, "old2", PW)
        assert users.login(dash, "old1", PW) is not None  # rehashed: bcrypt, checked in SQL


def test_a_login_reaches_its_own_database_only(ioc_url: str, logins: dict[str, str]) -> None:
    server = _as(ioc_url, str(psycopg.conninfo.conninfo_to_dict(ioc_url)["user"]), "postgres")
    with scratch_database(server, "ioc_other") as other_url:
        with connect(other_url) as conn:
            upgrade(conn)  # another IOC database: the same group roles have grants there
        other = psycopg.conninfo.conninfo_to_dict(other_url)["dbname"]
        for service in SERVICES:
            user = psycopg.conninfo.conninfo_to_dict(logins[service])["user"]
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                psycopg.connect(_as(ioc_url, str(user), str(other))).close()
            psycopg.connect(logins[service]).close()


def test_ioc_roles_login_makes_a_member_of_one_role(database_url: str) -> None:
    name = f"ioc_alerts_t{uuid.uuid4().hex[:8]}"
    web = f"ioc_dashboard_t{uuid.uuid4().hex[:8]}"
    env = {"IOC_DATABASE_URL": database_url, "IOC_ALERTS_DB_PASSWORD": "a-real-secret-for-tests"}
    runner = CliRunner()
    try:
        # The dashboard's login also stores the login limits its role may not loosen.
        dash = runner.invoke(app, ["roles", "login", "dashboard", "--login", web],
                             env=env | {"IOC_DASHBOARD_DB_PASSWORD": "a-real-secret-for-tests",
                                        "IOC_DASHBOARD_LOGIN_FAILURES": "3"})  # fmt: skip
        if "no pgcrypto" not in dash.output:
            assert dash.exit_code == 0, dash.output
            with connect(database_url) as owner:
                limits = owner.execute("SELECT account_failures FROM login_limits").fetchone()
            assert limits == (3,)
        made = runner.invoke(app, ["roles", "login", "alerts", "--login", name], env=env)
        assert made.exit_code == 0 and "created: member of ioc_alerts only" in made.output
        again = runner.invoke(
            app, ["roles", "login", "alerts", "--login", name, "--password-stdin"],
            input="rotated-secret-for-tests\n", env=env,
        )  # fmt: skip
        assert again.exit_code == 0 and "updated" in again.output
        with connect(database_url) as owner:
            assert member_of(owner, name, "alerts") and not member_of(owner, name, "ingest")
            row = owner.execute(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles"
                " WHERE rolname = %s",
                (name,),
            ).fetchone()
            assert row == (True, False, False, False)
        # Production refuses a weak one (the owner's URL has a real password: trust auth here).
        i = psycopg.conninfo.conninfo_to_dict(database_url)
        url = f"postgresql://{i['user']}:Xk3v9-wq7Lm2pR@{i['host']}:{i['port']}/{i['dbname']}"
        production = {"IOC_MODE": "production", "IOC_ALERTS_DB_PASSWORD": "password",
                      "IOC_DATABASE_URL": url}  # fmt: skip
        weak = runner.invoke(app, ["roles", "login", "alerts", "--login", name],
                             env=env | production)  # fmt: skip
        assert "IOC_ALERTS_DB_PASSWORD" in weak.output
        unknown = runner.invoke(app, ["roles", "login", "mailer"], env=env)
        assert "one of ingest, processing, coverage, alerts, dashboard" in unknown.output
        owner_role = psycopg.conninfo.conninfo_to_dict(database_url).get("user", "postgres")
        demote = runner.invoke(app, ["roles", "login", "alerts", "--login", str(owner_role)],
                               env=env)  # fmt: skip
        assert "an administrator's role" in demote.output
    finally:
        _drop_roles(database_url, [name, web])


def test_the_roles_migration_applies_in_many_databases_of_one_server(
    database_url: str, pg_server_url: str
) -> None:
    # The group roles are the server's: a second database (and a re-run) must not trip on them.
    with connect(database_url) as conn:
        assert upgrade(conn)
        assert upgrade(conn) == []
    with scratch_database(pg_server_url, "ioc_second") as second, connect(second) as conn:
        assert upgrade(conn)
    with connect(pg_server_url) as conn:
        found = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ANY(%s)"
            " ORDER BY rolname",
            ([f"ioc_{s}" for s in SERVICES],),
        ).fetchall()
    assert found == [(f"ioc_{s}", False, False) for s in sorted(SERVICES)]


@pytest.fixture(scope="module")
def dashboard_url(scenario_url: str) -> Iterator[str]:
    """The loaded scenario of tests/fixtures/dashboard.py, as a login of ``ioc_dashboard``."""
    name = f"ioc_dashboard_t{uuid.uuid4().hex[:8]}"
    with connect(scenario_url) as owner:
        service_login(owner, "dashboard", name, "a-real-secret-for-tests")
    try:
        yield _as(scenario_url, name)
    finally:
        _drop_roles(scenario_url, [name])


@pytest.mark.parametrize(
    "page",
    ["map", "alerts", "coverage", "broadband", "cameras", "device", "village", "ingest", "users"],
)
def test_every_dashboard_page_runs_under_the_dashboard_role(
    scenario_url: str, dashboard_url: str, page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.fixtures.dashboard import PASSWORDS

    with connect(scenario_url, autocommit=True) as owner:
        session = users.login(owner, "admin", PASSWORDS["admin"])
    assert session is not None
    monkeypatch.setenv("IOC_DATABASE_URL", dashboard_url)
    app = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")
    at = AppTest.from_file(app, default_timeout=60)
    at.session_state["lang"] = "en"
    at.session_state["session_token"] = session.token
    if page != "map":
        at.switch_page(f"../dashboard/pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    assert not [e.value for e in at.error], [e.value for e in at.error]
