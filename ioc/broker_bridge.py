"""``python -m ioc.broker_bridge``: the broker's own figures (Mosquitto's ``$SYS/broker/#``) on
``/metrics``, for the Prometheus of compose's monitoring profile.

Ours rather than an exporter image: it speaks MQTT over TLS verified against the project's CA
(``IOC_MQTT_URL``'s ``ca_file``), reads its password from a secret file like every service
(``IOC_MQTT_PASSWORD_FILE``), and its metric names follow the project's (``ioc_broker_*``), so
the Grafana dashboard's test checks them like the others. Its account needs read access to
``$SYS/#`` and nothing else.

Every numeric ``$SYS/broker/…`` topic becomes one series of ``ioc_broker_sys{topic=…}`` (the
broker's cumulative counts, gauges and 1/5/15-minute loads as Mosquitto states them).
``/health`` is 200 while connected and a ``$SYS`` update came within ``stale_after_s``
(Mosquitto publishes them every ``sys_interval``, 10 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import aiomqtt
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from devices.endpoint import MqttEndpoint
from devices.service_http import HealthAnswer, Served

log = logging.getLogger("ioc.broker_bridge")
SYS_FILTER = "$SYS/broker/#"
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0


class SysFigures(Collector):
    """The latest numeric value of each ``$SYS`` topic, and whether the link is up."""

    def __init__(self, stale_after_s: float) -> None:
        self.values: dict[str, float] = {}
        self.connected = False
        self.stale_after_s = stale_after_s
        self._last: float | None = None
        self.error: str | None = None

    def take(self, topic: str, payload: bytes) -> None:
        try:
            # "1234", "12.5", or "123 seconds" (uptime): the leading number
            self.values[topic] = float(payload.decode().split()[0])
        except (UnicodeDecodeError, ValueError, IndexError):
            return  # the version string and the like: not a figure
        self._last = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        sys = GaugeMetricFamily(
            "ioc_broker_sys", "the broker's $SYS figures, by topic", labels=["topic"]
        )
        for topic, v in sorted(self.values.items()):
            sys.add_metric([topic], v)
        yield sys
        up = GaugeMetricFamily("ioc_broker_connected", "1 while subscribed to the broker's $SYS")
        up.add_metric([], 1 if self.connected else 0)
        yield up

    def health(self) -> HealthAnswer:
        if not self.connected:
            return False, {"service": "broker-bridge", "reason": f"not connected: {self.error}"}
        if self._last is None:
            return False, {"service": "broker-bridge", "reason": "no $SYS figure yet"}
        age = time.monotonic() - self._last
        if age > self.stale_after_s:
            return False, {"service": "broker-bridge", "reason": f"no $SYS update for {age:.0f} s"}
        return True, {"service": "broker-bridge", "sys_age_s": round(age, 3)}


async def run_bridge(
    endpoint: MqttEndpoint,
    address: str,
    port: int,
    *,
    stale_after_s: float = 60.0,
    stop: asyncio.Event | None = None,
    figures: SysFigures | None = None,
) -> None:
    stop = stop or asyncio.Event()
    figures = figures or SysFigures(stale_after_s)
    registry = CollectorRegistry()
    registry.register(figures)
    served = Served()
    served.start(address, port, registry, figures.health, name="broker-bridge-http")
    backoff = RETRY_FIRST_S
    try:
        while not stop.is_set():
            try:
                await _follow(endpoint, figures, stop)
                backoff = RETRY_FIRST_S
            except aiomqtt.MqttError as err:
                figures.connected, figures.error = False, str(err)
                log.warning("broker bridge: %s; again in %.0f s", err, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(RETRY_MAX_S, backoff * 2)
    finally:
        served.stop()


async def _follow(endpoint: MqttEndpoint, figures: SysFigures, stop: asyncio.Event) -> None:
    async with aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        tls_params=endpoint.tls_parameters(),
        protocol=endpoint.protocol_version,
    ) as client:
        await client.subscribe(SYS_FILTER)
        figures.connected, figures.error = True, None

        async def pump() -> None:
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    figures.take(str(message.topic), message.payload)

        task = asyncio.create_task(pump())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # the link ended: its error
        finally:
            for t in (task, stopped):
                t.cancel()
            await asyncio.gather(task, stopped, return_exceptions=True)
            figures.connected = False


def main() -> None:
    from ioc.configs import require_mqtt
    from ioc.settings import Settings

    logging.basicConfig(level=logging.INFO)
    s = Settings()
    endpoint = MqttEndpoint.parse(require_mqtt(s), protocol=s.mqtt.protocol)
    asyncio.run(run_bridge(endpoint, s.mqtt.metrics_address, s.mqtt.metrics_port))


if __name__ == "__main__":
    main()
