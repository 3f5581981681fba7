"""How well the battery runway foresaw each village's loss (issue 18's acceptance), for the
pipeline test and bench/runway.py: a watcher records every forecast ``place_runway`` held for
'any' (all mobile signal) over time, on the database's clock, and ``score`` holds them against
the 'lost' coverage events.

Times are real: payload ts are wall-clock (simulators/clock.py), so at ``speed`` x a simulated
horizon of H seconds is H / speed real seconds."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

HORIZON_SIM_S = 30 * 60.0  # the forecast judged is the one made this long before the loss


@dataclass
class ForecastLog:
    """Per village, (seen at, loses_at) each time the forecast was looked at."""

    seen: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    polls: int = 0

    async def watch(self, url: str, stop: asyncio.Event, every_s: float) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                cur = await conn.execute(
                    "SELECT now(), place_id, loses_at FROM place_runway WHERE operator = 'any'"
                    " AND place_kind = 'village' AND loses_at IS NOT NULL"
                )
                for at, village, loses_at in await cur.fetchall():
                    self.seen.setdefault(village, []).append((at, loses_at))
                self.polls += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)


def lost_villages(url: str, since: datetime) -> dict[str, datetime]:
    """Each village's first 'lost' event (all operators) since ``since``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT village_id, min(ts) FROM coverage_events WHERE kind = 'lost' AND ts >= %s"
            " GROUP BY village_id",
            (since,),
        ).fetchall()
    return {v: ts for v, ts in rows}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def score(log: ForecastLog, lost: dict[str, datetime], speed: float) -> dict[str, Any]:
    """Error of the forecast in force ``HORIZON_SIM_S`` simulated before each loss, as a
    fraction of its lead time, and each village's lead time (simulated seconds from its first
    forecast to its loss)."""
    horizon_real_s = HORIZON_SIM_S / speed
    errors: dict[str, float] = {}
    late_s: list[float] = []  # actual - forecast, simulated seconds: > 0, the loss came later
    leads: list[float] = []
    unforeseen: list[str] = []
    for village, lost_at in sorted(lost.items()):
        before = [(at, f) for at, f in log.seen.get(village, []) if at < lost_at]
        if not before:
            unforeseen.append(village)
            continue
        leads.append((lost_at - before[0][0]).total_seconds() * speed)
        made = [(at, f) for at, f in before if (lost_at - at).total_seconds() >= horizon_real_s]
        if not made:
            continue  # at risk for less than the horizon (e.g. its last tower on mains fell)
        at, forecast = made[-1]
        late = (lost_at - forecast).total_seconds()
        errors[village] = abs(late) / (lost_at - at).total_seconds()
        late_s.append(late * speed)
    err = sorted(errors.values())
    return {
        "forecast_error_p50": _round(_pct(err, 50)),
        "forecast_error_p90": _round(_pct(err, 90)),
        "forecast_error_max": _round(max(err) if err else None),
        "lead_time_s_p50": _round(_pct(leads, 50)),
        "late_s_p10": _round(_pct(sorted(late_s), 10)),
        "late_s_p50": _round(_pct(sorted(late_s), 50)),
        "late_s_p90": _round(_pct(sorted(late_s), 90)),
        "villages_forecast": len(leads),
        "villages_scored": len(errors),
        "villages_lost": len(lost),
        "villages_lost_unforeseen": unforeseen,
        "errors": {v: round(e, 4) for v, e in sorted(errors.items())},
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
