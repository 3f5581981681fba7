"""District grouping: many towers of one district going offline within a short window is one
grouped alert (probable power cut), not one alert per tower.

Inhibition, chosen once: while a district's group is raised or open, the member rule's alerts
of that district are *held* (not opened alone; ones already open stay open). Village coverage
alerts are never held: the villages that lost signal are what operators act on, and the group
alert says why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from processing.alerts.lifecycle import Tracker
from processing.alerts.rules import Rule

MAX_LISTED = 200  # members named in a group alert's details


@dataclass(slots=True)
class DistrictCount:
    offline: list[str] = field(default_factory=list)
    recent: int = 0


def group_facts(
    rule: Rule,
    members: Iterable[Tracker],
    district_of: Callable[[Tracker], int | None],
    total_in: Callable[[int], int],
    now: datetime,
) -> dict[int, dict[str, Any]]:
    """Per district with any member raised: the facts the group rule's conditions read."""
    window = timedelta(seconds=rule.window_s)
    counts: dict[int, DistrictCount] = defaultdict(DistrictCount)
    for t in members:
        district = district_of(t)
        if district is None or not t.raised:
            continue
        c = counts[district]
        c.offline.append(t.subject)
        if t.changed_at is not None and now - t.changed_at <= window:
            c.recent += 1
    out: dict[int, dict[str, Any]] = {}
    for district, c in counts.items():
        total = max(total_in(district), len(c.offline))
        out[district] = {
            "offline": len(c.offline),
            "recent": c.recent,
            "total": total,
            "offline_share": len(c.offline) / total,
            "recent_share": c.recent / total,
            "window_s": round(rule.window_s),
            "members": sorted(c.offline)[:MAX_LISTED],
        }
    return out


def zero_facts(rule: Rule, total: int) -> dict[str, Any]:
    """A district whose members are all back: what clears its group."""
    return {"offline": 0, "recent": 0, "total": total, "offline_share": 0.0,
            "recent_share": 0.0, "window_s": round(rule.window_s), "members": []}  # fmt: skip
