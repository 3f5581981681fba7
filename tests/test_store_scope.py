"""Roles scoped to provinces, enforced in the store's reads (issue 19, part 2): three provinces
in one database, a few alerts, coverage verdicts, status events and rejects in Bắc Giang and in
Bình Định; each read the dashboard makes returns Bắc Giang's rows and none of Bình Định's under
a Bắc Giang scope, and both under the national one. The writes of migration 0021 are checked
through the dashboard's own path: a login of the ``ioc_dashboard`` role and a user's session."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devices.kinds import Kind
from ioc.scenario import load_into
from store import (
    alert_outbox,
    alerts,
    broadband,
    cameras,
    coverage,
    coverage_history,
    incidents,
    places,
    readings,
    registry,
    villages,
)
from store.db import connect
from store.migrate import upgrade
from store.roles import service_login
from store.scope import NATIONAL, Scope
from store.users import add_user, add_user_in_session, login
from tests.support.databases import scratch_database

THREE = "Bắc Giang, Thái Nguyên, Bình Định"
BAC_GIANG, BINH_DINH = 24, 52
BG = Scope.of([BAC_GIANG])
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Side:
    """One province's rows: a tower, a camera, a broadband node, a village, an alert."""

    tower: str
    camera: str
    olt: str
    district: int
    village: str
    village_name: str
    alert_id: int


@dataclass(frozen=True)
class World:
    url: str
    bg: Side
    bd: Side


def _device(conn: psycopg.Connection, kind: str, province: int) -> tuple[str, int]:
    row = conn.execute(
        "SELECT v.device_id, v.district_code FROM devices v JOIN districts d"
        " ON d.code = v.district_code WHERE v.kind = %s AND d.province_code = %s"
        " ORDER BY v.device_id LIMIT 1",
        (kind, province),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def _open_alert(conn: psycopg.Connection, subject: str, district: int) -> int:
    row = conn.execute(
        alerts.OPEN,
        {"rule": "bts_offline", "subject": subject, "subject_kind": "bts",
         "severity": "major", "summary": f"{subject} offline", "summary_vi": f"{subject} mất",
         "details": "{}", "district_code": district, "ts": T0, "flapping": False,
         "comment": None},
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def _side(conn: psycopg.Connection, province: int) -> Side:
    tower, district = _device(conn, "bts", province)
    camera, _ = _device(conn, "camera", province)
    olt, _ = _device(conn, "broadband", province)
    village = conn.execute(
        "SELECT v.village_id, v.name, v.commune_code, v.district_code, v.population"
        " FROM villages v JOIN districts d ON d.code = v.district_code"
        " WHERE d.province_code = %s ORDER BY v.village_id LIMIT 1",
        (province,),
    ).fetchone()
    assert village is not None
    village_id, name, commune, village_district, population = village
    conn.execute(
        "INSERT INTO coverage_places (place_kind, place_id, name, district_code, commune_code,"
        " population, operators, measured, dead_spot, levels, since, updated_at) VALUES"
        " ('village', %s, %s, %s, %s, %s, '{}', '{}', true, '{}', %s, %s),"
        " ('commune', %s::text, 'centre', %s, %s, 0, '{viettel}', '{}', false, '{}', %s, %s)",
        (village_id, name, village_district, commune, population, T0, T0,
         commune, village_district, commune, T0, T0),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO coverage_history (ts, place_kind, place_id, operators, measured, dead_spot)"
        " VALUES (%s, 'village', %s, '{}', '{}', true)",
        (T0, village_id),
    )
    conn.execute(
        "INSERT INTO coverage_events (ts, village_id, kind, operators_lost, operators_now,"
        " towers, population) VALUES (%s, %s, 'lost', '{viettel}', '{}', %s, %s)",
        (T0, village_id, [tower], population),
    )
    conn.execute(
        "INSERT INTO status_events (ts, device_id, state, reason)"
        " VALUES (%s, %s, 'offline', 'lwt')",
        (T0, tower),
    )
    conn.execute(
        "INSERT INTO rejects (received_at, reason, topic, device_id, detail, payload,"
        " payload_size, payload_sha256)"
        " VALUES (now(), 'bad_json', 't', %s, 'x', '\\x00', 1, '\\x00')",
        (tower,),
    )
    alert_id = _open_alert(conn, tower, district)
    incident = conn.execute(
        "INSERT INTO incidents (cause, district_code, alert_id, opened_at, updated_at, told_at,"
        " told_size) VALUES ('power', %s, %s, %s, %s, %s, 1) RETURNING incident_id",
        (district, alert_id, T0, T0, T0),
    ).fetchone()
    assert incident is not None
    conn.execute("UPDATE alerts SET incident_id = %s WHERE alert_id = %s", (incident[0], alert_id))
    conn.execute(
        "INSERT INTO alert_outbox (transition_id, alert_id, seq, channel, next_attempt_at,"
        " attempts, last_error, dead_at) SELECT transition_id, alert_id, seq, c, now(), 1,"
        " 'HTTP 400', CASE WHEN c = 'webhook:dead' THEN now() END FROM alert_transitions,"
        " unnest(ARRAY['webhook:ops', 'webhook:dead']) AS c WHERE alert_id = %s",
        (alert_id,),
    )
    return Side(tower, camera, olt, district, village_id, name, alert_id)


@pytest.fixture(scope="module")
def world(pg_server_url: str) -> Iterator[World]:
    with scratch_database(pg_server_url) as url:
        with connect(url, autocommit=True) as conn:
            upgrade(conn)
            load_into(conn, THREE)
            bg, bd = _side(conn, BAC_GIANG), _side(conn, BINH_DINH)
            # A reject from an id the registry does not know: the national role's alone.
            conn.execute(
                "INSERT INTO rejects (received_at, reason, topic, device_id, detail, payload,"
                " payload_size, payload_sha256)"
                " VALUES (now(), 'unknown_device', 't', 'NOBODY', 'x', '\\x00', 1, '\\x00')"
            )
        yield World(url, bg, bd)


# Each read, and what identifies its rows; read(conn, world, scope) -> the ids it returned.
READS: dict[str, Callable[[psycopg.Connection, World, Scope], set[Any]]] = {
    "list_alerts": lambda c, w, s: {a.alert_id for a in alerts.list_alerts(c, scope=s)},
    "get_alert": lambda c, w, s: _found(
        lambda i: alerts.get_alert(c, i, scope=s).alert_id, w, alerts.AlertNotFound
    ),
    "transitions": lambda c, w, s: {
        t.alert_id for a in (w.bg, w.bd) for t in alerts.transitions(c, a.alert_id, scope=s)
    },
    "list_incidents": lambda c, w, s: {i.alert_id for i in incidents.list_incidents(c, scope=s)},
    "members": lambda c, w, s: {
        m.alert_id
        for i in incidents.list_incidents(c, scope=NATIONAL)
        for m in incidents.members(c, i.incident_id, scope=s)
    },
    "backlog": lambda c, w, s: {(b.channel, b.pending) for b in alert_outbox.backlog(c, scope=s)},
    "dead_letters": lambda c, w, s: {d.alert_id for d in alert_outbox.dead_letters(c, scope=s)},
    "coverage_rows": lambda c, w, s: {r["place_id"] for r in coverage.coverage_rows(c, scope=s)},
    "commune_centres": lambda c, w, s: {coverage.commune_centres(c, scope=s)},
    "village": lambda c, w, s: {
        v for v in (w.bg.village, w.bd.village) if villages.village(c, v, scope=s)
    },
    "village_events": lambda c, w, s: {
        v for v in (w.bg.village, w.bd.village) if villages.village_events(c, v, scope=s)
    },
    "tower_villages": lambda c, w, s: {
        r["village_id"]
        for t in (w.bg.tower, w.bd.tower)
        for r in villages.tower_villages(c, t, scope=s)
    },
    "nearest_towers": lambda c, w, s: (
        {
            r["device_id"]
            for r in villages.nearest_towers(
                c, *_position(c, w.bd.tower), per_operator=100_000, scope=s
            )
        }
        & {w.bg.tower, w.bd.tower}
    ),
    "search_devices": lambda c, w, s: {
        d.device_id
        for t in (w.bg.tower, w.bd.tower)
        for d in registry.search_devices(c, t, scope=s)
        if d.device_id == t
    },
    "device_detail": lambda c, w, s: {
        t for t in (w.bg.tower, w.bd.tower) if registry.device_detail(c, t, scope=s)
    },
    "status_events": lambda c, w, s: {
        t for t in (w.bg.tower, w.bd.tower) if registry.status_events(c, t, scope=s)
    },
    "reject_samples": lambda c, w, s: {
        r["device_id"] for r in readings.reject_samples(c, T0 - timedelta(days=3650), scope=s)
    },
    "reject_counts": lambda c, w, s: set(
        readings.reject_counts(c, T0 - timedelta(days=3650), scope=s).items()
    ),
    "cameras": lambda c, w, s: (
        {d.device_id for d in cameras.cameras(c, T0, scope=s)} & {w.bg.camera, w.bd.camera}
    ),
    "olts": lambda c, w, s: (
        {d.device_id for d in broadband.olts(c, T0, scope=s)} & {w.bg.olt, w.bd.olt}
    ),
    "commune_fibre": lambda c, w, s: (
        {f.district_code for f in broadband.commune_fibre(c, scope=s)}
        & {w.bg.district, w.bd.district}
    ),
    "district_names": lambda c, w, s: (
        set(places.district_names(c, scope=s)) & {w.bg.district, w.bd.district}
    ),
    "provinces": lambda c, w, s: (
        {p["code"] for p in places.provinces(c, scope=s)} & {BAC_GIANG, BINH_DINH}
    ),
    "device_states_at": lambda c, w, s: set(
        coverage_history.device_states_at(c, T0, [w.bg.tower, w.bd.tower], scope=s)
    ),
    "coverage_at": lambda c, w, s: {
        v.village_id for v in coverage_history.coverage_at(c, T0, scope=s).villages
    },
}


def _found(get: Callable[[int], int], w: World, missing: type[Exception]) -> set[int]:
    found = set()
    for side in (w.bg, w.bd):
        with contextlib.suppress(missing):
            found.add(get(side.alert_id))
    return found


def _position(conn: psycopg.Connection, device_id: str) -> tuple[float, float]:
    row = conn.execute("SELECT lat, lon FROM devices WHERE device_id = %s", (device_id,))
    found = row.fetchone()
    assert found is not None
    return float(found[0]), float(found[1])


def _expected(name: str, w: World, sides: tuple[Side, ...]) -> set[Any]:
    """What ``name`` returns when only ``sides`` are visible."""
    alerts_ = {s.alert_id for s in sides}
    towers = {s.tower for s in sides}
    vills = {s.village for s in sides}
    national = len(sides) == 2
    expected: dict[str, set[Any]] = {
        "list_alerts": alerts_,
        "get_alert": alerts_,
        "transitions": alerts_,
        "list_incidents": alerts_,
        "members": alerts_,
        "backlog": {("webhook:ops", len(sides)), ("webhook:dead", 0)},
        "dead_letters": alerts_,
        "coverage_rows": vills,
        "commune_centres": {(len(sides), len(sides))},
        "village": vills,
        "village_events": vills,
        "tower_villages": vills,
        "nearest_towers": towers,
        "search_devices": towers,
        "device_detail": towers,
        "status_events": towers,
        "reject_samples": towers | ({"NOBODY"} if national else set()),
        "reject_counts": {("bad_json", len(sides))}
        | ({("unknown_device", 1)} if national else set()),
        "cameras": {s.camera for s in sides},
        "olts": {s.olt for s in sides},
        "commune_fibre": {s.district for s in sides},
        "district_names": {s.district for s in sides},
        "provinces": {BAC_GIANG, BINH_DINH} if national else {BAC_GIANG},
        "device_states_at": towers,
        "coverage_at": vills,
    }
    return expected[name]


@pytest.mark.parametrize("read", sorted(READS))
def test_a_bac_giang_scope_reads_bac_giang_only_and_the_national_one_both(
    world: World, read: str
) -> None:
    with connect(world.url) as conn:
        assert READS[read](conn, world, BG) == _expected(read, world, (world.bg,))
        assert READS[read](conn, world, NATIONAL) == _expected(read, world, (world.bg, world.bd))


def test_a_device_outside_the_scope_reads_like_no_device(world: World) -> None:
    with connect(world.url) as conn:
        assert registry.device_detail(conn, world.bd.tower, scope=BG) is None
        assert registry.device_detail(conn, "BTS-NOBODY-0001", scope=BG) is None
        assert registry.status_events(conn, world.bd.tower, scope=BG) == []
        assert villages.tower_serves(conn, world.bd.tower, scope=BG) == []
        assert readings.rollup_series(conn, Kind.BTS, world.bd.tower, T0, T0,
                                      scope=BG) == []  # fmt: skip
        with pytest.raises(alerts.AlertNotFound):
            alerts.get_alert(conn, world.bd.alert_id, scope=BG)


@pytest.fixture(scope="module")
def dashboard_url(world: World) -> Iterator[str]:
    """``world`` as a fresh login of the dashboard's role (its grants, not the owner's)."""
    name = f"ioc_dashboard_t{uuid.uuid4().hex[:8]}"
    with connect(world.url) as owner:
        if owner.execute("SELECT to_regproc('ioc_login')").fetchone() == (None,):
            pytest.skip("this server has no pgcrypto: the dashboard runs as the owner")
        assert service_login(owner, "dashboard", name, f"secret-{name}")
        add_user(owner, "bg_op", "bg-operator-pw", "operator", provinces=[BAC_GIANG])
        add_user(owner, "bg_admin", "bg-admin-pw", "admin", provinces=[BAC_GIANG])
        add_user(owner, "nat_admin", "nat-admin-pw", "admin")
    info = psycopg.conninfo.conninfo_to_dict(world.url)
    info["user"] = name
    try:
        yield psycopg.conninfo.make_conninfo("", **info)
    finally:
        with psycopg.connect(world.url, autocommit=True) as owner:
            owner.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(name)))
            owner.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


def _token(dash: psycopg.Connection, username: str, password: str) -> str:
    session = login(dash, username, password)
    assert session is not None
    return session.token


def test_the_dashboard_role_reads_in_scope(world: World, dashboard_url: str) -> None:
    with connect(dashboard_url, autocommit=True) as dash:
        assert {a.alert_id for a in alerts.list_alerts(dash, scope=BG)} == {world.bg.alert_id}
        assert [p["code"] for p in places.provinces(dash, scope=BG)] == [BAC_GIANG]


def test_a_bac_giang_operator_cannot_acknowledge_or_silence_binh_dinh(
    world: World, dashboard_url: str
) -> None:
    hush = alerts.SilenceRequest(rule=None, subject=world.bd.tower, created_by="",
                                 ends_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    with connect(dashboard_url, autocommit=True) as dash:
        token = _token(dash, "bg_op", "bg-operator-pw")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside the provinces"):
            alerts.acknowledge_in_session(dash, token, world.bd.alert_id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside the provinces"):
            alerts.silence_in_session(dash, token, hush)
        # Its own province's: allowed.
        done = alerts.acknowledge_in_session(dash, token, world.bg.alert_id, "on it")
        assert (done.state, done.acknowledged_by) == ("acknowledged", "bg_op")
        mine = alerts.SilenceRequest(rule=None, subject=world.bg.tower, created_by="",
                                     ends_at=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
        assert alerts.silence_in_session(dash, token, mine).created_by == "bg_op"
    with connect(world.url) as owner:
        assert alerts.get_alert(owner, world.bd.alert_id, scope=NATIONAL).state == "open"


def test_a_provincial_admin_adds_users_within_its_provinces_only(
    world: World, dashboard_url: str
) -> None:
    with connect(dashboard_url, autocommit=True) as dash:
        token = _token(dash, "bg_admin", "bg-admin-pw")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only add users"):
            add_user_in_session(dash, token, "nat_op", "a-long-password", "operator")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only add users"):
            add_user_in_session(dash, token, "bd_op", "a-long-password", "operator",
                                provinces=[BINH_DINH])  # fmt: skip
        added = add_user_in_session(dash, token, "bg_op2", "a-long-password", "operator",
                                    provinces=[BAC_GIANG])  # fmt: skip
        assert added.provinces == [BAC_GIANG]
        national = _token(dash, "nat_admin", "nat-admin-pw")
        assert add_user_in_session(dash, national, "nat_op", "a-long-password",
                                   "operator").provinces is None  # fmt: skip
