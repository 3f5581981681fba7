"""The embedded MQTT broker of `ioc up` and the tests: Mosquitto on the project's config when
it is on PATH, else amqtt (a Python broker, MQTT 3.1.1 only)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MOSQUITTO_CONF = resources.files("ioc") / "config" / "mosquitto.conf"


def free_port(run: int = 1) -> int:
    """A loopback port that is free now, and the ``run - 1`` ports after it (``ioc ingest
    --instances N`` serves instance i on ``port + i``): a lone free port says nothing of its
    neighbour, which another process may hold."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
            if base + run > 65536:
                continue
            with contextlib.ExitStack() as held:
                try:
                    for port in range(base + 1, base + run):
                        neighbour = held.enter_context(socket.socket())
                        neighbour.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return base
    raise OSError(f"no run of {run} free loopback ports")


def wait_for_port(
    port: int, timeout_s: float = 15.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class RunningBroker:
    url: str
    protocol: int  # 5 or 4 (3.1.1)
    process: subprocess.Popen[bytes]
    name: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def mosquitto_config(state_dir: Path, port: int, *, persistence: bool = True) -> Path:
    """The project's tuning plus a loopback listener and (optionally) persistence."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        MOSQUITTO_CONF.read_text(encoding="utf-8"),
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
    ]
    if persistence:
        lines += ["persistence true", f"persistence_location {state_dir}/"]
    conf = state_dir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return conf


def start_broker(
    state_dir: Path, port: int | None = None, *, prefer: str = "mosquitto"
) -> RunningBroker:
    port = port or free_port()
    mosquitto = shutil.which("mosquitto") if prefer == "mosquitto" else None
    if mosquitto:
        conf = mosquitto_config(state_dir, port)
        cmd = [mosquitto, "-c", str(conf)]
        name, protocol = "mosquitto", 5
    else:
        cmd = [sys.executable, "-m", "ioc.amqtt_broker", str(port)]
        name, protocol = "amqtt", 4
    log = (state_dir / f"{name}.log").open("ab")
    # Its own session, as a real service: with autogroup scheduling a broker sharing the
    # load generators' session runs far slower (DESIGN.md, Ingest).
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc=proc)
    except Exception:
        proc.kill()
        raise
    return RunningBroker(f"mqtt://127.0.0.1:{port}", protocol, proc, name)
