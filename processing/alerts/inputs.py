"""What one engine tick reads, as plain values: the boundary between gather (I/O) and decide.

The records themselves (status changes, coverage events, readings, unresolved alerts) are the
store's typed rows; nothing here holds a connection or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.kinds import Kind
from store.alert_engine import (
    CoverageEvent,
    LatestReading,
    StatusChange,
    UnresolvedAlert,
    VillageRunway,
)


@dataclass(frozen=True, slots=True)
class Intake:
    """One tick's inputs, read inside the transaction that will hold what they cause."""

    status_changes: list[StatusChange] = field(default_factory=list)
    coverage_events: list[CoverageEvent] = field(default_factory=list)  # after the cursor
    readings: dict[Kind, list[LatestReading]] = field(default_factory=dict)  # in rule order
    # Ids of the alerts not resolved now, when re-read this tick (None: not re-read); an alert
    # missing from it was resolved by an operator.
    unresolved: frozenset[int] | None = None
    # The villages' battery runway when read this tick (every ``runway_every_s``); None: not.
    runway: list[VillageRunway] | None = None

    @property
    def coverage_cursor(self) -> int | None:
        """Where the coverage cursor moves once this tick commits."""
        return self.coverage_events[-1].id if self.coverage_events else None


@dataclass(frozen=True, slots=True)
class Startup:
    """What an engine taking over adopts: the open alerts and the devices offline now."""

    unresolved: list[UnresolvedAlert]
    offline: list[StatusChange]
