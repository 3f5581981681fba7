"""Versioned SQL migrations: ``NNNN_name.sql``, or a ``.timescale.sql``/``.plain.sql`` pair.

Each migration runs in its own transaction under an advisory lock, so concurrent starts
(two ingesters, ``ioc up``) apply each one exactly once; a second upgrade does nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from store.db import Flavor, detect_flavor

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_(\w+?)(?:\.(timescale|plain))?\.sql$")
_LOCK_KEY = 0x10C_7E1E  # advisory lock id for migrations


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def plan(flavor: Flavor) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} does not follow NNNN_name[.flavor].sql")
        version, name, variant = int(match[1]), match[2], match[3]
        if variant is None or variant == flavor.value:
            if version in found:
                raise ValueError(f"two migrations claim version {version}")
            found[version] = Migration(version, name, path)
    return [found[v] for v in sorted(found)]


def upgrade(conn: psycopg.Connection) -> list[Migration]:
    """Apply pending migrations; returns the ones applied (empty when up to date)."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        flavor = detect_flavor(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, flavor text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
        done = {r[0] for r in rows}
        applied = []
        for migration in plan(flavor):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.path.read_text(encoding="utf-8").encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, flavor) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, flavor.value),
                )
            applied.append(migration)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def current_flavor(conn: psycopg.Connection) -> Flavor | None:
    row = conn.execute(
        "SELECT flavor FROM schema_migrations ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return Flavor(row[0]) if row else None
