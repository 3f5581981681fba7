"""Simulated time: real time since the start, accelerated by ``speed``.

Daily patterns (traffic, cabinet temperature, battery drain) follow this clock; the ``ts`` of
every payload stays real wall-clock time, so the server never sees readings from the future.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class SimClock:
    speed: float = 1.0  # 60: one simulated minute per real second
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, not {self.speed}")

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def real_interval_s(self, interval_s: float) -> float:
        """Real seconds between two readings of a device that reports every ``interval_s``."""
        return interval_s / self.speed

    def announced_interval_s(self, interval_s: float) -> int:
        """The interval a device announces in its birth record under acceleration.

        The server's liveness check counts missed intervals in real time, so the birth record
        carries the real interval (rounded up, at least 1 s), not the simulated one.
        """
        return max(1, math.ceil(self.real_interval_s(interval_s)))


def wall_clock_ts(skew_s: float = 0.0) -> str:
    """Now (plus a clock's ``skew_s``), as RFC 3339 UTC with milliseconds
    (``2026-11-24T08:00:00.123Z``)."""
    now = datetime.now(UTC)
    if skew_s:
        now += timedelta(seconds=skew_s)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
