"""What the coverage service tells its operators on ``/metrics`` (``devices.service_http``).

Recompute time by kind (``full``: the engine rebuilt from the registry; ``incremental``: the
footprints of the towers whose verdict moved), changes waiting, village events written, and
the picture after each write, every province summed: villages with no operator's coverage and
the people living in them; and each province's engine recomputes.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devices.service_http import HealthAnswer, Heartbeat
from processing.coverage.places import PlaceCoverage
from processing.coverage.state import CoverageEvent

RECOMPUTE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class CoverageMetrics:
    def __init__(self, stale_after_s: float, pending: Callable[[], int]) -> None:
        r = self.registry = CollectorRegistry()
        self.recompute_seconds = Histogram(
            "ioc_coverage_recompute_seconds",
            "time from reading the towers' verdicts to the places written, by kind",
            ["kind"],
            buckets=RECOMPUTE_BUCKETS,
            registry=r,
        )
        for kind in ("full", "incremental"):
            self.recompute_seconds.labels(kind)  # both series exist from the start
        self.pending = Gauge(
            "ioc_coverage_pending_changes", "pushed changes not yet taken by the loop", registry=r
        )
        self.pending.set_function(pending)
        self.wakes = Counter("ioc_coverage_wakes", "passes of the service's loop", registry=r)
        self.events = Counter(
            "ioc_coverage_events_written", "village coverage events written, by kind", ["kind"],
            registry=r,
        )  # fmt: skip
        self.villages_dark = Gauge(
            "ioc_coverage_villages_dark", "villages no operator covers now", registry=r
        )
        self.people_affected = Gauge(
            "ioc_coverage_people_affected", "people living in the villages no operator covers",
            registry=r,
        )  # fmt: skip
        self.last_recompute = Gauge(
            "ioc_coverage_last_recompute_timestamp_seconds",
            "when a recompute last wrote its places",
            registry=r,
        )
        # One series per province and kind: 63 provinces at most.
        self.province_recomputes = Counter(
            "ioc_coverage_province_recomputes",
            "recomputes of one province's engine (GSO code), by kind",
            ["province", "kind"],
            registry=r,
        )
        self.heartbeat = Heartbeat(stale_after_s)

    def written(
        self, after: dict[tuple[str, str], PlaceCoverage], events: Iterable[CoverageEvent]
    ) -> None:
        for kind, n in Tally(e.kind for e in events).items():
            self.events.labels(kind).inc(n)
        dark = [pc for (k, _), pc in after.items() if k == "village" and pc.dead_spot]
        self.villages_dark.set(len(dark))
        self.people_affected.set(sum(pc.place.population or 0 for pc in dark))

    def recomputed(self, kind: str, seconds: float) -> None:
        self.recompute_seconds.labels(kind).observe(seconds)
        self.last_recompute.set_to_current_time()

    def province_recomputed(self, province: int, kind: str) -> None:
        self.province_recomputes.labels(str(province), kind).inc()

    def health(self) -> HealthAnswer:
        # The loop beats once the first picture is written: "starting" until then.
        return self.heartbeat.answer(service="coverage")
