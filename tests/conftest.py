"""Real services for the tests: PostgreSQL, TimescaleDB (when reachable) and an MQTT broker.

The fixtures live in tests/fixtures/ as plugins, one module per service; what tests and
benchmarks share without pytest lives in tests/support/.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.broker",
    "tests.fixtures.ingest",
    "tests.fixtures.coverage",
    "tests.fixtures.dashboard",
    "tests.fixtures.alerts",
]
