"""``coverage_at_risk`` end to end: the battery runway (place_runway, written here as the
coverage service would) → the real engine → alerts in both languages; ended by mains, by a
forecast moving later (after its hysteresis), or by the loss itself, which coverage_lost takes
over, naming the warning. Time is the engine's injected clock; no wall-clock waits."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from devices.kinds import Kind
from processing.alerts.runway import LATER, SERVED
from tests.support.alerting import AlertWorld, scenario_devices, ticks
from tests.support.databases import rows
from tests.support.environment import clean_environ
from tests.support.polling import wait_until

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
LEAD_S = 60 * 60  # rules.toml [defaults] runway_lead_min
KEEP_FIRING_S = 300  # coverage_at_risk's keep_firing_s


def _villages(url: str) -> list[tuple[str, str, str, str, int]]:
    """Two villages, one above critical_population (1,000) and one at or below it."""
    sql = ("SELECT v.village_id, v.name, c.name, d.name, v.population FROM villages v"
           " JOIN communes c ON c.code = v.commune_code"
           " JOIN districts d ON d.code = v.district_code WHERE v.population {} 1000"
           " ORDER BY v.population DESC, v.village_id LIMIT 2")  # fmt: skip
    big, small = rows(url, sql.format(">")), rows(url, sql.format("<="))
    return [big[0], small[0], big[1]]


def _put(url: str, village: str, loses_at: datetime | None, sites: list[str],
         operator: str = "any") -> None:  # fmt: skip
    early = loses_at - timedelta(minutes=10) if loses_at else None
    late = loses_at + timedelta(minutes=12) if loses_at else None
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO place_runway (place_kind, place_id, operator, loses_at, loses_early,"
            " loses_late, sites, population, computed_at)"
            " VALUES ('village', %s, %s, %s, %s, %s, %s, 0, now())"
            " ON CONFLICT (place_kind, place_id, operator) DO UPDATE SET loses_at ="
            " EXCLUDED.loses_at, loses_early = EXCLUDED.loses_early,"
            " loses_late = EXCLUDED.loses_late, sites = EXCLUDED.sites",
            (village, operator, loses_at, early, late, sites),
        )


def _drop(url: str, village: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM place_runway WHERE place_id = %s", (village,))


def _at_risk(url: str, village: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT alert_id, severity, state, summary, summary_vi, details"
                " FROM alerts WHERE rule = 'coverage_at_risk' AND subject = %s"
                " ORDER BY alert_id", village)  # fmt: skip


def _comments(url: str, alert_id: int) -> list[tuple[str, str | None]]:
    return rows(url, "SELECT event, comment FROM alert_transitions WHERE alert_id = %s"
                " ORDER BY seq", alert_id)  # fmt: skip


def _ioc_alerts(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``ioc alerts`` as an operator runs it: nothing special for this rule."""
    return subprocess.run([sys.executable, "-m", "ioc", "alerts", *args],
                          env={**clean_environ(), "IOC_DATABASE_URL": url},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(LOCAL).strftime("%H:%M")


def _towers(n: int) -> list[tuple[str, str]]:
    """Scenario towers (registered by the world) and their names."""
    return [
        (t.device_id, t.meta.get("name") or t.device_id) for t in scenario_devices(Kind.BTS)[:n]
    ]


async def test_warned_within_the_lead_time_in_both_languages_and_ended_by_mains_or_a_later_forecast(
    world: AlertWorld,
) -> None:
    url, clock = world.database_url, world.clock
    (big, name, commune, district, population), small, other = _villages(url)
    (t1, n1), (t2, n2), (t3, _) = _towers(3)
    start = clock.now
    loses_at = start + timedelta(minutes=90)
    _put(url, big, loses_at, [t1, t2])
    _put(url, big, start + timedelta(minutes=70), [t1], operator="viettel")
    _put(url, small[0], start + timedelta(minutes=110), [t3])
    _put(url, other[0], None, [t3])  # a tower with no battery reading: the forecast is unknown
    async with world.listening(), world.engine(runway_every_s=0) as engine:
        await ticks(engine, 5)
        assert rows(url, "SELECT count(*) FROM alerts") == [(0,)]  # 90 min: not yet

        clock.advance(31 * 60)  # 59 min before the loss: inside the lead time
        await wait_until(lambda: len(_at_risk(url, big)) == 1, timeout_s=20)
        [(alert_id, severity, state, summary, summary_vi, details)] = _at_risk(url, big)
        assert (severity, state) == ("critical", "open")  # as coverage_lost: above 1,000 people
        when = _hhmm(loses_at)
        for text in (name, commune, district, n1, n2, when):
            assert text in summary and text in summary_vi, (text, summary, summary_vi)
        assert f"{population:,} people" in summary and "in ~59 min" in summary
        assert f"{population:,}".replace(",", ".") + " người" in summary_vi
        assert "còn ~59 phút" in summary_vi
        assert details["site_ids"] == [t1, t2] and details["minutes_left"] == 59
        assert details["operators_at_risk"] == [f"viettel {_hhmm(start + timedelta(minutes=70))}"]
        assert details["loses_between"] == f"{_hhmm(loses_at - timedelta(minutes=10))}–" + _hhmm(
            loses_at + timedelta(minutes=12)
        )
        await wait_until(lambda: ("coverage_at_risk", "opened") in world.subscriber.events())
        assert _at_risk(url, small[0]) == []  # 79 min away

        clock.advance(21 * 60)  # the small village's loss is 59 min away now, the unknown's never
        await wait_until(lambda: len(_at_risk(url, small[0])) == 1, timeout_s=20)
        assert _at_risk(url, small[0])[0][1:3] == ("major", "open")
        await ticks(engine, 5)
        assert _at_risk(url, other[0]) == []

        # The big village's forecast moves past the lead time: it holds for keep_firing_s.
        _put(url, big, clock.now + timedelta(minutes=75), [t1, t2])

        async def cleared(village: str) -> bool:
            t = engine.trackers.get(("coverage_at_risk", village))
            return t is not None and not t.raised

        await wait_until(partial(cleared, big), timeout_s=20)
        clock.advance(KEEP_FIRING_S - 10)
        await ticks(engine, 5)
        assert _at_risk(url, big)[0][2] == "open"
        clock.advance(11)
        await wait_until(lambda: _at_risk(url, big)[0][2] == "resolved", timeout_s=20)
        assert _comments(url, alert_id)[-1] == ("resolved", LATER)

        # A tower serving the small village is back on mains: its row leaves the runway.
        _drop(url, small[0])
        small_id = _at_risk(url, small[0])[0][0]
        await wait_until(partial(cleared, small[0]), timeout_s=20)
        clock.advance(KEEP_FIRING_S + 1)
        await wait_until(lambda: _at_risk(url, small[0])[0][2] == "resolved", timeout_s=20)
        assert _comments(url, small_id)[-1] == ("resolved", SERVED)
        assert _at_risk(url, other[0]) == []
    listed = _ioc_alerts(url, "list", "--rule", "coverage_at_risk")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout and "coverage_at_risk" in listed.stdout


async def test_the_loss_ends_the_warning_at_once_and_coverage_lost_names_it(
    world: AlertWorld,
) -> None:
    url, clock = world.database_url, world.clock
    village = _villages(url)[0][0]
    [(tower, _)] = _towers(1)
    _put(url, village, clock.now + timedelta(minutes=20), [tower])
    async with world.listening(), world.engine(runway_every_s=0) as engine:
        await wait_until(lambda: len(_at_risk(url, village)) == 1, timeout_s=20)
        warned = _at_risk(url, village)[0][0]

        # The tower goes dark: the coverage service drops the row and writes the loss.
        with psycopg.connect(url) as conn:
            conn.execute("DELETE FROM place_runway WHERE place_id = %s", (village,))
            conn.execute(
                "INSERT INTO coverage_events (ts, village_id, kind, operators_lost,"
                " operators_now, towers, population) VALUES (now(), %s, 'lost', %s, '{}', %s,"
                " (SELECT population FROM villages WHERE village_id = %s))",
                (village, ["viettel"], [tower], village),
            )

        def lost() -> list[tuple[Any, ...]]:
            return rows(url, "SELECT alert_id, state, details FROM alerts"
                        " WHERE rule = 'coverage_lost' AND subject = %s", village)  # fmt: skip

        await wait_until(lambda: len(lost()) == 1, timeout_s=20)
        [(_, state, details)] = lost()
        assert state == "open" and details["at_risk_alert"] == warned
        # No clock advance: the warning ends with the loss, not after its hysteresis.
        await wait_until(lambda: _at_risk(url, village)[0][2] == "resolved", timeout_s=20)
        event, comment = _comments(url, warned)[-1]
        assert event == "resolved" and comment is not None and "coverage_lost" in comment
        # While dark, a runway row that lingers does not warn again.
        _put(url, village, clock.now + timedelta(minutes=5), [tower])
        await ticks(engine, 5)
        assert len(_at_risk(url, village)) == 1
