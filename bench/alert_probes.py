"""The instruments of ``bench/alerts.py``: a watcher timestamping wills and alerts as they
arrive on MQTT, the database's notifications timestamped as they reach the bench, the victim
tower whose link is cut without DISCONNECT, and the percentiles and stage shares reported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import psycopg

from devices.codec import encode
from devices.endpoint import MqttEndpoint
from devices.kinds import Channel, Kind
from devices.topics import Topics


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 4)


class Watcher:
    """One MQTT client that timestamps wills and alert openings as they arrive."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.wills: dict[str, list[float]] = {}
        self.opened: list[tuple[int, float]] = []  # (alert id, when) of the measured rule
        self.resolved: set[int] = set()  # alert ids
        self.arrived = asyncio.Event()

    async def run(self, client: aiomqtt.Client, status_of: dict[str, str]) -> None:
        async for m in client.messages:
            now = time.monotonic()
            raw = bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else b""
            if not raw:
                continue
            doc = json.loads(raw)
            device = status_of.get(m.topic.value)
            if device is not None:
                if doc.get("state") == "offline":
                    self.wills.setdefault(device, []).append(now)
            elif doc.get("rule") == self.rule:
                if doc.get("event") == "opened":
                    self.opened.append((doc["alert_id"], now))
                elif doc.get("event") == "resolved":
                    self.resolved.add(doc["alert_id"])
            self.arrived.set()

    def all_resolved(self) -> bool:
        return {alert_id for alert_id, _ in self.opened} <= self.resolved

    async def until(self, predicate: Any, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    self.arrived.clear()
                    await self.arrived.wait()
                return True
        return False


class Notes:
    """The database's notifications, timestamped as they reach the bench: a status change's
    commit (``ioc_coverage`` 'state', from the status_events trigger) and a coverage event's
    (``ioc_alert_inbox``, from the coverage service's connection: ``pid``)."""

    CHANNELS = ("ioc_coverage", "ioc_alert_inbox")

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, int]] = []  # (when, channel, sender's backend pid)

    async def run(self, conn: psycopg.AsyncConnection) -> None:
        async for note in conn.notifies():
            self.seen.append((time.monotonic(), note.channel, note.pid))

    def first(self, after: float, channel: str, pids: set[int] | None = None) -> float | None:
        """When the first such notification since ``after`` arrived (None: none yet)."""
        found = None
        for when, ch, pid in reversed(self.seen):  # newest first: a trial's are at the end
            if when < after:
                break
            if ch == channel and (pids is None or pid in pids):
                found = when
        return found


class Victim:
    """A tower of our own: online with a will, then its TCP link cut without DISCONNECT."""

    def __init__(self, device: Any, endpoint: MqttEndpoint, topics: Topics) -> None:
        self.device, self.endpoint, self.topics = device, endpoint, topics
        self.status_topic = topics.device(Kind.BTS, device.device_id, Channel.STATUS)
        self.client: aiomqtt.Client | None = None
        self.n = 0

    async def online(self) -> None:
        d, e = self.device, self.endpoint
        self.n += 1
        will = aiomqtt.Will(
            self.status_topic,
            encode({"device_id": d.device_id, "state": "offline", "reason": "will"}),
            qos=1,
            retain=True,
        )
        self.client = aiomqtt.Client(e.host, e.port, identifier=f"bench-{d.device_id}-{self.n}",
                                     will=will)  # fmt: skip
        await self.client.__aenter__()
        meta = self.topics.device(Kind.BTS, d.device_id, Channel.META)
        await self.client.publish(meta, encode({**d.meta, "device_id": d.device_id}), 1, True)
        status = {"device_id": d.device_id, "state": "online", "ts": datetime.now(UTC).isoformat()}
        await self.client.publish(self.status_topic, encode(status), 1, True)

    async def cut(self) -> None:
        assert self.client is not None
        client, self.client = self.client, None
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)


def stages(rows: list[dict[str, float | None]], names: list[str]) -> dict[str, Any]:
    """Per boundary: its p50 from the drop, the p50 of the stage ending there, and the stage's
    share of the summed totals (trials that saw every boundary)."""
    complete = [r for r in rows if all(r.get(n) is not None for n in names)]
    total = sum(r[names[-1]] or 0.0 for r in complete)
    out: dict[str, Any] = {}
    prev: str | None = None
    for name in names:
        spans = [(r[name] or 0.0) - ((r[prev] or 0.0) if prev else 0.0) for r in complete]
        at = [v for r in rows if (v := r.get(name)) is not None]
        out[name] = {"at_p50_s": pct(at, 0.5), "stage_p50_s": pct(spans, 0.5),
                     "share": round(sum(spans) / total, 3) if total > 0 else None}  # fmt: skip
        prev = name
    return out
