"""``ioc simulate``: the province's fleet, scenario files, one device by hand, load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from devices.kinds import Kind
from ioc.cli_common import clear_errors, load_settings, setup_logging
from ioc.configs import require_mqtt

simulate_app: typer.Typer = typer.Typer(
    help="Simulated devices (they speak MQTT only).", no_args_is_help=True
)

Url = Annotated[str | None, typer.Option(help="broker, mqtt[s]://host:port (default IOC_MQTT_URL)")]
Username = Annotated[str | None, typer.Option(help="broker user name")]
Password = Annotated[str | None, typer.Option(help="broker password (IOC_SIMULATE_PASSWORD)")]
CaFile = Annotated[
    Path | None, typer.Option(help="PEM file of the CAs to trust (mqtts:// URLs only)")
]
Speed = Annotated[float | None, typer.Option(help="time acceleration (60 = 1 min/s)")]
Probes = Annotated[
    bool, typer.Option("--probes", help="drive-test probes too, measuring these towers")
]
Gateway = Annotated[
    int, typer.Option(help="devices per MQTT connection (0: one each, with its own will)")
]


def _endpoint(
    url: str | None,
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
) -> Any:
    from devices.endpoint import MqttEndpoint

    settings = load_settings()
    url = url or require_mqtt(settings)
    try:
        return MqttEndpoint.parse(
            url,
            protocol=settings.mqtt.protocol,
            username=username,
            password=password,
            ca_file=str(ca_file) if ca_file else None,
        )
    except ValueError as err:
        raise ValueError(f"--url/--ca-file: {err}") from None


def _echo_err(line: str) -> None:
    typer.echo(line, err=True)


@simulate_app.command("fleet")
@clear_errors
def simulate_fleet(
    speed: Speed = None,
    limit: Annotated[int | None, typer.Option(help="only the first N devices")] = None,
    gateway: Gateway = 0,
    probes: Probes = False,
    url: Url = None,
) -> None:
    """Bring up the province's simulated fleet (Ctrl-C: every device signs off cleanly)."""
    from itertools import islice

    from simulators.fleet import province_devices, run_fleet

    setup_logging()
    settings = load_settings()
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, not {limit}")
    everything = province_devices(settings.province)
    devices = list(islice((d for d in everything if d.kind is not Kind.PROBE), limit))
    sources = _probe_sources(settings.province) if probes else None
    if sources:  # whatever the limit, every probe drives
        devices += [d for d in everything if d.device_id in sources]
    asyncio.run(
        run_fleet(
            devices,
            endpoint=_endpoint(url),
            topic_root=settings.topic_root,
            speed=speed or settings.simulate.speed,
            on_progress=_echo_err,
            gateway_size=gateway,
            probes=sources,
        )
    )


@simulate_app.command("probes")
@clear_errors
def simulate_probes(speed: Speed = None, url: Url = None) -> None:
    """Only the drive-test probes, on their routes, every tower on air."""
    from simulators.fleet import province_devices, run_fleet

    setup_logging()
    settings = load_settings()
    sources = _probe_sources(settings.province)
    asyncio.run(
        run_fleet(
            [d for d in province_devices(settings.province) if d.device_id in sources],
            endpoint=_endpoint(url),
            topic_root=settings.topic_root,
            speed=speed or settings.simulate.speed,
            on_progress=_echo_err,
            probes=sources,
        )
    )


def _probe_sources(province: str) -> Any:
    """Each probe on its own province's roads and towers."""
    from seeds import load_scenario
    from seeds.national import province_codes
    from simulators.probes import RadioScene, probe_values

    sources: dict[str, Any] = {}
    for code in province_codes(province):
        scenario = load_scenario(code)
        sources |= probe_values(scenario, RadioScene(scenario))
    return sources


@simulate_app.command("run")
@clear_errors
def simulate_run(
    file: Annotated[Path, typer.Argument(help="scenario file (scenarios/*.yaml)")],
    speed: Speed = None,
    only_involved: Annotated[
        bool, typer.Option("--only-involved", help="run only the devices some event touches")
    ] = False,
    sample: Annotated[
        int | None, typer.Option(help="at most N devices per event (a quick rehearsal)")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="read and check the file; publish nothing")
    ] = False,
    gateway: Gateway = 0,
    probes: Probes = False,
    province: Annotated[
        bool, typer.Option("--province", help="the rest of the province runs beside it")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(help="with --province: at most N devices beside the scenario's")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="every device reports this often (simulated, e.g. 2m)")
    ] = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="the fleet goes on after the timeline")
    ] = False,
    url: Url = None,
) -> None:
    """Play a scenario file: timed events over the fleet (see scenarios/README.md)."""
    from dataclasses import replace
    from itertools import islice

    from devices.topics import Topics
    from simulators.events import duration_s
    from simulators.fleet import province_devices
    from simulators.runner import run_plan
    from simulators.scenarios import load_plan

    plan = load_plan(file)  # every error is file:line: reason, before anything is published
    if sample is not None:
        if sample < 1:
            raise ValueError(f"--sample must be at least 1, not {sample}")
        plan = plan.sampled(sample)
    if limit is not None and (limit < 1 or not province):
        raise ValueError(f"--limit takes --province and at least 1, not {limit}")
    if interval is not None:
        try:
            seconds = duration_s(interval)
        except ValueError as err:
            raise ValueError(f"--interval: {err}") from None
        if seconds < 1:
            raise ValueError(f"--interval must be at least 1 s, not {interval}")
        plan = replace(plan, interval_s=seconds)
    beside = []
    if province:
        ids = {d.device_id for d in plan.devices}
        others = (d for d in province_devices(load_settings().province) if d.device_id not in ids)
        beside = list(islice((d for d in others if d.kind is not Kind.PROBE), limit))
    devices = len(plan.involved() if only_involved else plan.devices) + len(beside)
    if check:
        typer.echo(
            f"{file}: {plan.name!r} is valid: {devices} devices, {len(plan.actions)} events, "
            f"{plan.duration_s / 3600:g} h simulated at ×{speed or plan.speed:g}"
        )
        return
    setup_logging()
    endpoint = _endpoint(url)
    asyncio.run(
        run_plan(
            plan,
            endpoint,
            topics=Topics(load_settings().topic_root),
            speed=speed,
            only_involved=only_involved,
            report=_echo_err,
            gateway_size=gateway,
            probes=probes,
            beside=beside,
            keep_running=keep_running,
        )
    )


@simulate_app.command("device")
@clear_errors
def simulate_device(
    kind: Annotated[Kind, typer.Argument(help="bts, camera or broadband")],
    device_id: Annotated[str, typer.Argument(help="a device of the scenario, e.g. BTS-VTL-0001")],
    url: Url = None,
    username: Username = None,
    password: Password = None,
    ca_file: CaFile = None,
    interval: Annotated[float, typer.Option(help="seconds between its readings")] = 10.0,
    speed: Annotated[float, typer.Option(help="time acceleration of its daily patterns")] = 1.0,
) -> None:
    """Run one device and change its state live (type `help`); prints all it publishes."""
    from devices.topics import Topics
    from simulators.clock import SimClock
    from simulators.console import HELP, format_published, read_stdin_into, run_console
    from simulators.device import SimulatedDevice
    from simulators.fleet import province_devices

    by_id = {d.device_id: d for d in province_devices(load_settings().province)}
    spec = by_id.get(device_id)
    if spec is None or spec.kind is not kind:
        example = next(d.device_id for d in by_id.values() if d.kind is kind)
        raise ValueError(f"no {kind.value} {device_id!r} in the scenario (e.g. {example})")
    if kind is Kind.PROBE:
        raise ValueError("probes drive routes: run them with `ioc simulate probes`")
    if interval <= 0:
        raise ValueError(f"--interval must be positive, not {interval}")
    if speed <= 0:
        raise ValueError(f"--speed must be positive, not {speed}")
    endpoint = _endpoint(url, username, password or load_settings().simulate.password, ca_file)

    def say(line: str) -> None:
        typer.echo(line)

    async def main() -> None:
        device = SimulatedDevice(
            spec,
            endpoint,
            topics=Topics(load_settings().topic_root),
            clock=SimClock(speed=speed),
            interval_s=interval * speed,  # real seconds → simulated
            link={"observer": lambda item: say(format_published(item))},
        )
        device.on_link_event = lambda line: say(f"# {line}")
        scheme = "mqtts" if endpoint.tls else "mqtt"
        say(f"# {kind.value} {device_id} on {scheme}://{endpoint.host}:{endpoint.port}")
        say(HELP)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        read_stdin_into(lines, asyncio.get_running_loop())
        device.start()
        try:
            await run_console(device, lines, say)
        finally:
            await device.stop()
            say("# stopped: offline published")

    asyncio.run(main())


@simulate_app.command("load")
@clear_errors
def simulate_load(
    devices: Annotated[int, typer.Option(help="scenario devices whose readings are sent")] = 100,
    rate: Annotated[float, typer.Option(help="messages/s in all; 0: as fast as it takes")] = 0.0,
    messages: Annotated[int | None, typer.Option(help="stop after N messages")] = None,
    duration: Annotated[float | None, typer.Option(help="stop after S seconds")] = None,
    connections: Annotated[
        int | None, typer.Option(help="MQTT connections (default: one per device)")
    ] = None,
    qos: Annotated[int, typer.Option(help="0 or 1")] = 1,
    window: Annotated[int, typer.Option(help="QoS 1 messages in flight per connection")] = 100,
    url: Url = None,
    username: Username = None,
    password: Password = None,
    ca_file: CaFile = None,
) -> None:
    """Publish real readings as fast as asked (or as the broker takes); print the rate.

    The last line on stdout is a JSON object (messages, elapsed_s, msgs_per_s, …).
    """
    from devices.topics import Topics
    from simulators.load import run_load
    from simulators.values import SOURCES

    if messages is None and duration is None:
        messages = 100_000
    specs = [d for d in _scenario_devices() if d.kind in SOURCES]
    if not 1 <= devices <= len(specs):
        raise ValueError(f"--devices must be between 1 and {len(specs)}, not {devices}")
    endpoint = _endpoint(url, username, password or load_settings().simulate.password, ca_file)
    result = asyncio.run(
        run_load(
            endpoint,
            specs[:devices],
            messages=messages,
            duration_s=duration,
            topics=Topics(load_settings().topic_root),
            connections=connections,
            rate=rate,
            qos=qos,
            window=window,
            on_progress=_echo_err,
        )
    )
    _echo_err(
        f"load: {result.messages} messages in {result.elapsed_s:.1f} s: "
        f"{result.msgs_per_s:.0f} msg/s (QoS {qos}, {result.connections} connections, "
        f"{result.payload_bytes}-byte payloads)"
    )
    typer.echo(json.dumps(result.as_dict()))


def _scenario_devices() -> list[Any]:
    from simulators.fleet import province_devices

    return province_devices(load_settings().province)
