"""What ``ioc devices provision`` writes, without a broker: Mosquitto's own password format,
passwords kept and removed devices revoked on a second run, service passwords from their
secret files, an account per ingester instance, and an ACL that names each device's subtree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devices.kinds import Kind
from devices.topics import DEFAULT_ROOT, Topics
from ioc.provision import (
    BrokerLayout,
    device_account,
    hash_matches,
    mosquitto_hash,
    provision,
    read_passwd,
)

TOPICS = Topics()
DEVICES = [(Kind.BTS, "BTS-A"), (Kind.BTS, "BTS-B"), (Kind.CAMERA, "CAM-1")]


def test_the_password_file_is_mosquittos_own_format() -> None:
    encoded = mosquitto_hash("s3cret")
    assert encoded.startswith("$7$101$") and hash_matches(encoded, "s3cret")
    assert not hash_matches(encoded, "s3cret!")


def test_a_hash_made_by_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(path), "dev1", "pa55"], check=True)
    assert hash_matches(read_passwd(path)["dev1"], "pa55")


def test_reprovisioning_keeps_passwords_and_revokes_removed_devices(tmp_path: Path) -> None:
    layout = BrokerLayout(folder=str(tmp_path), data_dir=str(tmp_path / "data"))
    first = provision(tmp_path, DEVICES, layout, passwords={})
    before = read_passwd(first.passwd)
    assert set(before) == {
        "ioc-ingest-1",
        "ioc-ingest-2",
        "ioc-alerts",
        "ioc-healthcheck",
        "ioc-monitor",
        "ioc-broker-bridge",
        "BTS-A",
        "BTS-B",
        "CAM-1",
    }
    assert oct(first.passwd.stat().st_mode & 0o777) == "0o600"
    # Prometheus's view of the broker reads its $SYS figures and no device's topic.
    assert "user ioc-broker-bridge\ntopic read $SYS/broker/#\n\n" in first.acl.read_text()
    again = provision(tmp_path, DEVICES[:2], layout, passwords={}, rotate=["BTS-B"])
    after = read_passwd(again.passwd)
    assert again.removed == ["CAM-1"] and "CAM-1" not in after
    assert after["BTS-A"] == before["BTS-A"] and after["BTS-B"] != before["BTS-B"]
    assert again.created == ["BTS-B"]
    assert "user CAM-1" not in again.acl.read_text()


def test_a_service_password_already_chosen_is_used(tmp_path: Path) -> None:
    """Chosen: read from its secret file (ioc/secrets.py); the others are made and returned."""
    layout = BrokerLayout(folder=str(tmp_path), data_dir=str(tmp_path / "data"))
    secret = "a-long-secret-from-its-file"
    done = provision(tmp_path, [], layout, passwords={"ioc-ingest-1": secret})
    assert hash_matches(read_passwd(done.passwd)["ioc-ingest-1"], secret)
    with pytest.raises(ValueError, match="the password of ioc-ingest-1 is an example value"):
        provision(tmp_path, [], layout, passwords={"ioc-ingest-1": "change-me"})
    assert "ioc-ingest-1" not in done.service_passwords
    assert {"ioc-ingest-2", "ioc-alerts"} <= done.service_passwords.keys()


def test_each_ingester_instance_gets_an_account_of_its_own(tmp_path: Path) -> None:
    layout = BrokerLayout(folder=str(tmp_path), data_dir=str(tmp_path / "data"))
    done = provision(tmp_path, [], layout, passwords={}, ingesters=3)
    ingesters = sorted(u for u in read_passwd(done.passwd) if u.startswith("ioc-ingest-"))
    assert ingesters == ["ioc-ingest-1", "ioc-ingest-2", "ioc-ingest-3"]
    assert "ioc-ingest-3" in done.service_passwords
    assert "\nuse_username_as_clientid true\n" in done.config.read_text()


def test_the_acl_names_each_devices_own_subtree() -> None:
    acl = device_account(TOPICS, Kind.CAMERA, "CAM-1").acl()
    assert acl == (f"user CAM-1\ntopic write {DEFAULT_ROOT}/camera/CAM-1/#\n"
                   f"topic read {DEFAULT_ROOT}/camera/CAM-1/commands/#\n")  # fmt: skip
