"""Readings: the latest of a device and the health it gives it, rollup series, ingest health,
rejects, and the bulk loaders that stand up weeks of history (benchmarks, tests).

Every query is bounded by an index or a time window (chunk exclusion on TimescaleDB, the BRIN
on ``received_at`` on plain PostgreSQL), so a page stays fast at 30 days of fleet telemetry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from devices.health import HEALTH, Condition, DisplayState, Predicate
from devices.kinds import Kind
from store.db import Flavor, detect_flavor
from store.scope import Scope, device_clause, params
from store.tables import READING_TABLES

# The latest reading of a device is looked for this far back; older means it is silent, and
# liveness has (or soon will have) marked it offline. A constant bound lets TimescaleDB skip
# every older chunk when planning.
LATEST_WINDOW = timedelta(hours=1)


def latest_table(kind: Kind) -> str:
    """The kind's last-state table (migration 0017): each device's newest reading, kept by the
    ingest writer, so the map never searches the readings hypertable for it."""
    return f"{READING_TABLES[kind].name}_latest"


def upsert_latest(kind: Kind, rows: sql.Composable) -> sql.Composed:
    """Upsert ``rows`` (a query giving the reading table's columns, then ``received_at``) into
    the kind's last-state table. A row replaces the stored one only when it is newer by
    (ts, seq): a late reading, or a redelivered one, leaves the newer state alone. Rows are
    taken in device order, so two writers lock shared devices in the same order."""
    columns = READING_TABLES[kind].columns
    return sql.SQL(
        "INSERT INTO {latest} AS l ({columns}, received_at) {rows}"
        " ON CONFLICT (device_id) DO UPDATE SET {updates}, received_at = EXCLUDED.received_at"
        " WHERE (l.ts, l.seq) < (EXCLUDED.ts, EXCLUDED.seq)"
    ).format(
        latest=sql.Identifier(latest_table(kind)),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        rows=rows,
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
            for c in columns
            if c != "device_id"
        ),
    )


def rebuild_latest(conn: psycopg.Connection, window: timedelta = timedelta(days=1)) -> None:
    """Fill the last-state tables from the readings of the last ``window``, as the writer would
    have left them: for history loaded around the writer (:func:`copy_backfill`, benchmarks)."""
    for kind, table in READING_TABLES.items():
        rows = sql.SQL(
            "SELECT DISTINCT ON (device_id) * FROM {table} WHERE ts > now() - %s"
            " ORDER BY device_id, ts DESC, seq DESC"
        ).format(table=sql.Identifier(table.name))
        conn.execute(upsert_latest(kind, rows), (window,))


def health_case(kind: Kind) -> sql.Composable:
    """The kind's health rule (devices.health) as a CASE over its latest reading ``r``: the same
    rules in the same order, so NULL (a metric not reported) satisfies none, as in Python."""

    def condition(c: Condition) -> sql.Composable:
        column = sql.Identifier("r", c.metric)
        match c.predicate:
            case Predicate.IS_FALSE:
                return sql.SQL("NOT {}").format(column)
            case Predicate.IS_TRUE:
                return column
            case Predicate.EQUALS:
                return sql.SQL("{} = {}").format(column, sql.Literal(c.value))
            case Predicate.ANY_FALSE:
                return sql.SQL("false = ANY({})").format(column)
        raise AssertionError(c.predicate)

    whens = [
        sql.SQL("WHEN {} THEN {}").format(
            sql.SQL(" OR ").join(sql.SQL("({})").format(condition(c)) for c in rule.any_of),
            sql.Literal(rule.state.value),
        )
        for rule in HEALTH.get(kind, ())
    ]
    return sql.SQL("CASE {} ELSE {} END").format(
        sql.SQL(" ").join(whens), sql.Literal(DisplayState.ONLINE.value)
    )


@dataclass(frozen=True, slots=True)
class IngestHealth:
    messages_per_s: float  # readings stored per second over the window
    lag_s: float | None  # mean of received_at - ts over the window
    rejects_last_hour: int


def _recent_readings(columns: str) -> sql.Composable:
    """Readings received since %(since)s, from every reading table; ``ts`` is bounded too so
    TimescaleDB excludes old chunks (a reading older than %(ts_since)s on arrival is missed)."""
    parts = [
        sql.SQL(
            "SELECT {columns} FROM {table} WHERE received_at >= %(since)s AND ts >= %(ts_since)s"
        ).format(columns=sql.SQL(columns), table=sql.Identifier(table.name))
        for table in READING_TABLES.values()
    ]
    return sql.SQL(" UNION ALL ").join(parts)


# Minutes of arrival as the writer counts them (migration 0017).
_MINUTE = "date_bin(INTERVAL '1 minute', {}, TIMESTAMPTZ '2000-01-01')"


# Ingest health and its series are the ingester's (one service for every province, and its
# minute counters carry no device), so they take no scope: every role sees the same figures.
def ingest_health(
    conn: psycopg.Connection, now: datetime, window: timedelta = timedelta(minutes=1)
) -> IngestHealth:
    """Over the minutes of arrival from the one holding ``now - window`` to ``now``, as the
    writer counted them (ingest_minutes): a few rows, whatever the fleet's size."""
    query = (
        "SELECT min(minute), coalesce(sum(messages), 0), sum(lag_sum_s) / nullif(sum(messages), 0)"
        f" FROM ingest_minutes WHERE minute >= {_MINUTE.format('%(since)s')}"
        " AND minute <= %(now)s"
    )
    row = conn.execute(query, {"since": now - window, "now": now}).fetchone()
    first, count, lag = row if row else (None, 0, None)
    span = max((now - first).total_seconds(), window.total_seconds()) if first else 1.0
    rejects = conn.execute(
        "SELECT count(*) FROM rejects WHERE received_at >= %s", (now - timedelta(hours=1),)
    ).fetchone()
    return IngestHealth(
        messages_per_s=int(count) / span,
        lag_s=float(lag) if lag is not None else None,
        rejects_last_hour=int(rejects[0]) if rejects else 0,
    )


def ingest_series(
    conn: psycopg.Connection, now: datetime, window: timedelta = timedelta(minutes=30)
) -> list[dict[str, Any]]:
    """Per minute of arrival: messages stored and their mean latency (received_at - ts)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT minute, sum(messages)::int AS messages,"
            " (sum(lag_sum_s) / nullif(sum(messages), 0))::float8 AS lag_s FROM ingest_minutes"
            f" WHERE minute >= {_MINUTE.format('%(since)s')} AND minute <= %(now)s"
            " GROUP BY minute ORDER BY minute",
            {"since": now - window, "now": now},
        )
        return cur.fetchall()


def rebuild_ingest_minutes(conn: psycopg.Connection, window: timedelta = timedelta(days=1)) -> None:
    """Count the readings that arrived in the last ``window`` per minute, as the writer would
    have (writer 0): for history loaded around the writer (:func:`copy_backfill`)."""
    query = sql.SQL(
        "INSERT INTO ingest_minutes (minute, writer, messages, lag_sum_s)"
        " SELECT {minute}, 0, count(*), sum(extract(epoch FROM received_at - ts))"
        " FROM ({recent}) r GROUP BY 1"
        " ON CONFLICT (minute, writer) DO UPDATE"
        " SET messages = EXCLUDED.messages, lag_sum_s = EXCLUDED.lag_sum_s"
    ).format(
        minute=sql.SQL(_MINUTE.format("received_at")),
        recent=_recent_readings("received_at, ts"),
    )
    since = conn.execute("SELECT now() - %s::interval", (window,)).fetchone()
    assert since is not None
    conn.execute(query, {"since": since[0], "ts_since": since[0] - LATEST_WINDOW})


def reject_samples(
    conn: psycopg.Connection,
    since: datetime,
    reason: str | None = None,
    limit: int = 20,
    *,
    scope: Scope,
) -> list[dict[str, Any]]:
    """The newest rejects (optionally of one reason) with the first bytes of their payload
    and its whole size. A reject lies in its device's province; one from an id the registry
    does not know (or none) is shown to a national reader only."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT received_at, reason, topic, device_id, detail, payload, payload_size"
            " FROM rejects"
            " WHERE received_at >= %(since)s AND (%(reason)s::text IS NULL OR reason = %(reason)s)"
            f" AND {device_clause('device_id', '%(scope)s')}"
            " ORDER BY received_at DESC LIMIT %(limit)s",
            {"since": since, "reason": reason, "limit": limit, "scope": scope.param},
        )
        return cur.fetchall()


def reject_counts(conn: psycopg.Connection, since: datetime, *, scope: Scope) -> dict[str, int]:
    """Rejects per reason since ``since``, of the scope as :func:`reject_samples`."""
    rows = conn.execute(
        "SELECT reason, count(*) FROM rejects WHERE received_at >= %s"
        f" AND {device_clause('device_id')} GROUP BY reason",
        (since, *params(scope)),
    ).fetchall()
    return {reason: int(n) for reason, n in rows}


def rollup_series(
    conn: psycopg.Connection,
    kind: Kind,
    device_id: str,
    since: datetime,
    until: datetime,
    *,
    scope: Scope,
) -> list[dict[str, Any]]:
    """One device's rolled-up metrics from ``since``: per minute up to 6 hours, else per hour
    (continuous aggregates on TimescaleDB, views on plain PostgreSQL). None for a device
    outside the scope."""
    table = READING_TABLES[kind]
    interval = "1m" if until - since <= timedelta(hours=6) else "1h"
    columns = [sql.Identifier(m.name) for m in table.rolled_up]
    query = sql.SQL(
        "SELECT bucket, readings, {columns} FROM {view}"
        " WHERE device_id = %s AND bucket >= %s AND bucket < %s AND {scoped} ORDER BY bucket"
    ).format(
        columns=sql.SQL(", ").join(columns),
        view=sql.Identifier(table.rollup(interval)),
        scoped=sql.SQL(device_clause("device_id")),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, (device_id, since, until, *params(scope)))
        return cur.fetchall()


def copy_backfill(conn: psycopg.Connection, kind: Kind, rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-load generated history (benchmarks, tests): each row is the table's columns in
    order, then its own ``received_at`` — unlike the ingest writer, which stamps arrival now.
    Rows must be new: there is no de-duplication here. Returns the rows written."""
    table = READING_TABLES[kind]
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in (*table.columns, "received_at"))
    written = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table.name), columns
            )
        ) as copy,
    ):
        copy.set_types([*table.copy_types, "timestamptz"])
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def refresh_rollups(conn: psycopg.Connection, minute_since: datetime | None = None) -> int:
    """Materialise every continuous aggregate over all its data (TimescaleDB; 0 elsewhere);
    with ``minute_since``, the per-minute ones from then only (the span read per minute, up
    to 6 hours back: a month of them at 60-second reporting is one row per reading).

    In service the refresh policies keep up as readings arrive; a bulk backfill (benchmarks)
    calls this once so the rollups stand as they would after weeks of running."""
    rows = conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates"
        if detect_flavor(conn) is Flavor.TIMESCALE
        else "SELECT NULL WHERE false"
    ).fetchall()
    for (view,) in rows:
        since = minute_since if minute_since and view.endswith("_1m") else None
        call = sql.SQL("CALL refresh_continuous_aggregate({}, {}, NULL)").format(
            sql.Literal(view), sql.Literal(since)
        )
        for attempt in range(60):
            try:
                conn.execute(call)
                break
            except psycopg.errors.LockNotAvailable:  # the refresh policy's job is at it
                if attempt == 59:
                    raise
                time.sleep(1)
    return len(rows)
