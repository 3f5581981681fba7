"""What a Mosquitto kill -9 loses of the QoS 1 messages it had PUBACKed, and what saving more
often costs, for a few persistence settings.

    python -m bench.broker_durability [--quick] [--queued 50000] [--messages 2000]

Per setting, on a fresh broker (the project's tuning, persistence on): a persistent MQTT 5
session subscribes and goes away; ``--queued`` readings are queued for it and the broker is
restarted cleanly on the setting measured (SIGTERM saves, so the backlog is on disk); then
``--messages`` more readings are published (``tests/support/flood.py``, every one PUBACKed)
and timed, the broker is killed with SIGKILL at once, started again, and the session drained with
``mosquitto_sub``: ``lost`` is what was PUBACKed and never came back. Mosquitto 2.0 rewrites its
whole persistence file on each save, so a save on every change costs more the longer the queue.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devices.topics import Topics
from ioc.brokers import free_port, mosquitto_config, wait_for_port
from tests.support.mosquitto_cli import session

ROOT = Topics.under("bench").root
SESSION = "durability-drain"
SETTINGS: dict[str, list[str]] = {
    "autosave_interval 60 (time)": ["autosave_interval 60"],
    "on_changes 1": ["autosave_on_changes true", "autosave_interval 1"],
    "on_changes 100": ["autosave_on_changes true", "autosave_interval 100"],
    "on_changes 1000": ["autosave_on_changes true", "autosave_interval 1000"],
    "on_changes 10000": ["autosave_on_changes true", "autosave_interval 10000"],
}
# A save per message rewrites the whole backlog each time: fewer messages, or it runs for hours.
FEW = {"on_changes 1": 200}


class Broker:
    def __init__(self, state: Path, extra: list[str]) -> None:
        self.state, self.extra, self.port = state, extra, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, extra: list[str] | None = None) -> None:
        conf = mosquitto_config(self.state, self.port)
        lines = self.extra if extra is None else extra
        conf.write_text(conf.read_text(encoding="utf-8") + "\n".join(lines) + "\n", "utf-8")
        log = (self.state / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port, proc=self.process)

    def stop(self, signal_name: str = "TERM") -> None:
        assert self.process is not None
        if signal_name == "KILL":
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(120)


def subscribe_session(port: int) -> None:
    subprocess.run([*session(port, SESSION, ROOT, expiry_s=86400), "-E"], check=True)


def drain(port: int, expected: int) -> int:
    """Distinct messages the session gets back (it stops at ``expected``, or after 30 s)."""
    done = subprocess.run(
        [*session(port, SESSION, ROOT, expiry_s=86400), "-C", str(expected), "-W", "30"],
        capture_output=True,
        check=False,
    )
    return len(set(done.stdout.splitlines()))


def flood(url: str, publisher: int, messages: int, timeout_s: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "tests.support.flood",
        "--url",
        url,
        "--root",
        ROOT,
        "--publisher",
        str(publisher),
        "--devices",
        "50",
        "--messages",
        str(messages),
    ]
    done = subprocess.run(
        cmd, capture_output=True, timeout=timeout_s, check=True, start_new_session=True
    )
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def measure(name: str, extra: list[str], queued: int, messages: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="ioc-bench-durability-"))
    state.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(state, "mosquitto")
    broker = Broker(state, extra)
    try:
        broker.start(extra=[])  # the backlog goes in fast, on the shipped config
        subscribe_session(broker.port)
        if queued:
            flood(broker.url, 0, queued, 600)
        broker.stop("TERM")
        broker.start()
        timed = flood(broker.url, 1, messages, 900)
        broker.stop("KILL")
        broker.start(extra=[])  # saving on every acknowledgement would slow the drain to a crawl
        got = drain(broker.port, queued + messages)
        broker.stop("TERM")
    finally:
        if broker.process and broker.process.poll() is None:
            broker.process.kill()
        shutil.rmtree(state, ignore_errors=True)
    seconds = timed["end"] - timed["start"]
    return {
        "setting": name,
        "queued_before": queued,
        "published": messages,
        "acked": timed["acked"],
        "publish_msgs_per_s": round(messages / seconds),
        "recovered": got,
        "lost": queued + messages - got,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queued", type=int, default=50_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--only", action="append", help="a setting's name (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 queued, 500 published: within a minute")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.queued, args.messages = min(args.queued, 5_000), min(args.messages, 500)
    results = []
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        result = measure(name, extra, args.queued, min(args.messages, FEW.get(name, 10**9)))
        result["wall_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"broker_durability": results}))


if __name__ == "__main__":
    main()
