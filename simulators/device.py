"""Simulated devices on MQTT: one connection per device, or a gateway's for many.

:class:`SimulatedDevice` is a device with a connection of its own: its MQTT will makes the
broker publish ``offline`` (retained) if the link dies without a DISCONNECT, and a dark device
(no power) drops its link so the will fires. :class:`Gateway` carries many devices on one
connection (as a field gateway or a data logger would); the broker holds one will per
connection, so a gateway cannot leave per-device wills: it publishes a device's ``offline``
(reason ``unreachable``) itself when the device goes dark, and if the gateway itself dies the
server finds its devices offline by their missed intervals. What a connection does (birth,
store-and-forward, reconnect) is :class:`simulators.link.Link`.

Under acceleration the birth record announces the *real* interval (``interval_s / speed``,
rounded up, at least 1 s), so the server's liveness check holds for simulated devices too.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any, TypedDict, Unpack

from devices.endpoint import MqttEndpoint
from simulators.link import Counters, Link, Observer
from simulators.model import DeviceModel, DeviceSpec, ModelOptions
from simulators.values import DeviceCondition


class LinkOptions(TypedDict, total=False):
    """What a device or a gateway passes on to its :class:`Link` (the defaults are Link's)."""

    counters: Counters | None
    connect_gate: asyncio.Semaphore | None
    keepalive_s: int
    observer: Observer | None


class SimulatedDevice(Link):
    """One device on a connection of its own, with its will."""

    def __init__(
        self,
        spec: DeviceSpec,
        endpoint: MqttEndpoint,
        *,
        client_id: str | None = None,
        link: LinkOptions | None = None,
        **model: Unpack[ModelOptions],
    ) -> None:
        self.model = DeviceModel(spec, **model)
        super().__init__(
            [self.model],
            endpoint,
            client_id=client_id or f"sim-{spec.device_id}-{secrets.token_hex(4)}",
            gateway=False,
            **(link or {}),
        )
        self.kind = self.model.kind
        self.device_id = self.model.device_id

    @property
    def condition(self) -> DeviceCondition:
        return self.model.condition

    @property
    def seq(self) -> int:
        return self.model.seq

    def birth_record(self) -> dict[str, Any]:
        return self.model.birth_record()


class Gateway(Link):
    """Many devices on one connection (no per-device wills: see the module docstring)."""

    def __init__(
        self,
        models: Sequence[DeviceModel],
        endpoint: MqttEndpoint,
        *,
        gateway_id: str,
        **link: Unpack[LinkOptions],
    ) -> None:
        super().__init__(
            models,
            endpoint,
            client_id=f"gw-{gateway_id}-{secrets.token_hex(4)}",
            gateway=True,
            **link,
        )
