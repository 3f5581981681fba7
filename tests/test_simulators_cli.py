"""``ioc simulate device`` driven in a pty like a field engineer would, against the test broker
and a TLS broker with passwords; ``ioc simulate load`` and ``fleet`` from the command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pexpect
import pytest

from devices import Channel, Codec, Kind, Readings, Topics
from devices.topics import DEFAULT_ROOT
from ioc.provision import Service
from seeds import load_scenario
from tests.faults.secure import SecureBroker, start_secure_broker
from tests.support.environment import clean_environ
from tests.support.simulated import readings_of, watching

WAIT_S = 30


def ioc_env(**extra: str) -> dict[str, str]:
    env = clean_environ()
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def spawn(*args: str, env: dict[str, str]) -> pexpect.spawn[str]:
    child = pexpect.spawn(
        sys.executable, ["-m", "ioc", *args], env=env, encoding="utf-8", timeout=WAIT_S
    )
    child.setecho(False)
    return child


async def expect(child: pexpect.spawn[str], pattern: str) -> str:
    await asyncio.to_thread(child.expect, pattern)
    return str(child.after)


async def test_one_device_by_hand_changes_what_it_publishes(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    env = ioc_env(IOC_MQTT_URL=mqtt_url, IOC_MQTT_PROTOCOL=str(mqtt_protocol),
                  IOC_TOPIC_ROOT=topics.root)  # fmt: skip
    telemetry = topics.device(Kind.BTS, "BTS-VTL-0001", Channel.TELEMETRY)
    status = topics.device(Kind.BTS, "BTS-VTL-0001", Channel.STATUS)
    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        n = len(next(b for b in load_scenario().bts if b.device_id == "BTS-VTL-0001").sectors)
        child = spawn("simulate", "device", "bts", "BTS-VTL-0001", "--interval", "0.3", env=env)
        try:
            await expect(child, "# connected to")
            await expect(child, f"→ {topics.root}/bts/BTS-VTL-0001/meta \\(retained\\)")
            await expect(child, f"→ {telemetry} ")

            child.sendline("sector 2 off")
            await expect(child, "sector 2 off air")
            await expect(child, f'→ {telemetry} .*"sectors_up":\\[true,false,')

            child.sendline("battery 20")
            await expect(child, "on battery at 20 %")
            await expect(child, f'→ {telemetry} .*"power_source":"battery"')

            child.sendline(f"sector {n + 1} off")  # one past this site's sectors
            numbers = ", ".join(str(k) for k in range(1, n + 1))
            await expect(child, rf"\? sector takes a number \(\[{numbers}\]\)")

            child.sendline("down")
            await expect(child, "powered off")
            await live.until(lambda: _states(live.on_topic(status))[-1:] == ["offline/will"])

            child.sendline("up")
            await live.until(lambda: _states(live.on_topic(status))[-1:] == ["online/-"])
            child.sendline("quit")
            await expect(child, f'→ {status} \\(retained\\) .*"offline".*"stopped"')
            await asyncio.to_thread(child.expect, pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0
    # What the broker got says the same: the sector went off air, then the site went on battery.
    codec = Codec(topics)
    readings = []
    for seen in live.on_topic(telemetry):
        decoded = codec.decode(seen.topic, seen.payload, _now())
        assert decoded.rejections == [] and isinstance(decoded.record, Readings)
        readings += decoded.record.items
    assert readings[0].sectors_up == [True] * n and readings[0].power_source == "mains"
    changed = [(r.sectors_up[1], r.power_source) for r in readings]
    assert (False, "mains") in changed and (False, "battery") in changed
    assert changed.index((False, "mains")) < changed.index((False, "battery"))
    assert _states(live.on_topic(status)) == ["online/-", "offline/will", "online/-",
                                               "offline/stopped"]  # fmt: skip


def _states(seen: list[Any]) -> list[str]:
    out = []
    for s in seen:
        body = msgspec.json.decode(s.payload)
        out.append(f"{body['state']}/{body.get('reason') or '-'}")
    return out


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureBroker]:
    # Not under pytest's 0700 tmp: the broker's own user must reach the files.
    with tempfile.TemporaryDirectory(prefix="ioc-sim-secure-") as tmp:
        broker = start_secure_broker(Path(tmp), [(Kind.BTS, "BTS-VTL-0002")], Topics())
        yield broker
        broker.stop()


async def test_one_device_reaches_a_tls_broker_with_its_own_account(secure: SecureBroker) -> None:
    from devices.endpoint import MqttEndpoint

    url = f"mqtts://127.0.0.1:{secure.port}"
    args = ["simulate", "device", "bts", "BTS-VTL-0002", "--interval", "0.3", "--url", url,
            "--ca-file", str(secure.certs.ca_cert), "--username", "BTS-VTL-0002"]  # fmt: skip
    topics = Topics()
    watcher = MqttEndpoint.parse(secure.url(Service.MONITOR))
    async with watching(secure.url(Service.MONITOR), watcher.protocol, topics) as live:
        wrong = spawn(*args, "--password", "not-it", env=ioc_env())
        try:
            await expect(wrong, "# connection failed or lost: .*")
        finally:
            wrong.close(force=True)
        child = spawn(*args, env=ioc_env(IOC_SIMULATE_PASSWORD=secure.password("BTS-VTL-0002")))
        try:
            await expect(child, f"# connected to 127.0.0.1:{secure.port}")
            await live.until(lambda: len(live.on(Kind.BTS, "BTS-VTL-0002", Channel.TELEMETRY)) >= 2)
            child.sendline("quit")
            await asyncio.to_thread(child.expect, pexpect.EOF)
        finally:
            child.close(force=True)
    assert live.on(Kind.BTS, "BTS-VTL-0002", Channel.META)


async def test_a_broker_refusal_is_shown_to_the_engineer(secure: SecureBroker) -> None:
    """BTS-VTL-0003 on BTS-VTL-0002's account: the ACL refuses it, and the prompt says so."""
    child = spawn(
        "simulate", "device", "bts", "BTS-VTL-0003", "--url", f"mqtts://127.0.0.1:{secure.port}",
        "--ca-file", str(secure.certs.ca_cert), "--username", "BTS-VTL-0002",
        env=ioc_env(IOC_SIMULATE_PASSWORD=secure.password("BTS-VTL-0002")),
    )  # fmt: skip
    try:
        refused = f"# broker refused {DEFAULT_ROOT}/bts/BTS-VTL-0003/meta: Not authorized"
        await expect(child, refused)
        child.sendline("quit")
        await asyncio.to_thread(child.expect, pexpect.EOF)
    finally:
        child.close(force=True)


def test_an_unknown_device_is_one_line_naming_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ioc", "simulate", "device", "camera", "BTS-VTL-0001",
         "--url", "mqtt://127.0.0.1:1"],
        env=ioc_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "ioc: no camera 'BTS-VTL-0001' in the scenario (e.g. CAM-0001)"


def _load(mqtt_url: str, protocol: int, topics: Topics, *args: str) -> dict[str, Any]:
    env = ioc_env(IOC_MQTT_URL=mqtt_url, IOC_MQTT_PROTOCOL=str(protocol),
                  IOC_TOPIC_ROOT=topics.root)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "ioc", "simulate", "load", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "msg/s (QoS" in done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def test_load_sends_every_message_as_a_valid_reading_and_reports_its_rate(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    codec = Codec(topics)
    async with watching(mqtt_url, mqtt_protocol, topics) as live:
        result = await asyncio.to_thread(
            _load, mqtt_url, mqtt_protocol, topics, "--devices", "3", "--messages", "600"
        )
        await live.until(lambda: len(live.seen) >= 600)
    assert result["messages"] == 600 and result["connections"] == 3 and result["msgs_per_s"] > 0
    keys = set()
    for seen in live.seen:
        decoded = codec.decode(seen.topic, seen.payload, _now())
        assert decoded.rejections == [], decoded.rejections
        keys |= {(r["device_id"], r["seq"]) for r in readings_of(seen)}
    assert len(keys) == 600  # every one a distinct reading


async def test_load_at_a_rate_is_never_faster_than_asked(
    mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    result = await asyncio.to_thread(
        _load, mqtt_url, mqtt_protocol, topics,
        "--devices", "2", "--messages", "100", "--rate", "200", "--qos", "0",
    )  # fmt: skip
    assert result["messages"] == 100 and result["qos"] == 0
    assert result["elapsed_s"] >= 0.45  # 100 messages at 200/s take half a second


def test_fleet_refuses_a_negative_gateway_size_in_one_line(mqtt_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ioc", "simulate", "fleet", "--gateway", "-1", "--limit", "1"],
        env=ioc_env(IOC_MQTT_URL=mqtt_url), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "ioc: gateway size must be 0 (a connection per device) or more, not -1"
    )
