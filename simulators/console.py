"""One device by hand: a field engineer changes its state with typed commands, live.

The commands set the device's condition (or faults) and wake its link; what it then publishes
is printed by whoever observes the link (``ioc simulate device`` prints every message).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

from devices.codec import RejectReason
from devices.kinds import Kind, PowerSource
from simulators.device import SimulatedDevice
from simulators.events import duration_s
from simulators.outbox import Outgoing

HELP = """commands:
  down | up                 power off (the broker publishes the will) | power on, reconnect
  battery PCT | mains       BTS on battery at PCT % (dark when flat) | back on mains
  sector N off|on           BTS sector N off air | on air
  backhaul off|on           BTS backhaul (fibre, microwave) lost | back
  tamper [off]              camera covered | clear
  video off|on              camera stream lost | back
  uplink off|on             broadband uplink lost | back
  network off|on            cut the device off the broker (it buffers) | reconnect it
  send [N]                  N readings now (default 1)
  skew OFFSET               the device's clock OFFSET wrong (+2h, -10m, 0s)
  malformed [REASON ...]    one broken message per reject reason (default: all)
  status                    what the device is now
  help | quit"""
MAX_SHOWN = 400  # characters of a payload printed


class CommandError(ValueError):
    """A command the console does not understand; the message says what it expected."""


def _on_off(words: list[str], what: str) -> bool:
    if len(words) != 1 or words[0] not in ("on", "off"):
        raise CommandError(f"{what} takes on or off")
    return words[0] == "on"


# verb: the kind it is for, the condition's flag it sets, how it reads (off, on)
_SWITCHES: dict[str, tuple[Kind, str, tuple[str, str]]] = {
    "backhaul": (Kind.BTS, "backhaul_up", ("down", "up")),
    "video": (Kind.CAMERA, "video_online", ("off", "on")),
    "uplink": (Kind.BROADBAND, "uplink_up", ("down", "up")),
}


def _needs(device: SimulatedDevice, kind: Kind, command: str) -> None:
    if device.kind is not kind:
        raise CommandError(f"{command} is for {kind.value} devices; this is a {device.kind.value}")


def apply_command(device: SimulatedDevice, line: str) -> str:
    """Carry out one command line; return what changed (raises :class:`CommandError`)."""
    words = line.split()
    if not words:
        return ""
    verb, args = words[0].lower(), words[1:]
    c = device.condition
    match verb:
        case "down" | "up":
            c.online = verb == "up"
            done = "powered on" if c.online else "powered off: the broker will publish the will"
        case "battery":
            _needs(device, Kind.BTS, verb)
            try:
                pct = float(args[0]) if len(args) == 1 else -1.0
            except ValueError:
                pct = -1.0
            if not 0 <= pct <= 100:
                raise CommandError("battery takes a charge in % (0-100), e.g. battery 20")
            c.power_source, c.battery_pct = PowerSource.BATTERY, pct
            done = f"on battery at {pct:g} %"
        case "mains":
            c.power_source, c.online = PowerSource.MAINS, True
            done = "on mains"
        case "sector":
            _needs(device, Kind.BTS, verb)
            sectors = {int(s["sector"]) for s in device.model.meta.get("sectors", [])}
            if len(args) != 2 or not args[0].isdigit() or int(args[0]) not in sectors:
                raise CommandError(f"sector takes a number ({sorted(sectors)}) and on or off")
            n = int(args[0])
            if _on_off(args[1:], "sector N"):
                c.sectors_down.discard(n)
            else:
                c.sectors_down.add(n)
            done = f"sector {n} {'on' if n not in c.sectors_down else 'off'} air"
        case "backhaul" | "video" | "uplink":
            kind, field, shown = _SWITCHES[verb]
            _needs(device, kind, verb)
            up = _on_off(args, verb)
            setattr(c, field, up)
            done = f"{verb} {shown[up]}"
        case "tamper":
            _needs(device, Kind.CAMERA, verb)
            c.tamper = args != ["off"]
            done = "tampered with" if c.tamper else "tamper cleared"
        case "network":
            c.reachable = _on_off(args, verb)
            done = "reachable" if c.reachable else "cut off from the broker: buffering readings"
        case "send":
            n = int(args[0]) if len(args) == 1 and args[0].isdigit() else 1
            device.model.burst(n)
            done = f"{n} reading{'s' if n > 1 else ''} queued"
        case "skew":
            try:
                device.model.faults.skew_s = duration_s(args[0] if args else "", signed=True)
            except ValueError as err:
                raise CommandError(f"skew takes an offset like +2h or -10m: {err}") from None
            done = f"clock {device.model.faults.skew_s:+g} s off"
        case "malformed":
            try:
                reasons = [RejectReason(a) for a in args] or list(RejectReason)
            except ValueError:
                known = ", ".join(r.value for r in RejectReason)
                raise CommandError(f"malformed takes reject reasons: {known}") from None
            device.model.malformed(reasons)
            done = f"{len(reasons)} broken message{'s' if len(reasons) > 1 else ''} queued"
        case "status":
            return describe(device)
        case "help" | "?":
            return HELP
        case _:
            raise CommandError(f"unknown command {verb!r} (help lists them)")
    device.poke()
    return done


def describe(device: SimulatedDevice) -> str:
    c = device.condition
    link = "connected" if device.connected else "not connected"
    parts = [
        f"{device.kind.value} {device.device_id}: {link}",
        "powered" if c.online else "dark",
        f"next seq {device.seq}",
        f"{len(device.model.outbox)} waiting",
    ]
    if not c.reachable:
        parts.append("cut off from the broker")
    if device.kind is Kind.BTS:
        parts.append(f"{c.power_source.value} {c.battery_pct:.0f} %")
        if c.sectors_down:
            parts.append(f"sectors off air {sorted(c.sectors_down)}")
    return ", ".join(parts)


def format_published(item: Outgoing) -> str:
    payload = item.payload.decode("utf-8", errors="replace")
    if len(payload) > MAX_SHOWN:
        payload = payload[:MAX_SHOWN] + f"… ({len(item.payload)} bytes)"
    return f"→ {item.topic}{' (retained)' if item.retain else ''} {payload}"


def read_stdin_into(queue: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Feed stdin's lines into ``queue`` (None at end of input) from a daemon thread.

    A thread, not the event loop's reader: a terminal's stdin shares its file description
    with stdout, and the loop would make both non-blocking.
    """

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="console-stdin", daemon=True).start()


async def run_console(
    device: SimulatedDevice, lines: asyncio.Queue[str | None], say: Callable[[str], None]
) -> None:
    """Apply commands from ``lines`` until ``quit`` or the end of input."""
    while (line := await lines.get()) is not None:
        if line.strip().lower() in ("quit", "exit"):
            return
        try:
            reply = apply_command(device, line)
        except CommandError as err:
            reply = f"? {err}"
        if reply:
            say(reply)
