"""The device contract: kinds, metrics, topic grammar, payload codec (and, later, the radio model).

Everything that speaks to or about a device goes through this package; it imports nothing of ours.
"""

from devices.codec import (
    Codec,
    Decoded,
    MetaRecord,
    Readings,
    Record,
    Rejection,
    RejectReason,
    StatusRecord,
    encode,
)
from devices.kinds import (
    READING_CHANNEL,
    Channel,
    DeviceState,
    Kind,
    Operator,
    PowerSource,
    Technology,
)
from devices.metrics import META, READINGS, SECTOR, MetricSpec, MetricType, reading_specs
from devices.schemas import META_TYPES, READING_TYPES, Sector, StatusPayload
from devices.topics import DEFAULT_ROOT, DeviceTopic, TopicError, Topics

__all__ = [
    "DEFAULT_ROOT",
    "META",
    "META_TYPES",
    "READINGS",
    "READING_CHANNEL",
    "READING_TYPES",
    "SECTOR",
    "Channel",
    "Codec",
    "Decoded",
    "DeviceState",
    "DeviceTopic",
    "Kind",
    "MetaRecord",
    "MetricSpec",
    "MetricType",
    "Operator",
    "PowerSource",
    "Readings",
    "Record",
    "RejectReason",
    "Rejection",
    "Sector",
    "StatusPayload",
    "StatusRecord",
    "Technology",
    "TopicError",
    "Topics",
    "encode",
    "reading_specs",
]
