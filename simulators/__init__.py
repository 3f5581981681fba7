"""Simulated devices: real MQTT clients that play the province's equipment.

They talk to the broker only, like real devices, and import nothing of ours but ``devices``
(the contract) and ``seeds`` (the scenario).
"""

from devices.endpoint import MqttEndpoint
from simulators.clock import SimClock
from simulators.device import Counters, DeviceSpec, SimulatedDevice
from simulators.fleet import Fleet, province_devices, run_fleet
from simulators.values import DeviceCondition, ReadingSource, reading_source

__all__ = [
    "Counters",
    "DeviceCondition",
    "DeviceSpec",
    "Fleet",
    "MqttEndpoint",
    "ReadingSource",
    "SimClock",
    "SimulatedDevice",
    "province_devices",
    "reading_source",
    "run_fleet",
]
