"""Simulated devices: real MQTT clients that play the province's equipment.

They talk to the broker only, like real devices, and import nothing of ours but ``devices``
(the contract) and ``seeds`` (the scenario).
"""

from devices.endpoint import MqttEndpoint
from simulators.clock import SimClock
from simulators.device import Gateway, SimulatedDevice
from simulators.fleet import Fleet, province_devices, run_fleet
from simulators.link import Counters, Link
from simulators.model import DeviceModel, DeviceSpec, Faults
from simulators.outbox import Outbox, Outgoing
from simulators.values import DeviceCondition, ReadingSource, reading_source

__all__ = [
    "Counters",
    "DeviceCondition",
    "DeviceModel",
    "DeviceSpec",
    "Faults",
    "Fleet",
    "Gateway",
    "Link",
    "MqttEndpoint",
    "Outbox",
    "Outgoing",
    "ReadingSource",
    "SimClock",
    "SimulatedDevice",
    "province_devices",
    "reading_source",
    "run_fleet",
]
