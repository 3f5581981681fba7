"""``ioc alerts`` as an operator meets it, and the alert schema on TimescaleDB."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from store.alert_engine import NewAlert, open_alert
from store.db import aconnect, connect
from store.migrate import upgrade
from tests.support.databases import rows
from tests.support.environment import clean_environ


def ioc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = clean_environ()
    return subprocess.run([sys.executable, "-m", "ioc", "alerts", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


async def _one_alert(url: str) -> int:
    with connect(url) as sync:
        upgrade(sync)
    conn = await aconnect(url)
    try:
        alert = NewAlert("camera_tamper", "CAM-0001", "camera", "major", "Camera 1 tampered",
                         "Camera 1 bị che", {"name": "Camera 1"}, 540)  # fmt: skip
        alert_id = await open_alert(conn, alert, datetime.now(UTC))
    finally:
        await conn.close()
    assert alert_id is not None
    return alert_id


async def test_list_ack_resolve_and_silence_from_the_command_line(database_url: str) -> None:
    alert_id = await _one_alert(database_url)
    db = {"IOC_DATABASE_URL": database_url}
    listed = ioc("list", "--open", "--severity", "major", **db)
    assert listed.returncode == 0, listed.stderr
    assert "camera_tamper" in listed.stdout and "Camera 1 tampered" in listed.stdout
    assert "(no alerts)" in ioc("list", "--severity", "critical", **db).stdout

    acked = ioc("ack", str(alert_id), "--by", "lan", "--comment", "on my way", **db)
    assert acked.returncode == 0 and "acknowledged" in acked.stdout
    again = ioc("ack", str(alert_id), "--by", "lan", **db)
    assert again.returncode == 2
    expected = f"ioc: alert {alert_id} is acknowledged; it cannot be acknowledged"
    assert again.stderr.strip() == expected
    resolved = ioc("resolve", str(alert_id), "--by", "lan", "--reason", "lens wiped", **db)
    assert resolved.returncode == 0 and "resolved" in resolved.stdout
    shown = ioc("show", str(alert_id), **db).stdout
    assert [line.split()[3] for line in shown.splitlines()[2:]] == [
        "opened", "acknowledged", "resolved"
    ]  # fmt: skip
    assert "by lan — lens wiped" in shown

    silenced = ioc("silence", "--rule", "bts_offline", "--subject", "BTS-VTL-0001", "--for", "4h",
                   "--by", "planner", "--comment", "tower maintenance", **db)  # fmt: skip
    assert silenced.returncode == 0, silenced.stderr
    assert rows(database_url, "SELECT rule, subject, created_by FROM alert_silences") == [
        ("bts_offline", "BTS-VTL-0001", "planner")
    ]
    listed_silences = ioc("silences", **db).stdout
    assert "BTS-VTL-0001" in listed_silences and "tower maintenance" in listed_silences
    assert ioc("unsilence", "1", **db).returncode == 0
    assert "(no silences)" in ioc("silences", **db).stdout


def test_bad_arguments_and_settings_are_one_line_naming_them(
    database_url: str, tmp_path: Path
) -> None:
    db = {"IOC_DATABASE_URL": database_url}
    cases = [
        (("silence", "--rule", "bts_offline", "--for", "soon", "--by", "x"), {}, "--for:"),
        (("silence", "--rule", "nope", "--for", "1h", "--by", "x"), {}, "--rule: no rule 'nope'"),
        (("silence", "--for", "1h", "--by", "x"), {}, "a silence needs a rule, a subject"),
        (("list", "--severity", "urgent"), {}, "--severity: 'urgent' is not one of"),
        (("ack", "999", "--by", "x"), {}, "no alert 999"),
        (("run",), {"IOC_ALERT_WEBHOOKS": json.dumps({"ops": "ftp://x"})},
         "IOC_ALERT_WEBHOOKS: ops: 'ftp://x' is not an http(s) URL"),
        (("run",), {"IOC_ALERT_RULES": str(tmp_path / "none.toml")},
         "IOC_ALERT_RULES: no rules file"),
    ]  # fmt: skip
    with connect(database_url) as conn:
        upgrade(conn)
    for args, env, message in cases:
        done = ioc(*args, **db, **env)
        assert done.returncode == 2, (args, done.stdout)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_status_events_reach_the_engine_inbox_on_timescaledb(tsdb_url: str) -> None:
    with connect(tsdb_url) as conn:
        upgrade(conn)
        assert conn.execute(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'status_events'"
        ).fetchone() == (1,)
        conn.execute("INSERT INTO status_events (ts, device_id, state, reason)"
                     " VALUES (now(), 'BTS-VTL-0001', 'offline', 'will')")  # fmt: skip
        conn.commit()
    assert rows(tsdb_url, "SELECT device_id, state, reason FROM alert_inbox") == [
        ("BTS-VTL-0001", "offline", "will")
    ]
