"""``ioc ingest``: one ingester, N of them on the shared subscription, or their health.

The command itself is declared in ``ioc/cli.py``; this module does the work, so the shell
stays a list of commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import typer

from ingest.config import IngestConfig
from ingest.observe import JsonFormatter

log = logging.getLogger("ioc.ingest")
RESTART_DELAY_S = 1.0


def use_json_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


def run_one(config: IngestConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain: commit and ack what is held, exit 0."""
    from ingest.service import Ingester

    async def main() -> None:
        ingester = Ingester(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, ingester.request_stop)
        await ingester.run()

    asyncio.run(main())


def instance_ports(metrics_port: int | None, instances: int) -> list[int | None]:
    return [None if metrics_port is None else metrics_port + i for i in range(instances)]


def run_many(config: IngestConfig, instances: int, *, log_json: bool) -> None:
    """N ingesters as child processes on the shared subscription; restarts one that dies.

    Instance i keeps the client id ``{client_id}-{i}`` across restarts, so the broker resumes
    its session and redelivers what it had not acknowledged.
    """
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ports = instance_ports(config.metrics_port, instances)

    def start(i: int) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "ioc",
            "ingest",
            "--shared",
            "--client-id",
            f"{config.client_id}-{i + 1}",
        ]
        cmd += ["--metrics-port", str(ports[i] or 0)]
        cmd += ["--log-json"] if log_json else []
        # Its own session, as a service: a terminal's Ctrl-C reaches the children through us.
        return subprocess.Popen(cmd, start_new_session=True)

    children = [start(i) for i in range(instances)]
    log.info(
        "started %d ingesters on the shared subscription: %s",
        instances,
        ", ".join(f"{config.client_id}-{i + 1}" for i in range(instances)),
    )
    while not stopping:
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping:
                log.warning(
                    "ingester %d exited with code %d; restarting it", i + 1, child.returncode
                )
                time.sleep(RESTART_DELAY_S)
                children[i] = start(i)
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children]
    if any(codes):
        raise typer.Exit(1)


def fetch_health(address: str, port: int, timeout_s: float = 3.0) -> dict[str, Any]:
    url = f"http://{address}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as err:  # 503: it answers, and is not keeping up
        answer = json.loads(err.read())
    return answer


def print_stats(address: str, ports: list[int]) -> None:
    """One line per ingester; exit 1 when one is not keeping up, 2 when one does not answer."""
    code = 0
    for port in ports:
        try:
            h = fetch_health(address, port)
        except (OSError, ValueError) as err:
            typer.echo(f"ioc: --metrics-port {port}: no ingester answers ({err})", err=True)
            code = 2
            continue
        verdict = "keeping up" if h["keeping_up"] else "NOT keeping up"
        typer.echo(
            f"{h['client_id']} :{port} {verdict}: lag {h['lag_s']:.2f}s"
            f" (limit {h['lag_limit_s']:.0f}s), held {h['held']}/{h['window']},"
            f" received {h['received']}, stored {h['stored']},"
            f" duplicates {h['duplicates']}, rejected {sum(h['rejected'].values())},"
            f" broker {'up' if h['broker_connected'] else 'DOWN'},"
            f" database {'up' if h['database_up'] else 'DOWN'}"
        )
        if not h["keeping_up"] and code == 0:
            code = 1
    if code:
        raise typer.Exit(code)


def ingest_command(
    make_config: Callable[[], IngestConfig],
    *,
    instances: int,
    stats: bool,
    metrics_port: int,
    log_json: bool,
) -> None:
    """``metrics_port`` 0 serves no metrics; instance i of N serves on ``metrics_port + i``."""
    if instances < 1:
        raise ValueError(f"--instances must be at least 1, not {instances}")
    if not 0 <= metrics_port <= 65535 - instances:
        raise ValueError(f"--metrics-port {metrics_port} is not a usable port")
    if stats:
        if metrics_port == 0:
            raise ValueError("--stats reads the ingesters' /health: give their --metrics-port")
        print_stats("127.0.0.1", [metrics_port + i for i in range(instances)])
        return
    config = dataclasses.replace(make_config(), metrics_port=metrics_port or None)
    if log_json:
        use_json_logs()
    if instances == 1:
        run_one(config)
    else:
        run_many(config, instances, log_json=log_json)
