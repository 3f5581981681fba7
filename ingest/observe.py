"""What an ingester tells its operators: Prometheus metrics, a health answer, structured logs.

Each ingester has its own registry (several run in one test process), served with a
``/health`` answer on one small HTTP port: ``/metrics`` for Prometheus, ``/health`` for
``ioc ingest --stats`` and load balancers (200 while it keeps up, 503 when it does not).
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from devices import service_http
from devices.service_http import HealthAnswer
from store.writer import Batch, WriteResult

log = logging.getLogger("ioc.ingest")

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
SECONDS_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    outbound: int = 0  # the service's own alert and command topics, seen and passed by
    stored: int = 0
    acked: int = 0
    duplicates: int = 0
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    batches: int = 0
    state_changes: int = 0
    fallbacks: int = 0
    # Where the time goes (seconds on the event loop): write (COPY and commit, waiting on the
    # database included) and acknowledge; decoding is the decoder's, receiving the receiver's.
    write_s: float = 0.0
    ack_s: float = 0.0

    def count(self, rows: Batch, result: WriteResult) -> None:
        """A committed batch."""
        self.received += rows.messages
        self.outbound += rows.outbound
        self.acked += rows.messages  # counted as settled even when a reconnect voided the PUBACK
        self.stored += result.stored
        self.duplicates += result.duplicates
        self.state_changes += result.state_changes
        self.fallbacks += result.fallbacks
        self.batches += 1
        for _, rejection in rows.rejections:
            self.rejected[rejection.reason.value] += 1


class IngestMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("ioc_ingest_received", "MQTT messages taken", registry=r)
        self.stored = Counter("ioc_ingest_stored_rows", "readings committed", registry=r)
        self.acked = Counter("ioc_ingest_acked", "messages acknowledged after commit", registry=r)
        self.rejected = Counter(
            "ioc_ingest_rejected", "rejects stored, by reason", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "ioc_ingest_duplicates_skipped", "readings already stored (redelivery)", registry=r
        )
        self.fallbacks = Counter(
            "ioc_ingest_staged_fallbacks", "direct COPYs that met a stored reading", registry=r
        )
        self.retries = Counter(
            "ioc_ingest_database_retries", "batches retried after a database error", registry=r
        )
        self.batch_messages = Histogram(
            "ioc_ingest_batch_messages", "messages per commit", buckets=BATCH_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            "ioc_ingest_commit_seconds",
            "time to write and commit a batch",
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "ioc_ingest_inflight", "messages received and not yet acknowledged", registry=r
        )
        self.lag = Gauge(
            "ioc_ingest_lag_seconds", "age of the oldest message not yet committed", registry=r
        )
        self.broker_up = Gauge("ioc_ingest_broker_connected", "1 while connected", registry=r)
        self.database_up = Gauge("ioc_ingest_database_up", "1 while writes succeed", registry=r)
        self.last_commit = Gauge(
            "ioc_ingest_last_commit_timestamp_seconds", "when a batch last committed", registry=r
        )

    def count(self, rows: Batch, result: WriteResult, acked: int, seconds: float) -> None:
        """A committed batch, of which ``acked`` messages were acknowledged."""
        self.received.inc(rows.messages)
        self.acked.inc(acked)
        self.stored.inc(result.stored)
        self.duplicates.inc(result.duplicates)
        self.fallbacks.inc(result.fallbacks)
        self.batch_messages.observe(rows.messages)
        self.commit_seconds.observe(seconds)
        self.last_commit.set_to_current_time()
        for _, rejection in rows.rejections:
            self.rejected.labels(rejection.reason.value).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve_http(
    address: str, port: int, metrics: IngestMetrics, health: Callable[[], dict[str, Any]]
) -> ThreadingHTTPServer:
    """Start ``/metrics`` and ``/health`` on a daemon thread (the services' one HTTP side,
    ``devices.service_http``); ``/health`` is 200 while the ingester keeps up."""

    def judged() -> HealthAnswer:
        answer = health()
        return bool(answer["keeping_up"]), answer

    return service_http.serve_http(address, port, metrics.exposition, judged, name="ingest-http")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the ``extra`` fields a record carries."""

    _PLAIN = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in self._PLAIN})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)
