"""One (rule, subject)'s life, as a pure state machine driven by observations and the clock.

``observe`` records what the inputs say (the rule raised, cleared, or nothing new); ``step``
decides, at ``now``, what should happen to the alert: open it once ``when`` has held for
``for_s``, resolve it once ``clear`` has held for ``keep_firing_s`` (hysteresis), report
flapping once when the level changes too often, and hold still while it flaps. The engine turns
the returned actions into database transitions; nothing here touches I/O or reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from processing.alerts.rules import Rule, Severity, Source


class Act(StrEnum):
    OPEN = "open"
    UPDATE = "update"
    FLAPPING = "flapping"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Action:
    act: Act
    tracker: Tracker
    comment: str | None = None
    severity: Severity | None = None  # OPEN only


@dataclass(slots=True, eq=False)
class Tracker:
    rule: Rule
    subject: str
    raised: bool = False
    changed_at: datetime | None = None
    alert_id: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    changes: deque[datetime] = field(default_factory=deque)
    flapping: bool = False
    sent_summary: str | None = None  # the summary last delivered (open or update)
    sent_at: datetime | None = None
    closed_by_operator: bool = False  # resolved by hand while raised: re-arm on clear
    held: bool = False  # folded into a group alert: not opened alone
    # Set by the decider when it knows why the alert clears: the comment it resolves with, and
    # whether it resolves at once (what it warned of has happened: no hysteresis to wait out).
    clear_comment: str | None = None
    clear_at_once: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule.name, self.subject)

    def observe(self, raised: bool | None, facts: dict[str, Any], now: datetime) -> None:
        """Record an observation; ``raised`` None means it neither raises nor clears."""
        self.facts.update(facts)
        if raised is None or raised == self.raised:
            if self.changed_at is None and raised is not None:
                self.changed_at = now
            return
        self.raised = raised
        self.changed_at = now
        self.changes.append(now)
        if raised:
            self.clear_comment, self.clear_at_once = None, False
        else:
            self.closed_by_operator = False

    def step(self, now: datetime, summary: str) -> list[Action]:
        rule = self.rule
        window = timedelta(seconds=rule.flapping.window_s)
        while self.changes and now - self.changes[0] > window:
            self.changes.popleft()
        since = now - (self.changed_at or now)
        if self.flapping:
            if since < timedelta(seconds=rule.flapping.quiet_s):
                return []
            self.flapping = False
            if self.alert_id is None:
                return []
            if self.raised:
                return [Action(Act.UPDATE, self, "no longer flapping")]
            return [Action(Act.RESOLVE, self, "stable after flapping")]
        if len(self.changes) >= rule.flapping.changes:
            self.flapping = True
            comment = f"{len(self.changes)} changes within {rule.flapping.window_s:.0f} s"
            if self.alert_id is None:
                return [
                    Action(Act.OPEN, self, "flapping", rule.severity_for(self.facts)),
                    Action(Act.FLAPPING, self, comment),
                ]
            return [Action(Act.FLAPPING, self, comment)]
        if self.alert_id is None:
            ripe = since >= timedelta(seconds=rule.for_s)
            if self.raised and ripe and not self.closed_by_operator and not self.held:
                return [Action(Act.OPEN, self, None, rule.severity_for(self.facts))]
            return []
        if not self.raised:
            if self.clear_at_once or since >= timedelta(seconds=rule.keep_firing_s):
                return [Action(Act.RESOLVE, self, self.clear_comment or "cleared")]
            return []
        if self._worth_an_update(now, summary):
            return [Action(Act.UPDATE, self)]
        return []

    def _worth_an_update(self, now: datetime, summary: str) -> bool:
        # Event-fed alerts change what they say (towers, operators, members); levels do not.
        updating = (Source.COVERAGE, Source.GROUP, Source.RUNWAY)  # runway: the forecast moves
        if self.rule.source not in updating or summary == self.sent_summary:
            return False
        return self.sent_at is None or now - self.sent_at >= timedelta(
            seconds=self.rule.update_min_s
        )

    def sent(self, summary: str, now: datetime) -> None:
        self.sent_summary, self.sent_at = summary, now

    def forget(self) -> None:
        """The alert was resolved by an operator: wait for a clear before another opens."""
        self.alert_id = None
        self.flapping = False
        self.closed_by_operator = self.raised

    @property
    def idle(self) -> bool:
        """Nothing to remember: no alert, not raised, not flapping, no recent changes."""
        return (
            self.alert_id is None
            and not self.raised
            and not self.flapping
            and not self.changes
            and not self.closed_by_operator
        )
