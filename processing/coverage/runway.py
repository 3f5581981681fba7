"""The battery runway (issue 18, part 1): when each tower on battery goes dark if mains does not
return, and when each place loses signal as the last of its serving towers does.

The drain rate is a Theil-Sen fit of battery % over time: the median of the slopes between every
pair of readings (Sen 1968), so one glitch (5 % -> 95 % -> 5 %) moves few of the slopes and not
their median. The band is Sen's distribution-free confidence interval of that slope: the slopes
ranked (N - z*sqrt(var S))/2 and (N + z*sqrt(var S))/2 of the N sorted, var S = n(n-1)(2n+5)/18
(Kendall's S without ties). The level the runway starts from is the fitted line at the last
reading (the median of each reading carried forward at the fitted rate), not the last reading
alone, which may itself be the glitch.

The fit is trusted when its readings show the charge falling (the band's slow end still drains)
or, if the charge does not clearly fall, when they span long enough that the nominal rate would
have drained ``min_drop_pct`` (a flat charge seen that long is a fact, e.g. a generator, not
noise). Otherwise, and with fewer than ``min_readings``, the stated nominal rate with a wide band
(method ``nominal``). The test is on the charge, not on a time span, so it holds alike for a
tower reporting every minute and for a fleet simulated at 144x, whose batteries empty in
minutes of wall time. No battery reading at all: ``unknown``, no time: never a made-up number.

Load (``active_users``) is not a term of the fit: the simulators' battery model drains at a
constant rate whatever the traffic (simulators/values.py), so the data gives no load effect to
fit, and a fit per tower already absorbs each tower's own load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from devices.kinds import Operator
from processing.coverage.places import Place

HOUR_S = 3600.0
ANY = "any"  # all mobile signal: every operator


@dataclass(frozen=True, slots=True, kw_only=True)
class RunwayConfig:
    every_s: float = 15.0  # the service recomputes the runway this often
    window_s: float = 4 * HOUR_S  # readings of the stretch on battery this recent are fitted
    min_readings: int = 6  # fewer battery readings than this: the nominal rate
    min_drop_pct: float = 5.0  # a charge not clearly falling is believed once the nominal
    # rate would have drained this much over its readings' span (see the module's docstring)
    nominal_drain_pct_per_h: float = 12.5
    nominal_band: float = 0.5  # the nominal rate's band: ± this fraction of it
    max_fit_readings: int = 64  # readings thinned evenly to this many (the pairs grow as n²)
    confidence_z: float = 1.96  # the band: Sen's interval at 95 %

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.window_s <= 0 or self.min_drop_pct < 0:
            raise ValueError("runway: every_s and window_s must be positive, min_drop_pct not < 0")
        if self.min_readings < 2 or self.max_fit_readings < self.min_readings:
            raise ValueError("runway: min_readings >= 2 and max_fit_readings >= min_readings")
        if self.nominal_drain_pct_per_h <= 0 or not 0 <= self.nominal_band < 1:
            raise ValueError("runway: nominal drain must be positive, its band within [0, 1)")


@dataclass(frozen=True, slots=True)
class Drain:
    """A drain rate and its band, %/h (positive: draining), and the level it starts from."""

    rate_pct_per_h: float
    slow_pct_per_h: float  # the band's slow end: dark latest
    fast_pct_per_h: float  # the band's fast end: dark earliest
    level_pct: float  # the charge at the last reading, as the fit sees it
    method: str  # 'fit' or 'nominal'


@dataclass(frozen=True, slots=True)
class Stretch:
    """One tower's readings since it went on battery (read_at: its last reading)."""

    device_id: str
    on_battery_since: datetime
    read_at: datetime
    battery_pct: float | None  # the last reading's
    ts_s: np.ndarray  # epoch seconds of the readings with a battery %
    pct: np.ndarray


@dataclass(frozen=True, slots=True)
class SiteForecast:
    device_id: str
    on_battery_since: datetime
    battery_pct: float | None
    read_at: datetime
    drain_pct_per_h: float | None
    method: str  # 'fit', 'nominal', 'unknown'
    readings: int
    dark_at: datetime | None
    dark_early: datetime | None
    dark_late: datetime | None  # None also when the band's slow end does not drain at all


@dataclass(frozen=True, slots=True)
class PlaceForecast:
    place_kind: str
    place_id: str
    operator: str  # an operator's value, or ANY
    loses_at: datetime | None
    loses_early: datetime | None
    loses_late: datetime | None
    sites: tuple[str, ...]
    population: int


def theil_sen(t_s: np.ndarray, y: np.ndarray, z: float) -> tuple[float, float, float, float]:
    """(slope, slope_low, slope_high, level at the last t), slopes per second."""
    i, j = np.triu_indices(t_s.size, k=1)
    dt = t_s[j] - t_s[i]
    keep = dt > 0
    slopes = np.sort((y[j] - y[i])[keep] / dt[keep])
    n, count = t_s.size, slopes.size
    slope = float(np.median(slopes))
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    lo = int(np.clip(math.floor((count - c) / 2), 0, count - 1))
    hi = int(np.clip(math.ceil((count + c) / 2), 0, count - 1))
    level = float(np.median(y + slope * (t_s[-1] - t_s)))
    return slope, float(slopes[lo]), float(slopes[hi]), level


def fit_drain(t_s: np.ndarray, pct: np.ndarray, cfg: RunwayConfig) -> Drain | None:
    """The drain from one tower's battery readings (time order); None without any reading."""
    if pct.size == 0:
        return None
    rate = cfg.nominal_drain_pct_per_h
    nominal = Drain(
        rate, rate * (1 - cfg.nominal_band), rate * (1 + cfg.nominal_band), float(pct[-1]),
        "nominal",
    )  # fmt: skip
    if pct.size < cfg.min_readings:
        return nominal
    if pct.size > cfg.max_fit_readings:  # evenly thinned, the last reading always kept
        idx = np.linspace(0, pct.size - 1, cfg.max_fit_readings).round().astype(np.int64)
        t_s, pct = t_s[idx], pct[idx]
    slope, low, high, level = theil_sen(t_s, pct, cfg.confidence_z)
    falling = high < 0  # even the band's slowest end drains
    seen_long = rate * float(t_s[-1] - t_s[0]) / HOUR_S >= cfg.min_drop_pct
    if not (falling or seen_long):
        return nominal
    # A falling charge has a negative slope: the steepest fall is the fast end of the drain.
    return Drain(-slope * HOUR_S, -high * HOUR_S, -low * HOUR_S, max(0.0, level), "fit")


def _dark(read_at: datetime, level_pct: float, rate_pct_per_h: float) -> datetime | None:
    if rate_pct_per_h <= 0:
        return None  # not draining: no time it would run flat
    return read_at + timedelta(hours=level_pct / rate_pct_per_h)


def forecast_site(s: Stretch, cfg: RunwayConfig) -> SiteForecast:
    drain = fit_drain(s.ts_s, s.pct, cfg)
    if drain is None:
        return SiteForecast(s.device_id, s.on_battery_since, s.battery_pct, s.read_at, None,
                            "unknown", 0, None, None, None)  # fmt: skip
    return SiteForecast(
        s.device_id,
        s.on_battery_since,
        s.battery_pct,
        s.read_at,
        drain.rate_pct_per_h,
        drain.method,
        int(s.pct.size),
        _dark(s.read_at, drain.level_pct, drain.rate_pct_per_h),
        _dark(s.read_at, drain.level_pct, drain.fast_pct_per_h),
        _dark(s.read_at, drain.level_pct, drain.slow_pct_per_h),
    )


def _last(times: Sequence[datetime | None]) -> datetime | None:
    """The last of the towers' times: unknown if any is."""
    return None if any(t is None for t in times) else max(t for t in times if t is not None)


def _place_forecast(
    place: Place, operator: str, towers: frozenset[str], sites: Mapping[str, SiteForecast]
) -> PlaceForecast:
    on = [sites[t] for t in sorted(towers)]
    # Central time unknown: the band is too (one tower with no forecast may hold the place).
    loses_at = _last([f.dark_at for f in on])
    return PlaceForecast(
        place.kind,
        place.place_id,
        operator,
        loses_at,
        _last([f.dark_early for f in on]) if loses_at is not None else None,
        _last([f.dark_late for f in on]) if loses_at is not None else None,
        tuple(sorted(towers)),
        place.population,
    )


def forecast_places(
    places: Sequence[Place],
    covering: Mapping[tuple[str, str], Mapping[Operator, frozenset[str]]],
    sites: Mapping[str, SiteForecast],
) -> list[PlaceForecast]:
    """A row per place and operator (and ANY) every serving tower of which is on battery."""
    out = []
    for place in places:
        by_op = covering.get((place.kind, place.place_id), {})
        every: set[str] = set()
        for op, towers in by_op.items():
            every |= towers
            if towers and towers <= sites.keys():
                out.append(_place_forecast(place, op.value, towers, sites))
        if every and every <= sites.keys():
            out.append(_place_forecast(place, ANY, frozenset(every), sites))
    return out
