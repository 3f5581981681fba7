"""Incidents, not storms (issue 16, part 6): a typhoon-like storm through the real engine on a
real database is a handful of incidents, each told once when it opens and once per change of
its size (at most every group_interval_s), its member alerts all stored and linked, the
symptoms inhibited under their cause, no member told to a person on its own, and each incident
resolved when its members are.

The storm: Vân Canh's towers all go offline (a district power cut) and its villages lose
coverage because of them; six towers of Vĩnh Thạnh run low on battery; three towers of An Lão
lose their backhaul (a fibre cut) and the villages they served go dark. Everything is in the
database before the engine starts, so its first tick sees the whole storm at once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from devices.kinds import Kind
from processing.alerts.facts import Directory
from processing.alerts.incident_rules import load_incident_rules, parse_incident_rules
from processing.alerts.incidents import (
    IncidentBook,
    groups,
    machine_channels,
    routed,
    summarize,
)
from processing.alerts.lifecycle import Tracker
from processing.alerts.routing import Router, parse_routing
from processing.alerts.rules import RulesError, load_document, load_rules
from seeds import load_scenario
from store import users
from store.alert_engine import (
    CommuneInfo,
    DeviceInfo,
    NewAlert,
    SubjectDirectory,
    VillageInfo,
    open_alert,
)
from store.alert_outbox import Target
from store.db import aconnect, connect
from store.incidents import (
    close,
    fan_out_members,
    link,
    list_incidents,
    members,
    open_incident,
    open_incidents,
    update,
)
from store.migrate import upgrade
from store.roles import service_login
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

VAN_CANH, VINH_THANH, AN_LAO = 551, 546, 542
HEALTHY = {"power_source": "mains", "battery_pct": 100.0, "sectors_up": [True] * 3,
           "backhaul_up": True}  # fmt: skip
GROUPED = sorted(load_incident_rules().grouped)
APP = str(Path(__file__).parent.parent / "ioc" / "dashboard_main.py")  # as `ioc dashboard` runs


def _villages(district: int, n: int) -> list[Any]:
    return [v for v in load_scenario().villages if v.district_code == district][:n]


def _lose(url: str, villages: list[Any], towers: list[str], operator: str) -> None:
    """The coverage service's events: these villages lost every operator through ``towers``."""
    with psycopg.connect(url, autocommit=True) as conn:
        for v in villages:
            conn.execute(
                "INSERT INTO coverage_events (ts, village_id, kind, operators_lost, operators_now,"
                " towers, population) VALUES (now(), %s, 'lost', %s, '{}', %s, %s)",
                (v.village_id, [operator], towers, v.population),
            )


async def _state_count(url: str, ids: list[str], state: str) -> bool:
    got = rows(url, "SELECT count(*) FROM devices WHERE device_id = ANY(%s) AND state = %s",
               ids, state)  # fmt: skip
    return got == [(len(ids),)]


async def _readings_in(url: str, ids: list[str], n: int) -> bool:
    got = rows(url, "SELECT count(DISTINCT device_id) FROM telemetry_bts"
                    " WHERE device_id = ANY(%s)", ids)  # fmt: skip
    return got == [(n,)]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ioc", "alerts", *args],
                          env={**clean_environ(), "IOC_DATABASE_URL": url},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _incidents(url: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    found = rows(url, "SELECT cause, district_code, incident_id, alert_id, resolved_at, facts"
                      " FROM incidents ORDER BY incident_id")  # fmt: skip
    return {(r[0], r[1]): r[2:] for r in found}


def _told(url: str, alert_id: int) -> list[str]:
    """The transitions of an alert that went to the webhook: what a person was told."""
    return [r[0] for r in rows(
        url, "SELECT t.event FROM alert_outbox o JOIN alert_transitions t USING (transition_id)"
             " WHERE o.alert_id = %s AND o.channel = 'webhook:ops' ORDER BY o.seq", alert_id,
    )]  # fmt: skip


async def test_a_storm_is_a_handful_of_incidents_told_once_and_per_size_change(
    world: AlertWorld,
) -> None:
    url, clock, hook = world.database_url, world.clock, world.hook
    dark = scenario_devices(Kind.BTS, district=VAN_CANH)
    battery = scenario_devices(Kind.BTS, district=VINH_THANH)[:6]
    cut = scenario_devices(Kind.BTS, district=AN_LAO)[:3]
    van_canh_villages = _villages(VAN_CANH, 11)
    an_lao_villages = _villages(AN_LAO, 5)
    async with world.field() as field:
        for t in [*dark, *battery, *cut]:
            await field.birth(t)
        for t in dark:
            await field.status(t, "online")
        await wait_until(partial(_state_count, url, [t.device_id for t in dark], "online"))
        for t in dark:
            await field.status(t, "offline", "will")
        for t in battery:
            await field.reading(t, **{**HEALTHY, "power_source": "battery", "battery_pct": 20.0})
        for t in cut:
            await field.reading(t, **{**HEALTHY, "backhaul_up": False})
        await wait_until(partial(_state_count, url, [t.device_id for t in dark], "offline"))
        await wait_until(partial(_readings_in, url, [t.device_id for t in [*battery, *cut]], 9))
    _lose(url, van_canh_villages[:8], [t.device_id for t in dark[:10]], "Viettel")
    _lose(url, an_lao_villages, [t.device_id for t in cut], "VNPT")

    async with world.engine(ops_hook=True) as engine, world.field() as field:
        await ticks(engine, 5)
        # Gathering (group_wait_s): every member is stored, nobody is told yet.
        assert rows(url, "SELECT count(*) FROM incidents") == [(0,)]
        clock.advance(31)  # past group_wait_s and bts_backhaul_down's for_s
        await ticks(engine, 5)

        found = _incidents(url)
        assert set(found) == {("power", VAN_CANH), ("power", VINH_THANH), ("fibre", AN_LAO)}
        open_members = rows(url, "SELECT rule, subject, incident_id, inhibited FROM alerts"
                            " WHERE rule = ANY(%s) AND state <> 'resolved'", GROUPED)  # fmt: skip
        assert len(open_members) == 1 + 8 + 6 + 3 + 5  # power cut, villages, battery, backhaul
        by_subject = {r[1]: r for r in open_members}
        power, fibre = found[("power", VAN_CANH)][0], found[("fibre", AN_LAO)][0]
        for v in van_canh_villages[:8]:  # under the towers of the power cut: inhibited
            assert by_subject[v.village_id][2:] == (power, True)
        for v in an_lao_villages:  # under the towers whose backhaul is cut
            assert by_subject[v.village_id][2:] == (fibre, True)
        for t in battery:
            assert by_subject[t.device_id][2:] == (found[("power", VINH_THANH)][0], False)
        assert all(r[2] is not None for r in open_members)  # every one listed, none lost

        # Nobody was told of a member on its own; the MQTT topic carries every alert.
        channels = rows(url, "SELECT DISTINCT o.channel FROM alert_outbox o JOIN alerts a"
                             " USING (alert_id) WHERE a.rule = ANY(%s)", GROUPED)  # fmt: skip
        assert channels == [("mqtt",)]
        facts = found[("power", VAN_CANH)][3]
        lost = sorted(van_canh_villages[:8], key=lambda v: (-v.population, v.name))
        assert facts["villages_dark"] == 8
        assert facts["people_affected"] == sum(v.population for v in lost)
        assert facts["worst_villages"][0] == {"village": lost[0].name,
                                              "population": lost[0].population}  # fmt: skip
        assert facts["by_rule"] == {"coverage_lost": 8, "district_power_cut": 1}
        assert facts["districts"] == ["Huyện Vân Canh"]

        async def three_told() -> bool:
            return sorted(p["rule"] for p in hook.received) == [
                "incident_fibre", "incident_power", "incident_power"]  # fmt: skip

        await wait_until(three_told)
        power_alert = found[("power", VAN_CANH)][1]
        summary = next(p for p in hook.received if p["alert_id"] == power_alert)["summary"]
        assert "Vân Canh" in summary and lost[0].name in summary and "8 villages" in summary

        # Three more villages: the incident grows, told once the interval has passed.
        _lose(url, van_canh_villages[8:], [t.device_id for t in dark[10:]], "Viettel")
        await ticks(engine, 5)
        clock.advance(100)
        await ticks(engine, 5)
        assert _told(url, power_alert) == ["opened"]  # within group_interval_s: not yet
        clock.advance(200)  # 300 s since it was told
        await ticks(engine, 5)
        assert _told(url, power_alert) == ["opened", "updated"]
        clock.advance(10)
        await ticks(engine, 5)
        assert _told(url, power_alert) == ["opened", "updated"]  # no change, no message
        assert rows(url, "SELECT told_size FROM incidents WHERE incident_id = %s",
                    power) == [(1 + 11,)]  # fmt: skip

        # Vĩnh Thạnh's power returns: its battery alerts resolve, and its incident with them.
        for t in battery:
            await field.reading(t, **HEALTHY)

        async def cleared() -> bool:
            return all(not engine.trackers[("bts_battery_low", t.device_id)].raised
                       for t in battery)  # fmt: skip

        await wait_until(cleared)
        clock.advance(61)  # keep_firing_s
        await ticks(engine, 5)
        vinh_thanh = _incidents(url)[("power", VINH_THANH)]
        assert vinh_thanh[2] is not None  # resolved_at
        assert _told(url, vinh_thanh[1]) == ["opened", "resolved"]
        assert rows(url, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL") == [(2,)]

    # What operators read: the incidents, the members one level below.
    with connect(url) as conn:
        listed = list_incidents(conn, scope=NATIONAL)
        assert (listed[0].cause, listed[0].district_code) == ("power", VAN_CANH)
        assert listed[0].open_members == 12
        member_rows = members(conn, listed[0].incident_id, scope=NATIONAL)
        assert sum(m.inhibited for m in member_rows) == 11
    cli = _cli(url, "incidents", "--members")
    assert cli.returncode == 0, cli.stderr
    heads = [line for line in cli.stdout.splitlines() if line.startswith("incident ")]
    assert len(heads) == 2 and "Vân Canh" in heads[0]  # the resolved one is not listed
    assert "12 open of 12 alerts" in cli.stdout and "11 villages dark" in cli.stdout
    assert cli.stdout.count("inhibited") == 11 + 5


async def test_a_lone_alert_is_told_alone_and_an_incident_survives_a_restart(
    world: AlertWorld,
) -> None:
    """One battery alert is no incident (min_alerts): it is told as itself at once. A second
    one makes the group; the incident opens after group_wait_s, and an engine started again
    takes it over rather than opening another or telling it twice."""
    url, clock, hook = world.database_url, world.clock, world.hook
    towers = scenario_devices(Kind.BTS, district=VINH_THANH)[:2]
    low = {**HEALTHY, "power_source": "battery", "battery_pct": 20.0}
    async with world.field() as field:
        for t in towers:
            await field.birth(t)
        async with world.engine(ops_hook=True) as engine:
            await field.reading(towers[0], **low)
            await wait_until(lambda: hook.events() != [])
            [(first, event)] = hook.events()
            assert event == "opened"
            await field.reading(towers[1], **low)
            await wait_until(lambda: ("bts_battery_low", towers[1].device_id) in engine.trackers)
            await ticks(engine, 5)
            clock.advance(31)
            await ticks(engine, 5)
            [(incident, alert_id, _, _)] = _incidents(url).values()
            await wait_until(lambda: len(hook.received) == 2)
            assert hook.received[1]["rule"] == "incident_power"
        async with world.engine(ops_hook=True) as engine:
            clock.advance(400)
            await ticks(engine, 10)
            [(key, (again, again_alert, resolved_at, _))] = _incidents(url).items()
            assert (key, again, again_alert, resolved_at) == (
                ("power", VINH_THANH), incident, alert_id, None)  # fmt: skip
            assert _told(url, alert_id) == ["opened"]
            # The first alert was told alone, so it goes on being told alone.
            for t in towers:
                await field.reading(t, **HEALTHY)
            await wait_until(lambda: not engine.trackers[("bts_battery_low",
                                                          towers[0].device_id)].raised)  # fmt: skip
            await wait_until(lambda: not engine.trackers[("bts_battery_low",
                                                          towers[1].device_id)].raised)  # fmt: skip
            clock.advance(61)
            await ticks(engine, 5)
            assert _told(url, first) == ["opened", "resolved"]
            assert _told(url, alert_id) == ["opened", "resolved"]


def test_the_rules_file_declares_the_grouping_and_refuses_nonsense() -> None:
    rules = load_incident_rules()
    assert rules.group_by == ("cause", "district") and rules.min_alerts == 2
    assert rules.cause_of("coverage_lost") is not None and rules.cause_of("camera_offline") is None
    doc, where = load_document()
    for bad, message in (
        ({"incidents": {"group_by": ["district"]}}, "group_by"),
        ({"inhibit": [{"name": "x", "source": ["nope"], "target": ["bts_offline"],
                       "equal": "district"}]}, "unknown rule 'nope'"),
        ({"inhibit": [{"name": "x", "source": ["bts_offline"], "target": ["coverage_lost"],
                       "equal": "colour"}]}, "equal"),
        ({"causes": [*doc["causes"], {"name": "again", "en": "a", "vi": "b",
                                      "rules": ["bts_offline"]}]}, "already in cause"),
    ):  # fmt: skip
        try:
            parse_incident_rules({**doc, **bad}, where)
        except RulesError as err:
            assert message in str(err)
        else:
            raise AssertionError(f"{bad} was accepted")


async def _stored_incident(url: str) -> tuple[int, list[int]]:
    """An incident of two village losses, as the engine stores it."""
    now = datetime.now(UTC)
    conn = await aconnect(url)
    try:
        ids = []
        for village in ("V-A", "V-B"):
            alert = NewAlert("coverage_lost", village, "village", "major", f"{village} lost",
                             f"{village} mất sóng", {"kind": "lost"}, VAN_CANH)  # fmt: skip
            alert_id = await open_alert(conn, alert, now)
            assert alert_id is not None
            ids.append(alert_id)
        facts = {"districts": ["Huyện Vân Canh"], "members": 2, "by_rule": {"coverage_lost": 2},
                 "inhibited": 2, "villages_dark": 2, "people_affected": 2200,
                 "worst_villages": [{"village": "V-A", "population": 1500},
                                    {"village": "V-B", "population": 700}]}  # fmt: skip
        incident = NewAlert("incident_power", str(VAN_CANH), "incident", "critical",
                            "Power outage — Huyện Vân Canh: 2 alerts", "Mất điện — Vân Canh",
                            facts, VAN_CANH)  # fmt: skip
        opened = await open_incident(conn, "power", VAN_CANH, incident, 2, now)
        assert opened is not None
        await link(conn, opened[0], dict.fromkeys(ids, True))
        await conn.commit()
    finally:
        await conn.close()
    return opened[1], ids


def test_the_alerts_page_lists_incidents_first_with_their_alerts_below(
    scenario_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_alert, ids = asyncio.run(_stored_incident(scenario_url))
    monkeypatch.setenv("IOC_DATABASE_URL", scenario_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["lang"] = "en"
    with connect(scenario_url, autocommit=True) as conn:
        session = users.login(conn, "viewer", PASSWORDS["viewer"])
    assert session is not None
    at.session_state["session_token"] = session.token
    at.switch_page("../dashboard/pages/alerts.py").run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "Open incidents (1)"  # before the alerts
    [box] = [e for e in at.expander if e.label.startswith(f"critical · #{incident_alert} ")]
    assert "Power outage — Huyện Vân Canh" in box.label
    shown = {m.label: m.value for m in box.metric}
    assert shown["Villages dark"] == "2" and shown["People affected"] == "2,200"
    assert shown["Member alerts"] == "2"
    assert "Worst villages: V-A (1,500), V-B (700)" in [c.value for c in box.caption]
    members_table = box.dataframe[1].value.to_dict("records")
    assert sorted(r["#"] for r in members_table) == sorted(ids)
    assert {r["Symptom (under its cause)"] for r in members_table} == {"yes"}


COAST = (540, 550, 548, 545, 543)  # the typhoon's districts: Quy Nhơn … Hoài Nhơn


def _scenario_directory() -> Directory:
    s = load_scenario()
    devices = {
        d.device_id: DeviceInfo(
            d.device_id, Kind(d.kind).value, d.meta.get("name"), d.meta.get("operator"),
            d.meta["district_code"], d.meta.get("commune_code"), d.meta.get("households_passed"),
            list(d.meta.get("communes_served", [])),
        )
        for d in s.devices() if Kind(d.kind) is not Kind.PROBE
    }  # fmt: skip
    communes = {c.code: CommuneInfo(c.code, c.name, c.district_code) for c in s.communes}
    villages = {v.village_id: VillageInfo(v.village_id, v.name, v.commune_code, v.district_code,
                                          v.population) for v in s.villages}  # fmt: skip
    return Directory(SubjectDirectory(devices, {d.code: d.name for d in s.districts}, communes,
                                      villages))  # fmt: skip


def test_the_typhoons_1200_open_alerts_are_five_incidents() -> None:
    """The open set the shipped typhoon left (issue 16: 585 bts_battery_low, 349 coverage_lost,
    180 coverage_degraded, 84 broadband_offline, 5 district_power_cut), rebuilt on the
    scenario's own devices and villages in the five coastal districts: one power incident per
    district, every alert in one of them, every village under the tower that went dark."""
    rules, directory = load_rules(), _scenario_directory()
    ids = iter(range(1, 100_000))
    trackers: list[Tracker] = []

    def alert(rule: str, subject: str, facts: dict[str, Any], opened: bool = True) -> None:
        t = Tracker(rules.by_name(rule), subject, raised=True, facts=facts)
        t.alert_id = next(ids) if opened else None
        trackers.append(t)

    by_district = {d: [t.device_id for t in scenario_devices(Kind.BTS, district=d)] for d in COAST}
    total = sum(len(v) for v in by_district.values())
    villages = {d: [v for v in load_scenario().villages if v.district_code == d] for d in COAST}
    counts = {"battery": 585, "lost": 349, "degraded": 180}
    for i, d in enumerate(COAST):
        share = {k: round(n * len(by_district[d]) / total) for k, n in counts.items()}
        if i == len(COAST) - 1:  # the rounding's remainder, so the totals are the issue's
            share = {k: n - sum(round(n * len(by_district[e]) / total) for e in COAST[:-1])
                     for k, n in counts.items()}  # fmt: skip
        towers = by_district[d]
        alert("district_power_cut", str(d), {"offline": 20})
        for tower in towers[: share["battery"]]:
            alert("bts_battery_low", tower, {"power_source": "battery", "battery_pct": 20.0})
        dark = towers[share["battery"] :]
        for tower in dark:  # gone dark: held under the power cut, no alert of their own
            alert("bts_offline", tower, {"state": "offline"}, opened=False)
        places = villages[d]
        for n, v in enumerate(places[: share["lost"] + share["degraded"]]):
            kind = "lost" if n < share["lost"] else "degraded"
            rule = "coverage_lost" if kind == "lost" else "coverage_degraded"
            alert(rule, v.village_id, {**directory.village(v.village_id), "kind": kind,
                                       "towers": [dark[n % len(dark)]]})  # fmt: skip
        for olt in scenario_devices(Kind.BROADBAND, district=d):
            alert("broadband_offline", olt.device_id, {"state": "offline"})
    opened = [t for t in trackers if t.alert_id is not None]
    by_rule = Counter(t.rule.name for t in opened)
    assert by_rule == {"bts_battery_low": 585, "coverage_lost": 349, "coverage_degraded": 180,
                       "broadband_offline": 84, "district_power_cut": 5}  # fmt: skip

    found = groups(trackers, directory, load_incident_rules())
    assert sorted(found) == [("power", d) for d in sorted(COAST)]
    assert sum(len(m) for m in found.values()) == len(opened)  # none left out
    members_of = [m for ms in found.values() for m in ms]
    assert all(m.inhibited for m in members_of if m.subject_kind in ("village", "broadband"))
    quy_nhon = summarize(("power", 540), found[("power", 540)], directory)
    assert quy_nhon["districts"] == ["Thành phố Quy Nhơn"]
    assert sum(summarize(k, m, directory)["villages_dark"] for k, m in found.items()) == 349


async def test_the_alert_service_role_keeps_incidents_and_the_dashboards_reads_them(
    database_url: str,
) -> None:
    """Under logins of ioc_alerts and ioc_dashboard (migration 0015's grants): the engine's
    incident writes all pass, the dashboard reads incidents and cannot write them."""
    with connect(database_url) as owner:
        upgrade(owner)
    tag = uuid.uuid4().hex[:8]
    names = {"alerts": f"ioc_alerts_i{tag}", "dashboard": f"ioc_dashboard_i{tag}"}
    with connect(database_url) as owner:
        for service, name in names.items():
            assert service_login(owner, service, name, f"a-real-secret-{tag}") is True
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    as_ = {s: psycopg.conninfo.make_conninfo("", **{**info, "user": n}) for s, n in names.items()}
    try:
        now = datetime.now(UTC)
        async with await aconnect(as_["alerts"]) as engine:
            lost = NewAlert("coverage_lost", "V-1", "village", "major", "lost", "mất", {}, 551)
            member = await open_alert(engine, lost, now)
            assert member is not None
            incident = NewAlert("incident_power", "551", "incident", "major", "x", "y", {}, 551)
            opened = await open_incident(engine, "power", VAN_CANH, incident, 1, now)
            assert opened is not None
            await link(engine, opened[0], {member: True})
            await update(engine, opened[0], {"members": 1}, now, told=1)
            assert await fan_out_members(engine, [member], ["mqtt"], now) == (1, 1)
            assert [i.incident_id for i in await open_incidents(engine)] == [opened[0]]
            await close(engine, opened[0], now)
            await engine.commit()
        with connect(as_["dashboard"]) as dash:
            [row] = list_incidents(dash, open_only=False, scope=NATIONAL)
            assert row.incident_id == opened[0] and row.all_members == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dash.execute("UPDATE incidents SET resolved_at = NULL")
    finally:
        with psycopg.connect(database_url, autocommit=True) as owner:
            for name in names.values():
                ident = psycopg.sql.Identifier(name)
                owner.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident))
                owner.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


def test_an_incident_reaches_the_routes_of_its_members_rules() -> None:
    """A route for critical village losses in Vân Canh hears of a Vân Canh power incident that
    holds such villages, also of its resolution after the book has let it go; not of one in
    another district."""
    doc = {
        "recipients": [{"name": "duty", "channel": "telegram", "address": "-100"}],
        "routes": [{"name": "vc", "severity": "critical", "district": "Vân Canh",
                    "rule": "coverage_lost", "recipients": ["duty"]}],
    }  # fmt: skip
    router = Router(mqtt=True, webhooks=("ops",),
                    routing=parse_routing(doc, "test", {"Vân Canh": VAN_CANH}))  # fmt: skip
    book = IncidentBook(load_incident_rules())
    incident = Target("incident_power", "critical", VAN_CANH)
    to = routed(router, book)
    assert callable(to)
    assert to(incident) == ["mqtt", "webhook:ops"]  # no village in it (yet)
    book.member_rules[("power", VAN_CANH)] = frozenset({"district_power_cut", "coverage_lost"})
    assert to(incident) == ["mqtt", "webhook:ops", "telegram:duty"]
    assert to(Target("incident_power", "critical", 540)) == ["mqtt", "webhook:ops"]
    assert to(Target("camera_tamper", "critical", VAN_CANH)) == ["mqtt", "webhook:ops"]
    assert machine_channels(router) == ["mqtt"]
