"""A Mosquitto started from the config that ``ioc devices provision`` generates: TLS only,
passwords, the ACL. Used by the security tests and the compose-as-processes test."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devices.kinds import Kind
from devices.topics import Topics
from ioc.brokers import free_port, wait_for_port
from ioc.certs import CertFiles, make_dev_ca
from ioc.provision import BrokerLayout, Provisioned, provision


@dataclass
class SecureBroker:
    port: int
    certs: CertFiles
    provisioned: Provisioned
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, username: str) -> str:
        """``mqtts://user:password@127.0.0.1:port?ca_file=…`` for an account."""
        return (f"mqtts://{username}:{self.password(username)}@127.0.0.1:{self.port}"
                f"?ca_file={self.certs.ca_cert}")  # fmt: skip

    def password(self, username: str) -> str:
        if username in self.provisioned.service_passwords:
            return self.provisioned.service_passwords[username]
        with self.provisioned.credentials.open(encoding="utf-8", newline="") as f:
            found = [r["password"] for r in csv.DictReader(f) if r["username"] == username]
        if not found:
            raise KeyError(username)
        return found[-1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_secure_broker(
    folder: Path, devices: list[tuple[Kind, str]], topics: Topics, *, simulator: bool = True
) -> SecureBroker:
    """Certificates, accounts, ACL and config in ``folder``, and Mosquitto running on them."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # Mosquitto drops root for its own user, who must reach the files
    # Run as root, Mosquitto becomes its own user, who must read passwd and the server key.
    owner = "mosquitto" if os.geteuid() == 0 else None
    certs = make_dev_ca(folder / "certs", ("localhost", "127.0.0.1"), days=1)
    port = free_port()
    layout = BrokerLayout(folder=str(folder), data_dir=str(folder / "data"), tls_port=port,
                          bind_address="127.0.0.1")  # fmt: skip
    done = provision(folder, devices, layout, topics=topics, simulator=simulator, passwords={},
                     owner=owner)  # fmt: skip
    (folder / "data").mkdir(exist_ok=True)
    if owner:
        shutil.chown(certs.server_key, owner)
        shutil.chown(folder / "data", owner)
    log = folder / "mosquitto.log"
    mosquitto = shutil.which("mosquitto")
    assert mosquitto, "the security tests need mosquitto on PATH"
    process = subprocess.Popen(
        [mosquitto, "-c", str(done.config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc=process)
    except Exception:
        process.kill()
        raise AssertionError(f"broker did not start: {log.read_text()[-2000:]}") from None
    return SecureBroker(port, certs, done, process, log)
