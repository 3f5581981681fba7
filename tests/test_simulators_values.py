"""Simulators against the contract, without a broker: readings carry exactly the declared
metrics and validate, values follow the day and the device's condition, the clock accelerates,
and the endpoint parses credentials, protocol and TLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from devices import READING_CHANNEL, READINGS, Codec, Kind, PowerSource, Readings
from devices import encode as encode_json
from simulators import (
    DeviceCondition,
    MqttEndpoint,
    SimClock,
)
from simulators.values import SOURCES, conform, reading_source
from tests.support.simulated import make

DAY = datetime(2026, 11, 24, tzinfo=UTC)


def decode_reading(codec: Codec, kind: Kind, payload: dict[str, Any]) -> Any:
    topic = codec.topics.device(kind, payload["device_id"], READING_CHANNEL[kind])
    decoded = codec.decode(topic, encode_json(payload), datetime.now(UTC))
    assert decoded.rejections == [], decoded.rejections
    assert isinstance(decoded.record, Readings)
    return decoded.record.items[0]


@pytest.mark.parametrize("kind", list(SOURCES))
def test_readings_have_exactly_the_declared_metrics_and_validate(kind: Kind) -> None:
    codec = Codec()
    conditions = [
        DeviceCondition(),
        DeviceCondition(power_source=PowerSource.BATTERY, battery_pct=3.0, sectors_down={2}),
        DeviceCondition(backhaul_up=False, video_online=False, tamper=True, uplink_up=False),
        DeviceCondition(storage_free_pct=0.0),
    ]
    for condition in conditions:
        source = reading_source(kind, "DEV-1", make(kind, "DEV-1").meta, condition)
        for hour in range(0, 48, 1):
            metrics = source.reading(DAY + timedelta(hours=hour))
            assert list(metrics) == [s.name for s in READINGS[kind]]
            payload = {"device_id": "DEV-1", "ts": DAY.isoformat(), "seq": hour, **metrics}
            decode_reading(codec, kind, payload)


def test_a_reading_with_a_metric_missing_or_invented_is_refused() -> None:
    good = reading_source(Kind.CAMERA, "CAM-1", {}).reading(DAY)
    with pytest.raises(ValueError, match="missing"):
        conform(Kind.CAMERA, {k: v for k, v in good.items() if k != "fps"})
    with pytest.raises(ValueError, match="extra"):
        conform(Kind.CAMERA, {**good, "colour": "red"})
    assert conform(Kind.CAMERA, {**good, "fps": 1e9})["fps"] == 120.0  # clamped to the range


def test_bts_follows_the_day_and_its_condition() -> None:
    source = reading_source(Kind.BTS, "BTS-1", make(Kind.BTS, "BTS-1").meta)
    # 20:00 and 03:00 local (UTC+7)
    busy, quiet = DAY + timedelta(hours=13), DAY + timedelta(hours=20)
    assert source.reading(busy)["active_users"] > 2 * source.reading(quiet)["active_users"]
    temps = [source.reading(DAY + timedelta(hours=h))["cabinet_temp_c"] for h in range(24)]
    assert 24 < min(temps) < 28 and 37 < max(temps) < 41

    source.condition.sectors_down = {2}
    assert source.reading(busy)["sectors_up"] == [True, False, True, True]
    source.condition.backhaul_up = False
    off_air = source.reading(busy)
    assert off_air["active_users"] == 0 and off_air["prb_util_pct"] == 0

    source.condition.power_source = PowerSource.BATTERY
    readings = [source.reading(busy + timedelta(hours=h)) for h in range(1, 12)]
    assert [r["power_source"] for r in readings] == ["battery"] * 11
    levels = [r["battery_pct"] for r in readings]
    assert levels == sorted(levels, reverse=True) and levels[-1] == 0
    assert source.condition.online is False  # flat batteries: the site goes dark


def test_clock_accelerates_and_announces_the_real_interval() -> None:
    clock = SimClock(speed=60)
    assert clock.real_interval_s(300) == 5
    assert clock.announced_interval_s(300) == 5
    assert clock.announced_interval_s(90) == 2  # 1.5 s, rounded up
    assert clock.announced_interval_s(10) == 1  # never below 1 s
    with pytest.raises(ValueError):
        SimClock(speed=0)


def test_endpoint_parses_credentials_and_protocol() -> None:
    e = MqttEndpoint.parse("mqtt://sim%40ioc:p%3Ass@broker.local:8883", protocol=4)
    assert (e.host, e.port, e.username, e.password) == ("broker.local", 8883, "sim@ioc", "p:ss")
    assert e.protocol_version is aiomqtt.ProtocolVersion.V311
    assert MqttEndpoint.parse("mqtt://127.0.0.1").port == 1883
    with pytest.raises(ValueError):
        MqttEndpoint.parse("http://127.0.0.1")


def test_endpoint_takes_tls_and_credentials_from_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until connect\n")
    e = MqttEndpoint.parse(
        "mqtts://url-user:url-pass@broker.example", username="u", password="p", ca_file=str(ca)
    )
    assert (e.port, e.tls, e.username, e.password, e.ca_file) == (8883, True, "u", "p", str(ca))
    tls = e.tls_parameters()
    assert tls is not None and tls.ca_certs == str(ca)
    assert MqttEndpoint.parse("mqtt://h").tls_parameters() is None
    with pytest.raises(ValueError, match="needs an mqtts:// URL"):
        MqttEndpoint.parse("mqtt://h", ca_file=str(ca))
    with pytest.raises(ValueError, match="does not exist"):
        MqttEndpoint.parse("mqtts://h", ca_file=str(tmp_path / "missing.pem"))
