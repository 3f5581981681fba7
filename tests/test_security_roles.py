"""The dashboard's database role (migration 0008): it reads everything, acknowledges open
alerts, keeps its own login sessions — and the database refuses everything else it tries."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest

from devices.codec import Codec, Readings
from devices.kinds import Channel, Kind
from devices.topics import Topics
from ioc.production import EXAMPLE_SECRETS, production_problem, secret_problem
from store import alerts
from store.alert_engine import NewAlert, open_alert
from store.audit import reading_count
from store.db import aconnect, connect
from store.migrate import upgrade
from store.registry import map_devices
from store.roles import dashboard_login, member_of_dashboard
from store.throttle import Throttle
from store.users import LoginLocked, add_user, login
from store.writer import Batch, write_batch
from tests.support.procs import register_devices

DEVICE = "BTS-ROLE-1"
DENIED = psycopg.errors.InsufficientPrivilege
HOUR = timedelta(hours=1)


def _as(url: str, user: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["user"] = user
    return psycopg.conninfo.make_conninfo("", **info)


def _reading(seq: int) -> Batch:
    now = datetime.now(UTC)
    codec = Codec(Topics(), is_known={DEVICE}.__contains__)
    payload = msgspec.json.encode({"device_id": DEVICE, "ts": now.isoformat(), "seq": seq,
                                   "power_source": "mains", "backhaul_up": True})  # fmt: skip
    decoded = codec.decode(Topics().device(Kind.BTS, DEVICE, Channel.TELEMETRY), payload, now)
    assert isinstance(decoded.record, Readings), decoded.rejections
    batch = Batch()
    batch.readings[Kind.BTS].extend(decoded.record.items)
    batch.messages = 1
    return batch


async def _seed(url: str) -> tuple[int, int]:
    """As the owner: a device, one reading, two open alerts; returns their ids."""
    with connect(url) as conn:
        upgrade(conn)
    register_devices(url, [DEVICE])
    now = datetime.now(UTC)
    conn_a = await aconnect(url)
    async with conn_a:
        await write_batch(conn_a, _reading(1))
        alert = NewAlert(rule="tower_down", subject=DEVICE, subject_kind="bts",
                         severity="major", summary="down", summary_vi="mất", details={},
                         district_code=None)  # fmt: skip
        alert_id = await open_alert(conn_a, alert, now)
        other_id = await open_alert(conn_a, dataclasses.replace(alert, rule="camera_down"), now)
    assert alert_id is not None and other_id is not None
    return alert_id, other_id


@pytest.fixture
def dashboard_role(pg_server_url: str) -> Iterator[str]:
    name = f"ioc_dash_{uuid.uuid4().hex[:10]}"
    yield name
    _drop_role(pg_server_url, name)


def _drop_role(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        drop = psycopg.sql.SQL("DROP ROLE IF EXISTS {}")
        admin.execute(drop.format(psycopg.sql.Identifier(name)))


async def _check_dashboard_role(url: str, role: str) -> None:
    alert_id, other_id = await _seed(url)
    with connect(url) as owner:
        assert dashboard_login(owner, role, "a-real-secret-for-tests") is True
        assert dashboard_login(owner, role, "rotated-secret-for-tests") is False
        assert member_of_dashboard(owner, role)
        add_user(owner, "op1", "operator-password", "operator")
    with connect(_as(url, role), autocommit=True) as dash:
        # Reads: the registry, a (hyper)table of readings, alerts.
        assert [d.device_id for d in map_devices(dash, datetime.now(UTC))] == [DEVICE]
        assert reading_count(dash, Kind.BTS).rows == 1
        assert {a.alert_id for a in alerts.list_alerts(dash)} == {alert_id, other_id}
        # Its own sessions: logging in works.
        assert login(dash, "op1", "operator-password") is not None
        # Throttling and the audit log are its to write: a failure counted up to a lock.
        one_strike = Throttle(account_failures=1, address_failures=9, window=HOUR, lockout=HOUR)
        assert login(dash, "op2", "wrong-password", limits=one_strike) is None
        with pytest.raises(LoginLocked):
            login(dash, "op2", "wrong-password", limits=one_strike)
        # The one write it owns: open → acknowledged, with its history row.
        acked = alerts.acknowledge(dash, alert_id, by="op1", comment="on it")
        assert acked.state == "acknowledged" and acked.acknowledged_by == "op1"
        assert [t.event for t in alerts.transitions(dash, alert_id)] == ["opened", "acknowledged"]
        with pytest.raises(alerts.AlertStateError):
            alerts.acknowledge(dash, alert_id, by="op1")
        # Everything else is refused by the database itself.
        with pytest.raises(DENIED):
            alerts.resolve(dash, alert_id, by="op1", reason="not mine to close")
        with pytest.raises(DENIED):
            alerts.silence(
                dash,
                alerts.SilenceRequest(
                    rule="tower_down",
                    subject=DEVICE,
                    ends_at=datetime.now(UTC) + timedelta(hours=1),
                    created_by="op1",
                ),
            )
        with pytest.raises(DENIED):
            add_user(dash, "intruder", "intruder-password", "admin")
        with pytest.raises(DENIED):
            register_devices(_as(url, role), ["BTS-FORGED"])
        # An attacker's own SQL fares no better: the policies allow open → acknowledged only.
        with pytest.raises(DENIED):
            dash.execute("UPDATE alerts SET state = 'resolved' WHERE alert_id = %s", (other_id,))
        cur = dash.execute("UPDATE alerts SET state = 'open' WHERE alert_id = %s", (alert_id,))
        assert cur.rowcount == 0  # an acknowledged row is not the dashboard's to change
        with pytest.raises(DENIED):
            dash.execute("DELETE FROM telemetry_bts")
    async with await aconnect(_as(url, role)) as dash_a:
        with pytest.raises(DENIED):
            await write_batch(dash_a, _reading(2))
    with connect(url) as owner:
        assert alerts.get_alert(owner, alert_id).state == "acknowledged"
        assert reading_count(owner, Kind.BTS).rows == 1


async def test_the_dashboard_role_on_postgresql(database_url: str, dashboard_role: str) -> None:
    await _check_dashboard_role(database_url, dashboard_role)


@pytest.mark.timescale
async def test_the_dashboard_role_on_timescaledb(tsdb_url: str) -> None:
    role = f"ioc_dash_{uuid.uuid4().hex[:10]}"
    try:
        await _check_dashboard_role(tsdb_url, role)
    finally:
        _drop_role(tsdb_url, role)


def test_migration_0008_applies_in_many_databases_of_one_server(
    database_url: str, pg_server_url: str
) -> None:
    # The role is the server's: a second database (and a re-run) must not trip over it.
    with connect(database_url) as conn:
        assert upgrade(conn)
        assert upgrade(conn) == []
    with connect(pg_server_url) as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ioc_dashboard'")
        assert row.fetchone() == (False,)


@pytest.mark.parametrize("value", [*sorted(EXAMPLE_SECRETS), "", "short", "my-change-me-1234"])
def test_example_and_weak_secrets_are_refused(value: str) -> None:
    assert secret_problem(value) is not None


def test_production_settings_need_real_secrets_and_tls() -> None:
    good_db = "postgresql://ioc:Xk3v9-wq7Lm2pR@db/ioc"
    good_mqtt = "mqtts://ioc-ingest:Zz81-kqpW3n7vHs@mosquitto:8883?ca_file=/certs/ca.crt"
    assert production_problem(good_db, good_mqtt) is None
    assert production_problem(good_db, None) is None  # the dashboard has no broker
    assert "IOC_DATABASE_URL is not set" in str(production_problem(None, good_mqtt))
    assert "example value" in str(production_problem("postgresql://ioc:change-me@db/ioc", None))
    assert "not set" in str(production_problem("postgresql://ioc@db/ioc", None))
    assert "IOC_MQTT_URL" in str(production_problem(good_db, "mqtts://ioc-ingest@mq:8883"))
    plain = good_mqtt.replace("mqtts://", "mqtt://")
    assert "TLS" in str(production_problem(good_db, plain))


def test_production_ingesters_on_the_shared_group_need_a_secret_group_name() -> None:
    from ioc.configs import ingest_config
    from ioc.errors import SettingError
    from ioc.settings import Settings

    urls = {"database_url": "postgresql://ioc:Xk3v9-wq7Lm2pR@db/ioc",
            "mqtt": {"url": "mqtts://ioc-ingest-1:Zz81-kqpW3n7vHs@mosquitto:8883"}}  # fmt: skip
    public = Settings.defaults(mode="production", **urls)
    with pytest.raises(SettingError, match="IOC_INGEST_SHARE_GROUP is the public default"):
        ingest_config(public, shared=True)
    assert ingest_config(public, shared=False).share_group == public.ingest.share_group
    secret = Settings.defaults(mode="production", ingest={"share_group": "g-Hq83nWv0pLz6-2kT"},
                               **urls)  # fmt: skip
    assert ingest_config(secret, shared=True).share_group == "g-Hq83nWv0pLz6-2kT"
    with pytest.raises(ValueError, match=r"ingest\.share_group"):
        Settings.defaults(ingest={"share_group": "a/b"})
    # Production refuses self-registration: one credential must not invent devices.
    with pytest.raises(ValueError, match="IOC_INGEST_SELF_REGISTER"):
        Settings.defaults(mode="production", ingest={"self_register": True}, **urls)
    assert not public.self_register and Settings.defaults().self_register
