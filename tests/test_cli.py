"""The `ioc` command as a user meets it: clear one-line errors, idempotent upgrade."""

from __future__ import annotations

import os
import subprocess
import sys


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run([sys.executable, "-m", "ioc", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_unreachable_database_is_one_line_naming_the_setting() -> None:
    done = ioc("db", "upgrade", IOC_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2
    assert done.stderr.startswith("ioc: IOC_DATABASE_URL: cannot connect to the database")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_and_malformed_settings_are_named() -> None:
    done = ioc("db", "upgrade")
    assert done.returncode == 2 and "IOC_DATABASE_URL is not set" in done.stderr
    done = ioc("db", "upgrade", IOC_INGEST_BATCH_SIZE="many", IOC_DATABASE_URL="postgresql://x")
    assert done.returncode == 2 and done.stderr.startswith("ioc: IOC_INGEST_BATCH_SIZE:")
    assert "Traceback" not in done.stderr


def test_db_upgrade_twice_applies_then_does_nothing(database_url: str) -> None:
    first = ioc("db", "upgrade", IOC_DATABASE_URL=database_url)
    assert first.returncode == 0, first.stderr
    assert "0001_core" in first.stdout and "(plain)" in first.stdout
    second = ioc("db", "upgrade", IOC_DATABASE_URL=database_url)
    assert second.returncode == 0 and "nothing to apply" in second.stdout
