"""What the ``runway`` source says of a village: its battery runway (place_runway, 0020) as the
facts a rule such as ``coverage_at_risk`` decides on and its summary names."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from devices.clock import LOCAL_ZONE
from processing.alerts.facts import Directory
from store.alert_engine import VillageRunway

# Summaries give the time people read on their clocks (LOCAL_ZONE).
ALL_SIGNAL = "any"  # place_runway's operator for "every operator at once"

# The comments a runway alert resolves with (an engine transition's comment, as "cleared").
SERVED = "mains power back: the village keeps its signal"
LOST = "the village lost all mobile signal: {rules} took over"
LATER = "the forecast loss moved beyond the lead time"


def by_village(rows: Iterable[VillageRunway]) -> dict[str, dict[str, VillageRunway]]:
    """The rows per village, per operator ('any' among them when it may lose all signal)."""
    out: dict[str, dict[str, VillageRunway]] = defaultdict(dict)
    for row in rows:
        out[row.village_id][row.operator] = row
    return dict(out)


def local_time(moment: datetime | None) -> str | None:
    return moment.astimezone(LOCAL_ZONE).strftime("%H:%M") if moment else None


def runway_facts(
    rows: dict[str, VillageRunway], directory: Directory, now: datetime
) -> dict[str, Any]:
    """A village's runway facts at ``now`` from its rows (none: a tower serving it is back on
    mains). An unknown forecast leaves ``minutes_left`` out: a condition on it says nothing."""
    everything = rows.get(ALL_SIGNAL)
    if everything is None:
        return {"runway": "served", "minutes_left": None}
    facts: dict[str, Any] = {
        "runway": "at_risk",
        "minutes_left": None,
        "loses_at": everything.loses_at,
        "loses_at_local": local_time(everything.loses_at),
        "loses_between": _band(everything),
        "site_ids": list(everything.sites),
        "sites": [directory.device(s)["name"] for s in everything.sites],
        "operators_at_risk": [
            f"{op} {local_time(r.loses_at) or '?'}"
            for op, r in sorted(rows.items())
            if op != ALL_SIGNAL
        ],
    }
    if everything.loses_at is not None:
        # Never "in ~-3 min": a forecast overdue while the village is still served reads 0.
        facts["minutes_left"] = max(0, round((everything.loses_at - now).total_seconds() / 60))
    return facts


def _band(row: VillageRunway) -> str | None:
    early, late = local_time(row.loses_early), local_time(row.loses_late)
    return f"{early}–{late}" if early and late else None
