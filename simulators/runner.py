"""Runs a scenario :class:`~simulators.scenarios.Plan`: the fleet comes up, then each event
happens at its simulated time (``at / speed`` real seconds after the fleet is connected).

The timeline starts once every device is connected (or after ``connect_timeout_s``, with a
warning), so an event at ``0s`` finds the whole fleet there. Returns what it applied and when.

The timeline's end need not be the fleet's: a rehearsal stops its devices there, but a fleet
that a live stack watches (``ioc up --scenario``) keeps running as the timeline left it, with
the rest of the province (``beside``) that no event touches. Stopping every device at the end
publishes a retained ``offline`` for each, which an operator's map shows as a blackout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from devices.endpoint import MqttEndpoint
from devices.topics import Topics
from seeds import load_scenario
from simulators.clock import SimClock
from simulators.events import EVENTS, Context
from simulators.fleet import DEFAULT_PROGRESS_EVERY_S, Fleet
from simulators.model import DeviceSpec
from simulators.probes import RadioScene, probe_values
from simulators.scenarios import Action, Plan

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Applied:
    action: Action
    due_s: float  # real seconds after the timeline's start
    applied_s: float


@dataclass(slots=True)
class RunLog:
    """What a run did: when its timeline started (event loop time) and each event applied."""

    started: float = 0.0
    applied: list[Applied] = field(default_factory=list)


async def run_plan(
    plan: Plan,
    endpoint: MqttEndpoint,
    *,
    topics: Topics | None = None,
    speed: float | None = None,
    only_involved: bool = False,
    report: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None,
    gateway_size: int = 0,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    probes: bool = False,
    beside: Iterable[DeviceSpec] = (),
    keep_running: bool = False,
) -> RunLog:
    """Run ``plan`` to its end (or until ``stop_event``); the fleet stops cleanly either way.

    ``beside``: more devices in the same fleet, on the same clock, that no event touches (those
    of the plan's fleet among them are not run twice). ``keep_running``: at the timeline's end
    the fleet goes on as it is until ``stop_event``, instead of stopping there.
    """
    speed = speed or plan.speed
    say = report or (lambda line: log.info("%s", line))
    stop_event = stop_event or asyncio.Event()
    devices: list[DeviceSpec] = list(plan.involved() if only_involved else plan.devices)
    ids = {d.device_id for d in devices}
    devices += [d for d in beside if d.device_id not in ids]
    sources = None
    if probes:  # the scenario's drive-test probes, measuring this run's towers
        scenario = load_scenario()
        sources = probe_values(scenario, RadioScene(scenario))
        devices += [d for d in scenario.devices() if d.device_id in sources]
    clock = SimClock(speed=speed, start=plan.start_at())
    fleet = Fleet(
        devices,
        endpoint,
        topics=topics,
        clock=clock,
        gateway_size=gateway_size,
        interval_s=plan.interval_s,
        probes=sources,
    )
    say(f"scenario {plan.name!r}: {len(fleet)} devices, {len(plan.actions)} events, ×{speed:g}")
    run = RunLog()
    fleet.start()
    try:
        await _connected(fleet, say, connect_timeout_s, stop_event)
        loop = asyncio.get_running_loop()
        t0 = run.started = loop.time()
        context = Context(speed=speed, rng=random.Random(str(plan.path)))
        progress = asyncio.create_task(_progress(fleet, say, progress_every_s))
        try:
            for action in plan.actions:
                due = action.at_s / speed
                if await _wait(stop_event, t0 + due):
                    return run
                _apply(fleet, action, context)
                run.applied.append(Applied(action, due, loop.time() - t0))
                say(_describe(action))
            if not await _wait(stop_event, t0 + plan.duration_s / speed) and keep_running:
                say(f"scenario {plan.name!r}: timeline over; the fleet keeps running")
                await stop_event.wait()
        finally:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
    finally:
        await asyncio.shield(fleet.stop())
        say(fleet.progress_line())
    say(f"scenario {plan.name!r} done: {len(run.applied)} events applied")
    return run


def _apply(fleet: Fleet, action: Action, context: Context) -> None:
    effect = EVENTS[action.event].effect
    for device_id in action.device_ids:
        model = fleet.models.get(device_id)
        if model is None:  # a quick run that left it out
            continue
        effect(model, action.params, context)
        fleet.poke(device_id)


def _describe(action: Action) -> str:
    h, rest = divmod(int(action.at_s), 3600)
    m, s = divmod(rest, 60)
    ids = action.device_ids
    who = ids[0] if len(ids) == 1 else f"{len(ids)} devices"
    params = ", ".join(f"{k}={v}" for k, v in action.params.items() if k != "reasons")
    return f"scenario +{h:02d}:{m:02d}:{s:02d} {action.event} {who}" + (
        f" ({params})" if params else ""
    )


async def _wait(stop_event: asyncio.Event, until: float) -> bool:
    """Sleep until loop time ``until``; True when ``stop_event`` came first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(until):
            await stop_event.wait()
            return True
    return False


async def _connected(
    fleet: Fleet, say: Callable[[str], None], timeout_s: float, stop_event: asyncio.Event
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while fleet.counters.connected < len(fleet) and not stop_event.is_set():
        if loop.time() > deadline:
            say(f"scenario: starting with {fleet.counters.connected}/{len(fleet)} connected")
            return
        await asyncio.sleep(0.1)


async def _progress(fleet: Fleet, say: Callable[[str], None], every_s: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before, t = fleet.counters.published, loop.time()
        await asyncio.sleep(every_s)
        say(fleet.progress_line((fleet.counters.published - before) / (loop.time() - t)))
