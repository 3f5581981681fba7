"""How the metric declarations map onto tables and columns: the one place for that mapping.

The schema generator (``python -m store.schema_gen``) and the writer both read it, so a
declared metric, its column and the value the writer copies into it cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.kinds import READING_CHANNEL, Channel, Kind
from devices.metrics import READINGS, MetricSpec, MetricType

PG_TYPE: dict[MetricType, str] = {
    MetricType.FLOAT: "double precision",
    MetricType.INT: "integer",
    MetricType.BOOL: "boolean",
    MetricType.TEXT: "text",
    MetricType.BOOL_LIST: "boolean[]",
    MetricType.INT_LIST: "integer[]",
}

# psycopg's names for binary COPY (``Copy.set_types``).
COPY_TYPE: dict[MetricType, str] = {
    MetricType.FLOAT: "float8",
    MetricType.INT: "int4",
    MetricType.BOOL: "bool",
    MetricType.TEXT: "text",
    MetricType.BOOL_LIST: "bool[]",
    MetricType.INT_LIST: "int4[]",
}

ENVELOPE: tuple[tuple[str, str, str], ...] = (
    # (column, SQL type, COPY type)
    ("device_id", "text", "text"),
    ("ts", "timestamptz", "timestamptz"),
    ("seq", "bigint", "int8"),
)

ROLLUP_INTERVALS: dict[str, str] = {"1m": "1 minute", "1h": "1 hour"}


@dataclass(frozen=True, slots=True)
class ReadingTable:
    kind: Kind
    name: str
    metrics: tuple[MetricSpec, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c, _, _ in ENVELOPE) + tuple(m.name for m in self.metrics)

    @property
    def copy_types(self) -> tuple[str, ...]:
        return tuple(t for _, _, t in ENVELOPE) + tuple(COPY_TYPE[m.type] for m in self.metrics)

    @property
    def rolled_up(self) -> tuple[MetricSpec, ...]:
        """Metrics that average meaningfully: numbers, and flags (as the share of readings true)."""
        kept = (MetricType.FLOAT, MetricType.INT, MetricType.BOOL)
        return tuple(m for m in self.metrics if m.type in kept)

    def rollup(self, interval: str) -> str:
        return f"{self.name}_{interval}"


def reading_table(kind: Kind) -> ReadingTable:
    prefix = "telemetry" if READING_CHANNEL[kind] is Channel.TELEMETRY else "measurements"
    return ReadingTable(kind, f"{prefix}_{kind.value}", READINGS[kind])


READING_TABLES: dict[Kind, ReadingTable] = {k: reading_table(k) for k in Kind}
