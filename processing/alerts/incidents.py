"""Incidents, not storms: open alerts grouped by cause and district, as Alertmanager groups them,
but stored (``store.incidents``) and visible.

The grouping is declared in the rules file ([incidents], [[causes]], [[inhibit]]), parsed once
in ``incident_rules``. Every tick, after the alert transitions are written, :func:`groups` puts
each open alert of a grouped rule in its group: its own (cause, district), or, when an inhibit
rule holds (a village lost under a tower that went down, a tower under its district's power
cut), the group of the alert that caused it, marked inhibited. :class:`IncidentBook` then opens
an incident once a group has gathered for ``group_wait_s``, tells it again when its number of
member alerts changed and ``group_interval_s`` has passed since the last message, and resolves
it when its last member resolves.

An incident is told through its own alert row (rule ``incident_<cause>``, subject the district
code), so its messages use the outbox's routing, fairness, retries and dead letters as any
alert's. Member alerts reach only the MQTT topic (the machine-readable state of every alert):
no person gets one message per village.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from processing.alerts.facts import Directory, number
from processing.alerts.incident_rules import Cause, IncidentRules
from processing.alerts.lifecycle import Tracker
from processing.alerts.routing import Router
from store import alert_engine as q
from store import incidents as store
from store.alert_outbox import Routes, Target
from store.alerts import SEVERITIES

WORST_LISTED = 5  # villages named in a message, most people first

Key = tuple[str, int | None]  # (cause, district code; None when not grouped by district)


# ---- grouping (pure) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    alert_id: int
    rule: str
    subject: str
    subject_kind: str
    district_code: int | None
    severity: str
    inhibited: bool
    facts: dict[str, Any]


def groups(trackers: Iterable[Tracker], directory: Directory,
           rules: IncidentRules) -> dict[Key, list[Member]]:  # fmt: skip
    """Each open alert of a grouped rule in its group; a symptom in its cause's group."""
    trackers = list(trackers)
    by_district: dict[tuple[str, int], Tracker] = {}
    by_subject: dict[tuple[str, str], Tracker] = {}
    for t in trackers:
        if t.raised:
            district = directory.district_of(t.rule.subject, t.subject)
            if district is not None:
                by_district.setdefault((t.rule.name, district), t)
            by_subject[(t.rule.name, t.subject)] = t

    def source_of(t: Tracker) -> Tracker | None:
        for inhibit in rules.inhibits:
            if t.rule.name not in inhibit.target:
                continue
            for source in sorted(inhibit.source):
                if inhibit.equal == "district":
                    district = directory.district_of(t.rule.subject, t.subject)
                    found = by_district.get((source, district)) if district is not None else None
                    if found is not None and found is not t:
                        return found
                else:
                    for tower in t.facts.get("towers") or ():
                        found = by_subject.get((source, str(tower)))
                        if found is not None:
                            return found
        return None

    def key_of(t: Tracker, depth: int = 0) -> tuple[Key, bool] | None:
        source = source_of(t) if depth < 4 else None  # a chain of causes is short
        if source is not None:
            found = key_of(source, depth + 1)
            if found is not None:
                return found[0], True
        cause = rules.cause_of(t.rule.name)
        if cause is None:
            return None
        district = (directory.district_of(t.rule.subject, t.subject)
                    if "district" in rules.group_by else None)  # fmt: skip
        return (cause.name, district), False

    out: dict[Key, list[Member]] = {}
    for t in trackers:
        if t.alert_id is None or rules.cause_of(t.rule.name) is None:
            continue
        found = key_of(t)
        if found is None:
            continue
        key, inhibited = found
        out.setdefault(key, []).append(Member(
            t.alert_id, t.rule.name, t.subject, t.rule.subject,
            directory.district_of(t.rule.subject, t.subject),
            t.rule.severity_for(t.facts).value, inhibited, t.facts,
        ))  # fmt: skip
    return out


def summarize(key: Key, members: list[Member], directory: Directory) -> dict[str, Any]:
    """What the incident's messages and the dashboard say of it."""
    names = directory.data.districts
    codes = {m.district_code for m in members if m.district_code is not None}
    if key[1] is not None:
        codes.add(key[1])
    dark = sorted(
        ((str(m.facts.get("village", m.subject)), int(m.facts.get("population") or 0))
         for m in members if m.subject_kind == "village" and m.facts.get("kind") == "lost"),
        key=lambda v: (-v[1], v[0]),
    )  # fmt: skip
    return {
        "districts": sorted(names.get(c, str(c)) for c in codes),
        "members": len(members),
        "by_rule": dict(sorted(Counter(m.rule for m in members).items())),
        "inhibited": sum(m.inhibited for m in members),
        "villages_dark": len(dark),
        "people_affected": sum(p for _, p in dark),
        "worst_villages": [{"village": v, "population": p} for v, p in dark[:WORST_LISTED]],
    }


def render(cause: Cause, facts: dict[str, Any], language: str) -> str:
    """One incident's summary line in ``language`` (vi or en)."""
    vi = language == "vi"

    def n(value: int) -> str:
        return number(value, language)

    districts = ", ".join(facts["districts"]) or "?"
    rules = ", ".join(f"{rule} {n(count)}" for rule, count in facts["by_rule"].items())
    worst = ", ".join(f"{w['village']} ({n(w['population'])})" for w in facts["worst_villages"])
    if vi:
        text = f"{cause.vi} — {districts}: {n(facts['members'])} cảnh báo ({rules})"
        if facts["villages_dark"]:
            text += (f"; {n(facts['villages_dark'])} thôn mất sóng, {n(facts['people_affected'])}"
                     f" người bị ảnh hưởng; nặng nhất: {worst}")  # fmt: skip
        return text
    text = f"{cause.en} — {districts}: {n(facts['members'])} alerts ({rules})"
    if facts["villages_dark"]:
        text += (f"; {n(facts['villages_dark'])} villages without mobile signal,"
                 f" {n(facts['people_affected'])} people affected; worst: {worst}")  # fmt: skip
    return text


def worst_severity(members: list[Member]) -> str:
    return min((m.severity for m in members), key=SEVERITIES.index)


# ---- the incidents' lives ---------------------------------------------------------------------


@dataclass(slots=True)
class Incident:
    key: Key
    first_seen: datetime
    incident_id: int | None = None  # None: gathering members (group_wait), not yet told
    alert_id: int | None = None
    told_size: int = 0
    told_at: datetime | None = None
    linked: dict[int, bool] = field(default_factory=dict)  # alert id → inhibited, as written
    facts: dict[str, Any] = field(default_factory=dict)  # as written


@dataclass(slots=True)
class IncidentBook:
    """The engine's memory of the incidents, rebuilt from the database by :meth:`load`."""

    rules: IncidentRules
    incidents: dict[Key, Incident] = field(default_factory=dict)
    # Alerts told through an incident, not alone: those of a group of min_alerts or more (or of
    # an incident), this tick or the last (an alert resolved this tick has left its group).
    quiet: set[int] = field(default_factory=set)
    _grouped: set[int] = field(default_factory=set)
    # The rules of each incident's members when last written (kept after it resolves, so its
    # resolution reaches whoever heard of its opening); at most one entry per group key.
    member_rules: dict[Key, frozenset[str]] = field(default_factory=dict)

    async def load(self, conn: psycopg.AsyncConnection) -> None:
        self.incidents.clear()
        self.quiet.clear()
        self._grouped.clear()
        for row in await store.open_incidents(conn):
            self.incidents[(row.cause, row.district_code)] = Incident(
                (row.cause, row.district_code), row.opened_at, row.incident_id, row.alert_id,
                row.told_size, row.told_at, {int(k): v for k, v in row.linked.items()},
                dict(row.facts),
            )  # fmt: skip
            self.member_rules[(row.cause, row.district_code)] = frozenset(
                row.facts.get("by_rule") or ()
            )

    async def tick(self, conn: psycopg.AsyncConnection, trackers: Iterable[Tracker],
                   directory: Directory, now: datetime,
                   unresolved: frozenset[int] | None) -> int:  # fmt: skip
        """Open, tell, resolve and link (in the tick's transaction); returns the incident
        transitions written."""
        written = 0
        found = groups(trackers, directory, self.rules)
        grouped = {m.alert_id for key, members in found.items()
                   if key in self.incidents or len(members) >= self.rules.min_alerts
                   for m in members}  # fmt: skip
        self.quiet = grouped | self._grouped
        self._grouped = grouped
        for incident in self.incidents.values():
            self.quiet |= incident.linked.keys()
        for key, incident in list(self.incidents.items()):
            if unresolved is None or incident.alert_id is None:
                continue
            if incident.alert_id not in unresolved:
                # An operator resolved the incident's alert: this incident is over; what is
                # still open gathers into a new one.
                assert incident.incident_id is not None
                await store.close(conn, incident.incident_id, now)
                del self.incidents[key]
        for key, members in found.items():
            if len(members) >= self.rules.min_alerts:
                self.incidents.setdefault(key, Incident(key, now))
        for key, incident in list(self.incidents.items()):
            members = found.get(key, [])
            cause = next((c for c in self.rules.causes if c.name == key[0]), None)
            if cause is None:  # its cause is no longer declared
                members = []
            written += await self._step(conn, incident, cause, members, directory, now)
        return written

    async def _step(self, conn: psycopg.AsyncConnection, incident: Incident,
                    cause: Cause | None, members: list[Member], directory: Directory,
                    now: datetime) -> int:  # fmt: skip
        key = incident.key
        if incident.incident_id is None:
            wait = timedelta(seconds=self.rules.group_wait_s)
            if len(members) < self.rules.min_alerts or cause is None:
                del self.incidents[key]  # gathering starts again from min_alerts
                return 0
            if now - incident.first_seen < wait:
                return 0
            facts = summarize(key, members, directory)
            alert = q.NewAlert(
                cause.rule, "all" if key[1] is None else str(key[1]), "incident",
                worst_severity(members), render(cause, facts, "en"), render(cause, facts, "vi"),
                facts, key[1],
            )  # fmt: skip
            opened = await store.open_incident(conn, key[0], key[1], alert, len(members), now)
            if opened is None:  # an alert of that rule and subject is open: wait for it
                return 0
            incident.incident_id, incident.alert_id = opened
            incident.told_size, incident.told_at, incident.facts = len(members), now, facts
            self.member_rules[key] = frozenset(facts["by_rule"])
            await self._link(conn, incident, members)
            return 1
        assert incident.alert_id is not None
        if not members:
            done = await q.engine_transition(conn, "resolved", incident.alert_id, now,
                                             comment="every member alert resolved")  # fmt: skip
            await store.close(conn, incident.incident_id, now)
            del self.incidents[key]
            return int(done)
        assert cause is not None
        facts = summarize(key, members, directory)
        interval = timedelta(seconds=self.rules.group_interval_s)
        written = 0
        told_at = incident.told_at or incident.first_seen
        if len(members) != incident.told_size and now - told_at >= interval:
            # Its severity follows its worst member, so routes by severity hear of it grown.
            await store.set_severity(conn, incident.alert_id, worst_severity(members))
            done = await q.engine_transition(
                conn, "updated", incident.alert_id, now,
                comment=f"{incident.told_size} → {len(members)} alerts",
                summary=render(cause, facts, "en"), summary_vi=render(cause, facts, "vi"),
                details=facts,
            )  # fmt: skip
            if not done:  # resolved by an operator meanwhile
                await store.close(conn, incident.incident_id, now)
                del self.incidents[key]
                return 0
            incident.told_size, incident.told_at = len(members), now
            await store.update(conn, incident.incident_id, facts, now, told=len(members))
            written = 1
        elif facts != incident.facts:
            await store.update(conn, incident.incident_id, facts, now)
        incident.facts = facts
        self.member_rules[key] = frozenset(facts["by_rule"])
        await self._link(conn, incident, members)
        return written

    async def _link(self, conn: psycopg.AsyncConnection, incident: Incident,
                    members: list[Member]) -> None:  # fmt: skip
        assert incident.incident_id is not None
        new = {m.alert_id: m.inhibited for m in members
               if incident.linked.get(m.alert_id) != m.inhibited}  # fmt: skip
        if new:
            await store.link(conn, incident.incident_id, new)
            incident.linked.update(new)


# ---- who hears of it --------------------------------------------------------------------------


def routed(channels: Routes, book: IncidentBook) -> Routes:
    """The fan-out's routing with incidents: an incident goes wherever an alert of its cause's
    rules or of its members' rules would (a route for critical coverage_lost in Vân Canh hears
    of a Vân Canh incident holding such villages, whatever its cause), and to routes naming
    incident_* rules themselves."""
    if not callable(channels):
        return channels
    route: Callable[[Target], Sequence[str]] = channels

    def to(target: Target) -> list[str]:
        out = list(route(target))
        cause = book.rules.by_rule(target.rule)
        if cause is not None:
            key = (cause.name, target.district_code)
            for rule in sorted(set(cause.rules) | book.member_rules.get(key, frozenset())):
                out += route(Target(rule, target.severity, target.district_code,
                                    target.escalated))  # fmt: skip
        return list(dict.fromkeys(out))

    return to


def machine_channels(channels: Routes) -> list[str]:
    """Where a member alert's own transitions go: the MQTT topic only, when it is a channel."""
    if isinstance(channels, Router):
        return ["mqtt"] if channels.mqtt else []
    if callable(channels):
        return []
    return [c for c in channels if c == "mqtt"]


@dataclass(frozen=True, slots=True)
class IncidentTick:
    """What the write step needs to bring the incidents up to date in a tick."""

    book: IncidentBook
    trackers: list[Tracker]
    directory: Directory
    unresolved: frozenset[int] | None  # the open alerts, when re-read this tick
