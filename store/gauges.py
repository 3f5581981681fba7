"""What the database says about the running system, read when Prometheus scrapes a service.

State that lives in the database (devices by state, alerts open, the outbox, locks and
sessions) is read from it at scrape time rather than counted in a process: the figures are the
same whichever replica or restart is asked, and nothing has to be kept in step. Each service's
``/metrics`` adds a :class:`ScrapedFigures` for its own queries; one scrape is one short
connection and a few grouped counts on indexed columns (``alerts_unresolved``,
``alert_outbox_pending``, ``devices_kind_state``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store import alert_outbox
from store.scope import NATIONAL

log = logging.getLogger("ioc.metrics")

Reader = Callable[[psycopg.Connection], Iterable[Metric]]


class ScrapedFigures(Collector):
    """Runs ``reader`` on a fresh connection at each scrape; ``{prefix}_database_up`` says
    whether it could (0: the figures are absent from this scrape, not zero)."""

    def __init__(self, database_url: str, prefix: str, reader: Reader) -> None:
        self.database_url = database_url
        self.prefix = prefix
        self.reader = reader
        self.last_error: str | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the rows: registered without a dry run

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{self.prefix}_database_up", "1 when this scrape could read the database"
        )
        try:
            with psycopg.connect(self.database_url, connect_timeout=3, autocommit=True) as conn:
                figures = list(self.reader(conn))
        except psycopg.Error as err:
            self.last_error = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            log.warning("%s: figures not read: %s", self.prefix, self.last_error)
            up.add_metric([], 0)
            yield up
            return
        self.last_error = None
        up.add_metric([], 1)
        yield up
        yield from figures


def devices_by_state(conn: psycopg.Connection) -> Iterator[Metric]:
    g = GaugeMetricFamily(
        "ioc_devices", "registered devices by kind and state", labels=["kind", "state"]
    )
    for kind, state, n in conn.execute(
        "SELECT kind, state, count(*) FROM devices GROUP BY kind, state ORDER BY kind, state"
    ):
        g.add_metric([kind, state], n)
    yield g


def alert_figures(conn: psycopg.Connection, channels: Iterable[str] = ()) -> Iterator[Metric]:
    """Alerts open by rule and severity; each channel's outbox: depth, oldest age, dead.
    ``channels`` (those configured) are reported at zero when nothing of theirs waits."""
    open_ = GaugeMetricFamily(
        "ioc_alerts_open", "unresolved alerts by rule and severity", labels=["rule", "severity"]
    )
    for rule, severity, n in conn.execute(
        "SELECT rule, severity, count(*) FROM alerts WHERE state <> 'resolved'"
        " GROUP BY rule, severity ORDER BY rule, severity"
    ):
        open_.add_metric([rule, severity], n)
    yield open_
    depth = GaugeMetricFamily(
        "ioc_alert_outbox_pending", "deliveries waiting, per channel", labels=["channel"]
    )
    failing = GaugeMetricFamily(
        "ioc_alert_outbox_failing",
        "deliveries waiting that failed at least once, per channel",
        labels=["channel"],
    )
    age = GaugeMetricFamily(
        "ioc_alert_outbox_oldest_age_seconds",
        "age of the oldest waiting delivery's transition, per channel (0: none waits)",
        labels=["channel"],
    )
    dead = GaugeMetricFamily(
        "ioc_alert_outbox_dead",
        "deliveries given up (dead letters), per channel",
        labels=["channel"],
    )
    now = datetime.now(UTC)
    backlog = {b.channel: b for b in alert_outbox.backlog(conn, scope=NATIONAL)}
    for name in sorted(backlog.keys() | set(channels)):
        b = backlog.get(name)
        depth.add_metric([name], b.pending if b else 0)
        failing.add_metric([name], b.failing if b else 0)
        dead.add_metric([name], b.dead if b else 0)
        oldest = b.oldest if b else None
        age.add_metric([name], max(0.0, (now - oldest).total_seconds()) if oldest else 0)
    yield from (depth, failing, age, dead)


def login_figures(conn: psycopg.Connection) -> Iterator[Metric]:
    """Failed logins and lockouts so far (from the audit log), locks and sessions in force."""
    counts: dict[str, int] = dict(
        conn.execute(
            "SELECT event, count(*) FROM audit_log WHERE event IN ('login_failed', 'locked')"
            " GROUP BY event"
        ).fetchall()
    )
    failed = CounterMetricFamily(
        "ioc_dashboard_login_failures", "failed dashboard logins recorded in the audit log"
    )
    failed.add_metric([], counts.get("login_failed", 0))
    locked = CounterMetricFamily(
        "ioc_dashboard_lockouts", "accounts or addresses locked for failed logins"
    )
    locked.add_metric([], counts.get("locked", 0))
    in_force = GaugeMetricFamily(
        "ioc_dashboard_locks_active", "login locks in force now, by kind", labels=["kind"]
    )
    found: dict[str, int] = dict(
        conn.execute(
            "SELECT kind, count(*) FROM login_locks WHERE locked_until > now() GROUP BY kind"
        ).fetchall()
    )
    for kind in ("account", "address"):
        in_force.add_metric([kind], found.get(kind, 0))
    sessions = GaugeMetricFamily("ioc_dashboard_sessions_active", "dashboard logins in force now")
    row = conn.execute(
        "SELECT count(*) FROM user_sessions WHERE expires_at > now()"
        " AND (idle_timeout IS NULL OR last_seen + idle_timeout > now())"
    ).fetchone()
    sessions.add_metric([], row[0] if row else 0)
    yield from (failed, locked, in_force, sessions)
