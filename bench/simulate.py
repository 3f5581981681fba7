"""The simulators at scale: the whole province fleet from one process, and the load mode
against ``mosquitto_pub`` on the same broker, payload, QoS and number of connections.

    python -m bench.simulate [--quick]

1. Fleet: every BTS, camera and broadband node of the scenario (3,108) on its own connection,
   at ×60 (one reading per device per real second), in this process: how long until all are
   connected, readings per second acknowledged by the broker over a window, and this
   process's CPU use over it (100 % = one core).
2. Load: ``ioc simulate load`` (a child process) and parallel ``mosquitto_pub --repeat N
   --repeat-delay 0`` (one process per connection), alternated, each its own session as real
   clients are; the same ~240-byte reading, MQTT 5, at QoS 1 and at QoS 0. Ratios of medians.

Starts its own Mosquitto on the project's config (its own session) on a free port. The last
line is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devices import Topics
from devices.endpoint import MqttEndpoint
from ioc.brokers import RunningBroker, start_broker
from simulators.fleet import Fleet, province_devices
from simulators.load import ReadingTemplate
from simulators.values import SOURCES
from tests.support.environment import clean_environ

SPEED = 60.0
ROOT = Topics.under("bench").root
CONNECTIONS = 4


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def fleet_run(broker: RunningBroker, window_s: float) -> dict[str, Any]:
    specs = [d for d in province_devices() if d.kind in SOURCES]
    endpoint = MqttEndpoint.parse(broker.url, protocol=broker.protocol)
    fleet = Fleet(specs, endpoint, topics=Topics(ROOT), speed=SPEED)
    t0 = time.perf_counter()
    fleet.start()
    try:
        while fleet.counters.connected < len(fleet) and time.perf_counter() - t0 < 120:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        connect_s = time.perf_counter() - t0
        connected = fleet.counters.connected
        await asyncio.sleep(5)  # past the connection burst: births, first readings
        published, cpu, wall = fleet.counters.published, time.process_time(), time.perf_counter()
        lowest = connected
        end = wall + window_s
        while time.perf_counter() < end:
            await asyncio.sleep(0.5)
            lowest = min(lowest, fleet.counters.connected)
        elapsed = time.perf_counter() - wall
        rate = (fleet.counters.published - published) / elapsed
        cpu_percent = 100 * (time.process_time() - cpu) / elapsed
        buffered, losses = fleet.buffered(), fleet.counters.connection_losses
    finally:
        await fleet.stop()
    interval = float(specs[0].meta.get("interval_s", 60))
    return {
        "devices": len(specs),
        "devices_connected": connected,
        "devices_connected_lowest": lowest,
        "connect_s": round(connect_s, 1),
        "speed": SPEED,
        "msgs_per_s": round(rate),
        "msgs_per_s_expected": round(len(specs) * SPEED / interval),
        "cpu_percent": round(cpu_percent),
        "buffered_at_end": buffered,
        "connection_losses": losses,
    }


def payload() -> bytes:
    spec = next(d for d in province_devices() if d.kind in SOURCES)
    return ReadingTemplate(spec, Topics(ROOT)).next_payload("2026-11-24T08:00:00.123Z")


def mosquitto_pub_rate(broker: RunningBroker, body: bytes, qos: int, per_conn: int) -> float:
    port = broker.url.rsplit(":", 1)[1]
    exe = shutil.which("mosquitto_pub")
    assert exe, "mosquitto_pub is not on PATH"
    common = ["-V", "mqttv5", "-h", "127.0.0.1", "-p", port, "-q", str(qos), "-m", body.decode(),
              "--repeat", str(per_conn), "--repeat-delay", "0"]  # fmt: skip
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [exe, *common, "-t", f"{ROOT}/bts/REF-{i}/telemetry"], start_new_session=True
        )
        for i in range(CONNECTIONS)
    ]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"mosquitto_pub exited with {p.returncode}")
    return CONNECTIONS * per_conn / (time.perf_counter() - t0)


def load_rate(broker: RunningBroker, qos: int, per_conn: int) -> tuple[float, int]:
    env = clean_environ()
    env |= {"IOC_MQTT_URL": broker.url, "IOC_MQTT_PROTOCOL": "5", "IOC_TOPIC_ROOT": ROOT}
    done = subprocess.run(
        [sys.executable, "-m", "ioc", "simulate", "load", "--devices", str(CONNECTIONS),
         "--messages", str(CONNECTIONS * per_conn), "--qos", str(qos)],
        env=env, capture_output=True, text=True, check=True, start_new_session=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["msgs_per_s"]), int(result["payload_bytes"])


def compare(broker: RunningBroker, qos: int, per_conn: int, rounds: int) -> dict[str, Any]:
    body = payload()
    ref, ours = [], []
    size = 0
    for _ in range(rounds):  # alternated, so both see the same drift of a shared machine
        ref.append(mosquitto_pub_rate(broker, body, qos, per_conn))
        rate, size = load_rate(broker, qos, per_conn)
        ours.append(rate)
    print(f"QoS {qos}: mosquitto_pub {[round(r) for r in ref]} msg/s, "
          f"load {[round(r) for r in ours]} msg/s", file=sys.stderr)  # fmt: skip
    mp, ld = statistics.median(ref), statistics.median(ours)
    return {"mosquitto_pub": round(mp), "load": round(ld), "ratio": round(ld / mp, 2),
            "payload_bytes": size, "reference_payload_bytes": len(body)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    args = parser.parse_args()
    window_s, per_conn, rounds = (10.0, 5000, 1) if args.quick else (40.0, 25000, 3)
    _raise_fd_limit()
    load_before = os.getloadavg()[0]  # a shared machine: what else ran says how to read it
    with tempfile.TemporaryDirectory(prefix="ioc-bench-sim-") as tmp:
        broker = start_broker(Path(tmp) / "broker")
        try:
            fleet = asyncio.run(fleet_run(broker, window_s))
            print(f"fleet: {fleet}", file=sys.stderr)
            q1 = compare(broker, 1, per_conn, rounds)
            q0 = compare(broker, 0, per_conn, rounds)
        finally:
            broker.stop()
    print(json.dumps({
        **fleet,
        "load_msgs_per_s": q1["load"], "mosquitto_pub_msgs_per_s": q1["mosquitto_pub"],
        "load_ratio": q1["ratio"],
        "load_qos0_msgs_per_s": q0["load"], "mosquitto_pub_qos0_msgs_per_s": q0["mosquitto_pub"],
        "load_qos0_ratio": q0["ratio"],
        "connections": CONNECTIONS, "messages_per_connection": per_conn, "rounds": rounds,
        "payload_bytes": q1["payload_bytes"], "protocol": "MQTT 5", "broker": broker.name,
        "load_average_1m": round(load_before, 1), "cpu_cores": os.cpu_count(),
        "quick": args.quick,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
