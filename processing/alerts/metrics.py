"""What the alert engine tells its operators on ``/metrics`` (``devices.service_http``).

Latency by stage, each a histogram of ``ioc_alert_latency_seconds``:

- ``decided``: from an input's own time (a status change, a coverage event) to the committed
  tick that took it: how late the engine judges what happened;
- ``queued``: from the tick's decision to its commit, which holds the outbox rows (fan-out is
  in the same transaction);
- ``delivered``: from a transition to its delivery on a channel (backlog and retries included).

Delivery attempts are counted by channel and outcome; alerts open, outbox depth, oldest age and
dead letters are read from the database at each scrape (``store.gauges.alert_figures``), so
they are right whichever process evaluates and whichever delivers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devices.service_http import HealthAnswer, Heartbeat
from store.gauges import ScrapedFigures, alert_figures

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
STAGES = ("decided", "queued", "delivered")
OUTCOMES = ("delivered", "failed", "dead")


class AlertMetrics:
    def __init__(self, database_url: str, stale_after_s: float) -> None:
        r = self.registry = CollectorRegistry()
        self.ticks = Counter("ioc_alert_ticks", "evaluation ticks committed", registry=r)
        self.transitions = Counter(
            "ioc_alert_transitions_written", "alert transitions written by the engine", registry=r
        )
        self.latency = Histogram(
            "ioc_alert_latency_seconds",
            "alert latency by stage: input → decided, decided → queued, transition → delivered",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        for stage in STAGES:
            self.latency.labels(stage)
        self.attempts = Counter(
            "ioc_alert_delivery_attempts",
            "delivery attempts by channel and outcome (dead: failed and given up)",
            ["channel", "outcome"],
            registry=r,
        )
        self.last_tick = Gauge(
            "ioc_alert_last_tick_timestamp_seconds", "when a tick last committed", registry=r
        )
        self.channels: list[str] = []  # this process's, reported even with nothing waiting
        r.register(ScrapedFigures(database_url, "ioc_alert",
                                  lambda conn: alert_figures(conn, self.channels)))  # fmt: skip
        self.heartbeat = Heartbeat(stale_after_s)
        self.evaluate = True  # False: this process only delivers (its dispatchers beat)

    def channel(self, name: str) -> None:
        """Every outcome series of a channel exists from the start (rate() needs a zero)."""
        self.channels.append(name)
        for outcome in OUTCOMES:
            self.attempts.labels(name, outcome)

    def tick(self, fact_times: Iterable[datetime], decided: datetime, written: int) -> None:
        now = datetime.now(UTC)
        for ts in fact_times:
            self.latency.labels("decided").observe(max(0.0, (now - ts).total_seconds()))
        self.latency.labels("queued").observe(max(0.0, (now - decided).total_seconds()))
        self.ticks.inc()
        self.transitions.inc(written)
        self.last_tick.set_to_current_time()
        self.heartbeat.beat()

    def attempted(self, channel: str, outcome: str, payload: dict[str, Any], now: datetime) -> None:
        self.attempts.labels(channel, outcome).inc()
        if outcome == "delivered" and isinstance(ts := payload.get("ts"), str):
            at = datetime.fromisoformat(ts)
            self.latency.labels("delivered").observe(max(0.0, (now - at).total_seconds()))

    def health(self) -> HealthAnswer:
        return self.heartbeat.answer(service="alerts", evaluating=self.evaluate)

    def dispatcher_pass(self) -> None:
        """A deliver-only process is alive while its dispatchers go round."""
        if not self.evaluate:
            self.heartbeat.beat()
