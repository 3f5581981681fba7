"""A deployment's secrets: ``ioc secrets init`` makes one file per secret and never overwrites
one unless rotated; ``ioc devices provision`` takes the service accounts' passwords from the same
files; production refuses weak dashboard passwords wherever a user is made."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from ioc.production import user_password_problem
from ioc.provision import hash_matches, read_passwd
from ioc.secrets import deployment_secrets, mqtt_secret


def ioc(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    return subprocess.run([sys.executable, "-m", "ioc", *args], env={**clean, **env},
                          input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_init_makes_every_secret_once_and_rotates_only_what_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    done = ioc("secrets", "init", str(folder), "--webhook", "ops")
    assert done.returncode == 0, done.stderr
    first = _files(folder)
    assert set(first) == {s.name for s in deployment_secrets()}
    assert {"postgres_password", "db_dashboard_password", "mqtt_ingest_2_password",
            "mqtt_healthcheck_password", "ingest_share_group"} <= set(first)  # fmt: skip
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name, value in first.items():
        if name != "alert_webhook_secrets":
            assert len(value) == 43 and "\n" not in value, name  # 256 random bits, url-safe
    assert len(set(first.values())) == len(first)
    ops = json.loads(first["alert_webhook_secrets"])["ops"]

    again = ioc("secrets", "init", str(folder), "--webhook", "ops", "--webhook", "sms")
    assert again.returncode == 0, again.stderr
    second = _files(folder)
    assert {k: v for k, v in second.items() if k != "alert_webhook_secrets"} == {
        k: v for k, v in first.items() if k != "alert_webhook_secrets"
    }
    keys = json.loads(second["alert_webhook_secrets"])
    assert keys["ops"] == ops and len(keys["sms"]) == 43  # a new webhook keeps the others' keys

    rotated = ioc("secrets", "init", str(folder), "--rotate", "db_alerts_password",
                  "--webhook", "ops", "--rotate", "webhook:ops")  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    third = _files(folder)
    changed = {k for k in third if third[k] != second[k]}
    assert changed == {"db_alerts_password", "alert_webhook_secrets"}
    keys3 = json.loads(third["alert_webhook_secrets"])
    assert keys3["ops"] != ops and keys3["sms"] == keys["sms"]

    unknown = ioc("secrets", "init", str(folder), "--rotate", "db_alert_password")
    assert (unknown.returncode, unknown.stderr) == (
        2, "ioc: --rotate: no secret named 'db_alert_password'\n"
    )  # fmt: skip


def test_init_refuses_to_keep_a_weak_secret_it_finds(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "postgres_password").write_text("change-me\n")
    done = ioc("secrets", "init", str(folder))
    assert done.returncode == 2 and "postgres_password is an example value" in done.stderr
    assert "--rotate postgres_password" in done.stderr
    fixed = ioc("secrets", "init", str(folder), "--rotate", "postgres_password")
    assert fixed.returncode == 0 and len((folder / "postgres_password").read_text()) == 43


def test_provision_takes_service_passwords_from_the_secrets_folder(tmp_path: Path) -> None:
    """One source: the broker's hash and the service's secret file hold the same password;
    an account with no file yet (the monitor, a third ingester) gets one there."""
    secrets, broker = tmp_path / "secrets", tmp_path / "mosquitto"
    assert ioc("secrets", "init", str(secrets)).returncode == 0
    (secrets / mqtt_secret("ioc-monitor")).unlink()
    done = ioc("devices", "provision", "--out", str(broker), "--secrets", str(secrets),
               "--ingesters", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    hashes = read_passwd(broker / "passwd")
    for account in ("ioc-ingest-1", "ioc-ingest-3", "ioc-alerts", "ioc-healthcheck", "ioc-monitor"):
        password = (secrets / mqtt_secret(account)).read_text()
        assert hash_matches(hashes[account], password), account
    assert not (broker / "services.env").exists()
    # A rotated secret reaches the broker on the next provision; the others keep their hash.
    assert ioc("secrets", "init", str(secrets), "--rotate", "mqtt_alerts_password").returncode == 0
    again = ioc("devices", "provision", "--out", str(broker), "--secrets", str(secrets),
                "--ingesters", "3")  # fmt: skip
    assert again.returncode == 0, again.stderr
    after = read_passwd(broker / "passwd")
    assert hash_matches(after["ioc-alerts"], (secrets / "mqtt_alerts_password").read_text())
    assert after["ioc-ingest-1"] == hashes["ioc-ingest-1"]


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("password", "at least 12 characters"),
        ("Password123!", "too easy to guess"),
        ("qwertyuiop12", "too easy to guess"),
        ("admin12345678", "too easy to guess"),
        ("changeme1234", "too easy to guess"),
        ("night-night-night", "too easy to guess"),
    ],
)
def test_production_names_why_a_dashboard_password_is_weak(password: str, why: str) -> None:
    problem = user_password_problem("night", password)
    assert problem and why in problem


def test_a_passphrase_passes() -> None:
    assert user_password_problem("night", "trạm phát sóng Vân Canh mưa") is None
    assert user_password_problem("night", "copper-lantern-orbit-92") is None


def test_ioc_users_add_refuses_a_common_password_in_production_only(database_url: str) -> None:
    # The test server trusts local logins, so the password in the URL is only production's.
    info = conninfo_to_dict(database_url)
    url = (f"postgresql://{info['user']}:a-real-looking-secret-9f2@{info.get('host', '127.0.0.1')}"
           f":{info.get('port', 5432)}/{info['dbname']}")  # fmt: skip
    weak = ioc("users", "add", "duty", "--role", "admin", "--password-stdin",
               stdin="Password123!\n", IOC_DATABASE_URL=url, IOC_MODE="production")  # fmt: skip
    assert weak.returncode == 2, weak.stdout
    assert weak.stderr.startswith("ioc: password: too easy to guess")
    strong = ioc("users", "add", "duty", "--role", "admin", "--password-stdin",
                 stdin="copper-lantern-orbit-92\n", IOC_DATABASE_URL=url,
                 IOC_MODE="production")  # fmt: skip
    assert strong.returncode == 0, strong.stderr
    dev = ioc("users", "add", "trial", "--password-stdin", stdin="Password123!\n",
              IOC_DATABASE_URL=database_url)  # fmt: skip
    assert dev.returncode == 0, dev.stderr


def test_the_policy_the_shell_hands_down_holds_in_the_store(database_url: str) -> None:
    """The dashboard's users page adds users through store.users.add_user, in a process whose
    entry script (ioc/dashboard_main.py) hands the production rule down as this does."""
    from ioc.production import apply_password_policy
    from store.db import connect
    from store.migrate import upgrade
    from store.users import add_user

    with connect(database_url) as conn:
        upgrade(conn)
        try:
            apply_password_policy("production")
            with pytest.raises(ValueError, match=r"^password: too easy to guess"):
                add_user(conn, "night", "qwertyuiop123", "operator")
            assert add_user(conn, "night", "copper-lantern-orbit-92", "operator").username
        finally:
            apply_password_policy("development")
        assert add_user(conn, "day", "qwertyuiop123", "viewer").username
