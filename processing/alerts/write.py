"""The engine's writes: one tick's decision applied inside the transaction that took its inputs.

A crash before the commit loses the writes and the consumed inputs together, so the tick is
replayed, never half-applied. The database's answers (the id of an opened alert, a transition
refused because an operator resolved the alert meanwhile) are recorded on the trackers.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import psycopg

from processing.alerts.decide import Write
from processing.alerts.incidents import IncidentTick, machine_channels, routed
from processing.alerts.lifecycle import Act
from processing.alerts.routing import Router
from store import alert_engine as q
from store.alert_outbox import Escalation, Routes, escalate, fan_out
from store.alerts import SEVERITIES
from store.incidents import fan_out_members


async def write(conn: psycopg.AsyncConnection, writes: list[Write], coverage_cursor: int | None,
                channels: Routes, now: datetime,
                incidents: IncidentTick | None = None) -> tuple[int, int]:  # fmt: skip
    """Apply the writes, move the coverage cursor, end due silences, bring the incidents up to
    date, queue the deliveries and the escalations due; returns (transitions written, outbox
    rows queued)."""
    if coverage_cursor is not None:
        await q.set_cursor(conn, q.COVERAGE_CURSOR, coverage_cursor)
    written = 0
    for w in writes:
        written += await _apply(conn, w, now)
    written += await q.unsilence_due(conn, now)
    queued, grouped, routes = 0, frozenset[str](), channels
    if incidents is not None:
        i = incidents
        written += await i.book.tick(conn, i.trackers, i.directory, now, i.unresolved)
        # Member alerts reach the MQTT topic only; their incident is what people hear of.
        grouped = i.book.rules.grouped
        queued += (await fan_out_members(conn, sorted(i.book.quiet),
                                         machine_channels(channels), now))[1]  # fmt: skip
        routes = routed(channels, i.book)
    queued += await fan_out(conn, routes, now)
    if isinstance(channels, Router):
        # Here, in the engine's tick and transaction: one engine per database holds the lock,
        # and the record of an escalation commits with the rows that send it.
        for e in escalations(channels, grouped):
            queued += (await escalate(conn, e, now))[1]
    return written, queued


def escalations(router: Router, grouped: frozenset[str] = frozenset()) -> list[Escalation]:
    """The escalating routes, as the outbox's escalation query takes them; alerts of the
    ``grouped`` rules are left out (their incident escalates)."""
    out = []
    for route in router.routing.escalations:
        assert route.escalate_after_s is not None
        rank = SEVERITIES.index(route.severity.value)
        out.append(Escalation(
            route.name, timedelta(seconds=route.escalate_after_s), list(SEVERITIES[: rank + 1]),
            sorted(route.districts) if route.districts is not None else None,
            _except(route.rule_pattern, grouped), router.routing.channels_of(route),
        ))  # fmt: skip
    return out


def _except(pattern: str | None, rules: frozenset[str]) -> str | None:
    """``pattern`` (an anchored regular expression over rule names) less ``rules``: a negative
    lookahead, which PostgreSQL's advanced regular expressions support."""
    if not rules:
        return pattern
    names = "|".join(re.escape(r) for r in sorted(rules))
    return f"^(?!(?:{names})$)" + (pattern[1:] if pattern else ".*$")


async def _apply(conn: psycopg.AsyncConnection, w: Write, now: datetime) -> int:
    t, rule = w.tracker, w.tracker.rule
    if w.act is Act.OPEN:
        assert w.severity is not None
        alert = q.NewAlert(
            rule.name, t.subject, rule.subject, w.severity.value, w.summary, w.summary_vi,
            w.details, w.district_code, t.flapping, w.comment,
        )  # fmt: skip
        alert_id = await q.open_alert(conn, alert, now)
        if alert_id is None:  # one is already unresolved (opened before a restart)
            found = [a for a in await q.unresolved_alerts(conn)
                     if (a.rule, a.subject) == t.key]  # fmt: skip
            t.alert_id = found[0].alert_id if found else None
            return 0
        t.alert_id = alert_id
        t.sent(w.summary, now)
        return 1
    if t.alert_id is None:
        return 0
    if w.act is Act.RESOLVE:
        done = await q.engine_transition(conn, "resolved", t.alert_id, now, comment=w.comment)
        t.alert_id = None
        return int(done)
    event = "flapping" if w.act is Act.FLAPPING else "updated"
    done = await q.engine_transition(
        conn, event, t.alert_id, now, comment=w.comment, summary=w.summary,
        summary_vi=w.summary_vi, details=w.details, flapping=t.flapping,
    )  # fmt: skip
    if not done:
        t.forget()
    elif event == "updated":
        t.sent(w.summary, now)
    return int(done)
