"""The MQTT topic grammar, in one place: ``{root}/{kind}/{device_id}/{channel}``.

``root`` is ``ioc/v1`` in production. Tests give each run its own root (``t1234/ioc/v1``) so
they can share one broker. Nothing else in the code base builds or parses topic strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.kinds import Channel, Kind

DEFAULT_ROOT = "ioc/v1"
COMMANDS = "commands"
ALERTS = "alerts"
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHARED_GROUP = "ioc-ingest"
_KINDS = frozenset(k.value for k in Kind)
# One topic level of an alert topic: no separators or wildcards.
ALERT_PART_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    kind: Kind
    device_id: str
    channel: Channel


class TopicError(ValueError):
    """A topic that does not follow the grammar; ``reason`` is a reject reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Topics:
    root: str = DEFAULT_ROOT

    @classmethod
    def under(cls, prefix: str) -> Topics:
        """The production grammar below ``prefix``: a test run's or a bench's own tree."""
        return cls(f"{prefix}/{DEFAULT_ROOT}")

    def device(self, kind: Kind, device_id: str, channel: Channel) -> str:
        if not DEVICE_ID_PATTERN.match(device_id):
            raise ValueError(f"device id {device_id!r} does not match {DEVICE_ID_PATTERN.pattern}")
        return f"{self.root}/{kind.value}/{device_id}/{channel.value}"

    def device_tree(self, kind: Kind, device_id: str) -> str:
        """Filter of every topic one device may publish to (a broker ACL entry)."""
        return f"{self.device(kind, device_id, Channel.META).rsplit('/', 1)[0]}/#"

    def commands(self, kind: Kind, device_id: str) -> str:
        """Filter of the commands a device may receive: one level deeper than the device
        grammar (``{root}/{kind}/{id}/commands/...``); the ingester sees them (it subscribes
        to the whole root) and passes them by as outbound (``is_outbound``)."""
        return f"{self.device_tree(kind, device_id)[:-2]}/{COMMANDS}/#"

    def everything(self) -> str:
        """Filter of every topic under the root: the ingester's subscription, so that a topic
        outside the grammar is seen and rejected rather than silently never delivered."""
        return f"{self.root}/#"

    def shared_everything(self, group: str = SHARED_GROUP) -> str:
        return f"$share/{group}/{self.everything()}"

    def alert(self, severity: str, rule: str, subject: str) -> str:
        """Where an alert's transitions go: ``{root}/alerts/{severity}/{rule}/{subject}``."""
        for name, part in (("severity", severity), ("rule", rule), ("subject", subject)):
            if not ALERT_PART_PATTERN.match(part):
                raise ValueError(f"alert {name} {part!r} is not a topic level")
        return f"{self.root}/{ALERTS}/{severity}/{rule}/{subject}"

    def all_alerts(self) -> str:
        return f"{self.root}/{ALERTS}/#"

    def is_outbound(self, topic: str) -> bool:
        """A topic the service itself publishes on (alerts, commands to devices): under the
        root, but not a device's input."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return False
        parts = topic[len(prefix) :].split("/")
        if parts[0] == ALERTS:
            return True
        return len(parts) >= 3 and parts[2] == COMMANDS and parts[0] in _KINDS

    def parse(self, topic: str) -> DeviceTopic:
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            raise TopicError("bad_topic", f"topic {topic!r} is not under {self.root!r}")
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 3:
            raise TopicError("bad_topic", f"topic {topic!r} is not {self.root}/kind/id/channel")
        kind_s, device_id, channel_s = parts
        try:
            kind = Kind(kind_s)
        except ValueError:
            raise TopicError("unknown_kind", f"unknown device kind {kind_s!r}") from None
        try:
            channel = Channel(channel_s)
        except ValueError:
            raise TopicError("bad_topic", f"unknown channel {channel_s!r}") from None
        if not DEVICE_ID_PATTERN.match(device_id):
            raise TopicError("bad_topic", f"device id {device_id!r} is not a valid id")
        return DeviceTopic(kind, device_id, channel)
