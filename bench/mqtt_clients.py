"""Which MQTT client drains a QoS 1 queue fastest with commit-then-ack, in one run on one broker.

    python -m bench.mqtt_clients [--quick] [--messages N]

The ingester acknowledges a message only after its batch has committed, so the client must let
the application send each PUBACK. ``N`` readings are queued on a Mosquitto (the project's
tuning) for three offline persistent sessions; then each drains its own queue, alone, with no
database in the way:
- ``mosquitto_sub -q 1`` (C, libmosquitto, acknowledging on receipt): the reference;
- ``wire``: the ingester's own receiver (``ingest/receiver.py`` on ``ingest/wire.py``), taking
  batches of 1,000 and acknowledging each batch as the ingester does after a commit;
- ``paho``: paho-mqtt 2 with ``manual_ack=True``, one ``ack(mid)`` per message from a batch of
  1,000, as a commit-then-ack ingester on it would.

The last line is one JSON object: ``{client}_msgs_per_s`` and each one's ``ratio`` to the
reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from devices.topics import Topics
from ingest.receiver import Receiver
from ioc.configs import ingest_config
from tests.support.mosquitto_cli import session
from tests.support.procs import RestartableBroker, start_flood

BATCH = 1000


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def queue(broker: RestartableBroker, root: str, messages: int) -> None:
    flood = start_flood(broker.url, root, publisher=0, devices=250, messages=messages)
    _, stderr = flood.communicate(timeout=3600)
    if flood.returncode:
        raise RuntimeError(f"publisher failed: {stderr.decode()[-1000:]}")


def drain_reference(port: int, root: str, messages: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([*session(port, "ref", root), "-C", str(messages)], check=True,
                   stdout=subprocess.DEVNULL, timeout=3600)  # fmt: skip
    return messages / (time.perf_counter() - t0)


async def _drain_wire(url: str, root: str, messages: int) -> float:
    config = ingest_config(database_url="", mqtt_url=url, client_id="wire", batch_size=BATCH,
                           session_expiry_s=3600, self_register=False)  # fmt: skip
    receiver = Receiver(config, f"{root}/#")
    t0 = time.perf_counter()
    receiver.start()
    got = 0
    while got < messages:
        batch = await receiver.take(BATCH, 0.2)
        receiver.ack(batch)
        got += len(batch)
    elapsed = time.perf_counter() - t0
    await receiver.stop()
    return messages / elapsed


def drain_paho(port: int, root: str, messages: int) -> float:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho",
                         protocol=mqtt.MQTTv5, manual_ack=True)  # fmt: skip
    held: list[int] = []
    got = 0
    done = threading.Event()
    properties = _session_properties()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got
        held.append(msg.mid)
        got += 1
        if len(held) >= BATCH or got >= messages:
            for mid in held:
                c.ack(mid, 1)
            held.clear()
        if got >= messages:
            done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_a: c.subscribe(f"{root}/#", qos=1)
    t0 = time.perf_counter()
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    if not done.wait(3600):
        raise TimeoutError("paho did not drain its queue")
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return messages / elapsed


def _session_properties() -> mqtt.Properties:
    properties = mqtt.Properties(mqtt.PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties


def make_sessions(broker: RestartableBroker, root: str) -> None:
    """The three persistent sessions, subscribed, then offline."""
    subprocess.run([*session(broker.port, "ref", root), "-E"], check=True, timeout=30)
    for client_id in ("wire", "paho"):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)  # fmt: skip
        properties = _session_properties()
        subscribed = threading.Event()
        client.on_subscribe = lambda *_a, e=subscribed: e.set()
        client.on_connect = lambda c, *_a: c.subscribe(f"{root}/#", qos=1)
        client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
        client.loop_start()
        if not subscribed.wait(30):
            raise TimeoutError(f"{client_id}: no SUBACK")
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 messages")
    parser.add_argument("--messages", type=int)
    args = parser.parse_args()
    messages = args.messages or (20_000 if args.quick else 200_000)
    broker = RestartableBroker()
    try:
        root = Topics.under(f"cli{uuid.uuid4().hex[:6]}").root
        make_sessions(broker, root)
        log(f"queueing {messages:,} readings for three offline sessions")
        queue(broker, root, messages)
        rates = {"reference": drain_reference(broker.port, root, messages)}
        log(f"mosquitto_sub: {rates['reference']:,.0f} msg/s")
        rates["wire"] = asyncio.run(_drain_wire(broker.url, root, messages))
        log(f"wire: {rates['wire']:,.0f} msg/s")
        rates["paho"] = drain_paho(broker.port, root, messages)
        log(f"paho manual_ack: {rates['paho']:,.0f} msg/s")
    finally:
        broker.cleanup()
    result: dict[str, object] = {"messages": messages}
    for name, rate in rates.items():
        result[f"{name}_msgs_per_s"] = round(rate)
        if name != "reference":
            result[f"{name}_ratio"] = round(rate / rates["reference"], 3)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
