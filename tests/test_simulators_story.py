"""A scenario played on a fleet that a live stack watches (``ioc up --scenario``): the rest of
the province publishes beside the scenario's devices while the timeline plays, and when the
timeline is over every device goes on publishing instead of signing off (which a map shows as
a blackout). Against the real Mosquitto."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from devices import Channel, Kind, Topics
from seeds import load_scenario
from simulators import MqttEndpoint
from simulators.runner import run_plan
from simulators.scenarios import load_plan
from tests.support.polling import wait_until
from tests.support.simulated import Watcher, json_of, watching

QUY_NHON = 540
SPEED = 60.0  # one simulated minute a real second


def _plan(tmp_path: Path, tower: str) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(
        f"name: an outage\nfleet:\n  districts: [Quy Nhơn]\nevents:\n"
        f"  - at: 1m\n    event: down\n    device: {tower}\n"
        f"  - at: 2m\n    event: up\n    device: {tower}\n",
        encoding="utf-8",
    )
    return path


def _telemetry_after(live: Watcher, start: int, kind: Kind, device_id: str) -> int:
    topic = live.topics.device(kind, device_id, Channel.TELEMETRY)
    return sum(1 for s in live.seen[start:] if s.topic == topic)


def _states_after(live: Watcher, start: int, kind: Kind, device_id: str) -> list[str]:
    topic = live.topics.device(kind, device_id, Channel.STATUS)
    return [json_of(s)["state"] for s in live.seen[start:] if s.topic == topic]


async def test_the_fleet_keeps_running_after_the_timeline_and_the_rest_runs_beside(
    tmp_path: Path, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    devices = list(load_scenario().devices())
    towers = [d for d in devices if d.kind is Kind.BTS]
    tower, neighbour = [d for d in towers if d.meta["district_code"] == QUY_NHON][:2]
    other = next(d for d in towers if d.meta["district_code"] != QUY_NHON)  # not in the file
    plan = load_plan(_plan(tmp_path, tower.device_id))
    # Two of the file's devices, one beside them, each reading five times a real second; the
    # timeline ends a simulated minute after its last event.
    plan = replace(plan, devices=(tower, neighbour), interval_s=SPEED / 5, duration_s=180.0)
    stop = asyncio.Event()
    marks: dict[str, int] = {}
    async with watching(mqtt_url, mqtt_protocol, topics) as live:

        def report(line: str) -> None:  # where in what the broker delivered each step fell
            for step in ("down", "up", "timeline over"):
                if f" {step} " in f" {line.replace(';', ' ')} " and step not in marks:
                    marks[step] = len(live.seen)

        endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
        played = asyncio.create_task(
            run_plan(
                plan,
                endpoint,
                topics=topics,
                speed=SPEED,
                report=report,
                stop_event=stop,
                beside=[other, tower],
                keep_running=True,
            )
        )
        try:
            await wait_until(lambda: "timeline over" in marks or played.done(), 60)
            assert not played.done(), "the run ended with its timeline"
            over = marks["timeline over"]
            # During the timeline the device beside it published, between the two events.
            during = [
                s for s in live.seen[marks["down"] : marks["up"]] if other.device_id in s.topic
            ]
            assert any(s.topic.endswith("/telemetry") for s in during), during
            # After it, every device goes on: readings keep coming, and none signs off.
            await live.until(
                lambda: all(
                    _telemetry_after(live, over, Kind.BTS, d.device_id) >= 3
                    for d in (tower, neighbour, other)
                )
            )
            for d in (tower, neighbour, other):
                assert "offline" not in _states_after(live, over, Kind.BTS, d.device_id)
            assert not played.done()
        finally:
            stop.set()
            run = await asyncio.wait_for(played, 30)
        assert [a.action.event for a in run.applied] == ["down", "up"]
        # Stopped by its owner, each device signs off once: the tower beside is not run twice.
        await live.until(
            lambda: all(
                _states_after(live, over, Kind.BTS, d.device_id) == ["offline"]
                for d in (tower, neighbour, other)
            )
        )
