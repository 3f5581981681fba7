"""Closed sets of the device contract: device kinds, topic channels, operators, technologies."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    BTS = "bts"
    CAMERA = "camera"
    BROADBAND = "broadband"
    PROBE = "probe"


class Channel(StrEnum):
    META = "meta"
    STATUS = "status"
    TELEMETRY = "telemetry"
    MEASUREMENTS = "measurements"


class Operator(StrEnum):
    """The four mobile operators of Bình Định (report of 31 May 2022)."""

    VIETTEL = "viettel"
    MOBIFONE = "mobifone"
    VINAPHONE = "vinaphone"
    VIETNAMOBILE = "vietnamobile"


class Technology(StrEnum):
    G2 = "2G"
    G3 = "3G"
    G4 = "4G"


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class PowerSource(StrEnum):
    MAINS = "mains"
    BATTERY = "battery"
    GENERATOR = "generator"


# Which channel carries a kind's periodic readings: probes report measurements, the rest telemetry.
READING_CHANNEL: dict[Kind, Channel] = {
    Kind.BTS: Channel.TELEMETRY,
    Kind.CAMERA: Channel.TELEMETRY,
    Kind.BROADBAND: Channel.TELEMETRY,
    Kind.PROBE: Channel.MEASUREMENTS,
}
