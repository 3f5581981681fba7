"""The availability report's period and its tables (issue 18 part 4); the SQL that measures the
outages is store/availability.py.

Dates without an offset are read in the province's time, as its people read clocks; the period
is cut to the history kept (before the coverage service's first row nothing is known) and to
now. Structural dead spots are listed apart and left out of the totals (store/availability.py
states the rules)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from devices.clock import LOCAL_ZONE, parse_local
from store.availability import Availability, GroupLoss

DEAD_SPOT_RULE = (
    "Villages that never had signal up to the period's end are structural dead spots: listed"
    " apart, not counted as outages nor in the population the availability is reckoned on."
)
SITE_RULE = (
    "Each outage's people x minutes are split evenly between the towers named by the event"
    " that began it."
)


def parse_moment(text: str, option: str) -> datetime:
    """A date or date and time; without an offset, local time (devices/clock.py)."""
    try:
        return parse_local(text)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0


class PeriodError(ValueError):
    """A period the history cannot tell about; ``reason`` names it for a translated message
    ('order', 'no_history', 'before_history', 'future')."""

    def __init__(self, reason: str, message: str, moment: datetime | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.moment = moment


def kept_period(
    start: datetime, end: datetime, kept: tuple[datetime, datetime] | None, now: datetime
) -> Period:
    """The part of [start, end) the history can tell about, or a PeriodError saying why none."""
    if end <= start:
        raise PeriodError(
            "order", f"--to ({_local(end)}) must come after --from ({_local(start)})", start
        )
    if kept is None:
        raise PeriodError(
            "no_history", "no coverage history yet: the coverage service writes it (ioc up does)"
        )
    first, _ = kept
    if end <= first:
        raise PeriodError(
            "before_history",
            f"the period ends before the coverage history kept begins ({_local(first)})",
            first,
        )
    if start >= now:
        raise PeriodError("future", f"the period starts in the future ({_local(start)})", start)
    return Period(max(start, first), min(end, now))


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M")


def default_period(now: datetime, days: int = 7) -> tuple[datetime, datetime]:
    """The last ``days`` whole days and today so far, in the province's time."""
    today = now.astimezone(LOCAL_ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1), today + timedelta(days=1)


def availability_share(group: GroupLoss, period: Period) -> float | None:
    """1 - people x minutes lost / people x minutes in the period; None with nobody counted."""
    possible = group.population * period.minutes
    return 1.0 - group.people_minutes / possible if possible > 0 else None


def _percent(share: float | None) -> float:
    """Percent; NaN (an empty cell, "—" on the page) where nobody was counted."""
    return round(share * 100, 3) if share is not None else math.nan


# Column keys of the tables; ``label`` turns them into headers (English in the CLI, the
# session's language on the dashboard).
GROUP_COLUMNS = (
    "group",
    "villages",
    "population",
    "villages_hit",
    "outages",
    "minutes",
    "people_minutes",
    "availability_pct",
    "dead_spots",
    "dead_spot_population",
)
VILLAGE_COLUMNS = (
    "village_id",
    "village",
    "commune",
    "district",
    "population",
    "outages",
    "minutes",
    "people_minutes",
)
SITE_COLUMNS = ("device_id", "operator", "district", "outages", "villages", "people_minutes")
DEAD_SPOT_COLUMNS = ("village_id", "village", "commune", "district", "population")


def tables(report: Availability, period: Period) -> dict[str, pd.DataFrame]:
    """The report's four tables, keyed groups, villages, sites, dead_spots; headers are keys."""
    groups = pd.DataFrame(
        [
            (
                g.name or g.key,
                g.villages,
                g.population,
                g.villages_hit,
                g.outages,
                round(g.minutes, 1),
                round(g.people_minutes),
                _percent(availability_share(g, period)),
                g.dead_spots,
                g.dead_spot_population,
            )
            for g in report.groups
        ],
        columns=list(GROUP_COLUMNS),
    )
    villages = pd.DataFrame(
        [
            (
                v.village_id,
                v.name,
                v.commune,
                v.district,
                v.population,
                v.outages,
                round(v.minutes, 1),
                round(v.people_minutes),
            )
            for v in report.villages
        ],
        columns=list(VILLAGE_COLUMNS),
    )
    sites = pd.DataFrame(
        [
            (s.device_id, s.operator, s.district, s.outages, s.villages, round(s.people_minutes))
            for s in report.sites
        ],
        columns=list(SITE_COLUMNS),
    )
    dead = pd.DataFrame(
        [(d.village_id, d.name, d.commune, d.district, d.population) for d in report.dead_spots],
        columns=list(DEAD_SPOT_COLUMNS),
    )
    return {"groups": groups, "villages": villages, "sites": sites, "dead_spots": dead}


def labelled(frame: pd.DataFrame, label: Callable[[str], str]) -> pd.DataFrame:
    return frame.rename(columns={c: label(c) for c in frame.columns})


def report_lines(report: Availability, period: Period) -> list[str]:
    """The CLI's text: the period, the totals per group, the worst villages and sites."""
    out = [
        f"Availability {_local(period.start)} → {_local(period.end)} ({LOCAL_ZONE.key}),"
        f" by {report.by}",
    ]
    head = (
        f"{report.by.capitalize():<28}{'Villages':>9}{'Hit':>6}{'Outages':>9}"
        f"{'Minutes':>11}{'People x min':>15}{'Available':>11}{'Dead spots':>12}"
    )
    out += [head, "-" * len(head)]
    for g in report.groups:
        share = availability_share(g, period)
        shown = f"{share:.3%}" if share is not None else "—"
        out.append(
            f"{(g.name or g.key)[:27]:<28}{g.villages:>9}{g.villages_hit:>6}{g.outages:>9}"
            f"{g.minutes:>11,.0f}{g.people_minutes:>15,.0f}{shown:>11}{g.dead_spots:>12}"
        )
    if report.by != "operator":
        lost = sum(g.people_minutes for g in report.groups)
        out.append(f"Province: {lost:,.0f} people x minutes without any mobile signal")
    out += ["", f"Worst villages ({len(report.villages)}):"]
    for v in report.villages:
        out.append(
            f"  {v.name} ({v.commune}, {v.district}), {v.population:,} people:"
            f" {v.minutes:,.0f} min in {v.outages} outage(s), {v.people_minutes:,.0f} people x min"
        )
    out += ["", f"Sites that caused most of it ({len(report.sites)}):"]
    for s in report.sites:
        out.append(
            f"  {s.device_id} ({s.operator}, {s.district}): {s.people_minutes:,.0f} people x min,"
            f" {s.outages} outage(s) in {s.villages} village(s)"
        )
    population = sum(d.population for d in report.dead_spots)
    out += [
        "",
        f"Dead spots (never had signal up to the period's end): {len(report.dead_spots)} villages,"
        f" {population:,} people",
        DEAD_SPOT_RULE,
        SITE_RULE,
    ]
    return out
