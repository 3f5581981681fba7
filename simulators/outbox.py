"""Store-and-forward: what a device has measured but the broker has not yet acknowledged.

Readings wait here in the order they were made, with the timestamps they were made at, until
the broker acknowledges them (QoS 1). The box is bounded like a real device's flash: when it is
full the oldest message is dropped, and counted. A backlog of plain readings on one topic goes
out as JSON arrays (the contract allows a list of readings), so a device back from a long outage
catches up in a few messages instead of hundreds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

DEFAULT_LIMIT = 720  # 12 h of one reading a minute
MAX_BATCH = 50  # readings in one catch-up message


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    readings: int = 1  # how many readings it carries (0: a deliberately broken message)
    batchable: bool = True  # False: must go out as a message of its own (bursts, duplicates)
    retain: bool = False


class Outbox:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"outbox limit must be at least 1, not {limit}")
        self.limit = limit
        self.dropped = 0  # readings lost to a full box, oldest first
        self._items: deque[Outgoing] = deque()
        self._in_flight = 0  # head items handed out by peek() and not yet committed

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        if len(self._items) >= self.limit:
            # Drop the oldest item that is not on its way to the broker right now.
            if self._in_flight < len(self._items):
                self.dropped += self._items[self._in_flight].readings
                del self._items[self._in_flight]
            else:
                self.dropped += item.readings
                return
        self._items.append(item)

    def peek(self) -> tuple[Outgoing, int] | None:
        """The next message to send and how many queued items it covers; None when empty.

        Consecutive batchable readings on the head's topic are joined into one JSON array.
        """
        if not self._items:
            return None
        head = self._items[0]
        parts = [head.payload]
        if head.batchable:
            for item in islice(self._items, 1, MAX_BATCH):
                if not item.batchable or item.topic != head.topic:
                    break
                parts.append(item.payload)
        self._in_flight = len(parts)
        if len(parts) == 1:
            return head, 1
        joined = b"[" + b",".join(parts) + b"]"
        return Outgoing(head.topic, joined, readings=len(parts)), len(parts)

    def commit(self, count: int) -> None:
        """The broker acknowledged the first ``count`` items: forget them."""
        for _ in range(min(count, len(self._items))):
            self._items.popleft()
        self._in_flight = 0

    def release(self) -> None:
        """The send of what peek() handed out failed: it stays, to be sent again."""
        self._in_flight = 0
