"""Every service observable: each one started for real on the test's database and broker, its
``/metrics`` scraped while work happens (the figures must move), its ``/health`` 503 with a
reason while its loop is stuck behind a lock or its database is gone, and 200 again after.

The Grafana dashboard shipped in deploy/grafana/ is checked against what the services really
export: every ``ioc_*`` name in its PromQL must be a sample name scraped from one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from devices import Channel, Kind, Topics, encode
from devices.endpoint import MqttEndpoint
from devices.service_http import Served
from ingest import Ingester
from ingest.observe import IngestMetrics
from ioc.broker_bridge import SysFigures, run_bridge
from ioc.brokers import free_port
from ioc.configs import coverage_config, coverage_service_config, liveness_config
from ioc.up import dashboard_command
from processing.alerts.metrics import AlertMetrics
from processing.coverage.metrics import CoverageMetrics
from processing.coverage.service import CoverageService
from processing.liveness import LivenessMetrics, run_liveness
from store import users
from store.gauges import ScrapedFigures, login_figures
from store.migrate import upgrade
from store.throttle import Throttle
from tests.support.alerting import AlertWorld, scenario_devices
from tests.support.clients import mqtt_client
from tests.support.environment import inherited_environ
from tests.support.polling import wait_until
from tests.support.procs import register_devices

ROOT = Path(__file__).parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
PROMETHEUS = ROOT / "ioc" / "config" / "prometheus.yml"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# ---- scraping ----------------------------------------------------------------------------


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; absent: 0 (a labelled series not written yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            r = await client.get(f"http://127.0.0.1:{port}/health")
        except httpx.TransportError as err:
            return 0, {"reason": f"not answering: {err}"}
    return r.status_code, r.json()


async def wait_health(port: int, status: int, reason: str = "", timeout_s: float = 30) -> None:
    seen: list[tuple[int, dict[str, Any]]] = []

    async def holds() -> bool:
        got = await health(port)
        seen[:] = [got]
        return got[0] == status and reason in str(got[1].get("reason", ""))

    await wait_until(holds, timeout_s=timeout_s, state=lambda: seen)


async def wait_metric(port: int, name: str, above: float, **labels: str) -> Samples:
    """Scrape until ``name{labels}`` exceeds ``above``; the last scrape."""
    last: list[Samples] = [{}]

    async def holds() -> bool:
        last[0] = await scrape(port)
        return value(last[0], name, **labels) > above

    await wait_until(holds, timeout_s=30, state=lambda: value(last[0], name, **labels))
    return last[0]


# ---- faults ------------------------------------------------------------------------------


def _dbname(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def _server(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = "postgres"
    return psycopg.conninfo.make_conninfo("", **info)


@contextlib.contextmanager
def database_gone(url: str) -> Iterator[None]:
    """Nobody may connect to the database, and every session on it is ended; back after."""
    name = _dbname(url)
    with psycopg.connect(_server(url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@contextlib.asynccontextmanager
async def table_locked(url: str, table: str) -> AsyncIterator[None]:
    """``table`` locked against every reader until the block ends: a loop that reads it is
    stuck, as behind a long migration or a wedged transaction. Taken without blocking the
    event loop: the service under test runs on it, and may hold a lock the LOCK waits for."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await conn.rollback()


# ---- processing (liveness) ---------------------------------------------------------------


async def test_processing_counts_its_sweeps_and_health_follows_its_loop(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, ["BTS-OBS-1", "BTS-OBS-2"])
    port = free_port()
    config = liveness_config(
        database_url=database_url, check_every_s=0.05, metrics_port=port, stale_after_s=1.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_liveness(config, stop=stop))
    try:
        await wait_health(port, 200)
        first = await scrape(port)
        assert value(first, "ioc_liveness_database_up") == 1
        assert value(first, "ioc_devices", kind="bts", state="unknown") == 2
        later = await wait_metric(port, "ioc_liveness_sweeps_total", value(first,
                                  "ioc_liveness_sweeps_total"))  # fmt: skip
        assert value(later, "ioc_liveness_sweep_seconds_count") >= value(
            later, "ioc_liveness_sweeps_total"
        )
        async with table_locked(database_url, "devices"):
            await wait_health(port, 503, "no loop pass")
        await wait_health(port, 200)
        with database_gone(database_url):
            await wait_health(port, 503, "database unavailable")
            assert value(await scrape(port), "ioc_liveness_database_up") == 0
        await wait_health(port, 200)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    # The port is given back with the service.
    assert (await health(port))[0] == 0


# ---- coverage ----------------------------------------------------------------------------


async def test_coverage_recompute_events_and_dark_villages_are_exported(
    loaded: str, ingester: Ingester, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    port = free_port()
    svc = CoverageService(
        coverage_service_config(
            database_url=loaded,
            coverage=coverage_config(resolution_m=200.0),
            sweep_s=0.2,
            metrics_port=port,
            stale_after_s=1.0,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(svc.ready.wait(), 60)
        await wait_health(port, 200)
        before = await scrape(port)
        assert value(before, "ioc_coverage_recompute_seconds_count", kind="full") == 1
        assert value(before, "ioc_coverage_recompute_seconds_count", kind="incremental") == 0
        assert value(before, "ioc_coverage_last_recompute_timestamp_seconds") > 0
        dark = value(before, "ioc_coverage_villages_dark")
        assert dark >= 1  # the scene's village "far" is a dead spot from the start
        people = value(before, "ioc_coverage_people_affected")

        status = topics.device(Kind.BTS, "M", Channel.STATUS)
        async with mqtt_client(mqtt_url, mqtt_protocol) as c:
            await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1)
        after = await wait_metric(port, "ioc_coverage_events_written_total", 0, kind="lost")
        assert value(after, "ioc_coverage_recompute_seconds_count", kind="incremental") >= 1
        # Village "mbf" (400 people, Mobifone's M only) went dark.
        assert value(after, "ioc_coverage_villages_dark") == dark + 1
        assert value(after, "ioc_coverage_people_affected") == people + 400
        assert value(after, "ioc_coverage_wakes_total") > value(before, "ioc_coverage_wakes_total")

        async with table_locked(loaded, "devices"):
            await wait_health(port, 503, "no loop pass")
        await wait_health(port, 200)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ---- alerts ------------------------------------------------------------------------------


async def test_an_alert_opening_and_its_delivery_move_the_alert_figures(
    world: AlertWorld,
) -> None:
    tower = scenario_devices(Kind.BTS, district=551)[0]
    port = free_port()
    async with (
        world.field() as field,
        world.engine(ops_hook=True, metrics_port=port, stale_after_s=1.0) as engine,
    ):
        await wait_health(port, 200)
        before = await scrape(port)
        assert value(before, "ioc_alert_database_up") == 1
        assert value(before, "ioc_alerts_open", rule="bts_offline", severity="major") == 0
        assert value(before, "ioc_alert_delivery_attempts_total", channel="webhook:ops",
                     outcome="delivered") == 0  # fmt: skip

        await field.birth(tower)
        await field.status(tower, "offline", "will")
        key = ("bts_offline", tower.device_id)

        async def raised() -> bool:
            t = engine.trackers.get(key)
            return t is not None and t.raised

        await wait_until(raised, timeout_s=30)
        world.clock.advance(61)  # past the rule's for_s
        await wait_until(lambda: len(world.hook.received) >= 1, timeout_s=30)
        after = await wait_metric(port, "ioc_alert_delivery_attempts_total", 0,
                                  channel="webhook:ops", outcome="delivered")  # fmt: skip
        assert value(after, "ioc_alerts_open", rule="bts_offline", severity="major") == 1
        assert value(after, "ioc_alert_transitions_written_total") >= 1
        assert value(after, "ioc_alert_latency_seconds_count", stage="decided") >= 1
        assert value(after, "ioc_alert_latency_seconds_count", stage="queued") >= 1
        assert value(after, "ioc_alert_latency_seconds_count", stage="delivered") >= 1
        assert ("ioc_alert_outbox_pending", frozenset({("channel", "webhook:ops")})) in after
        assert value(after, "ioc_alert_outbox_dead", channel="webhook:ops") == 0

        with database_gone(world.database_url):
            await wait_health(port, 503, "database unavailable")
            assert value(await scrape(port), "ioc_alert_database_up") == 0
        await wait_health(port, 200, timeout_s=60)  # the engine's restart pause doubles


# ---- dashboard ---------------------------------------------------------------------------


async def test_dashboard_exports_failed_logins_and_sessions_from_its_process_start(
    database_url: str,
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        upgrade(conn)
        users.add_user(conn, "admin", "admin-pass-12-long", "admin")
    port, metrics_port = free_port(), free_port()
    # The command `ioc dashboard` runs, launched through ioc.dashboard_serve.
    cmd = [sys.executable, "-m", "ioc.dashboard_serve", *dashboard_command(port)[3:]]
    env = inherited_environ(
        IOC_DATABASE_URL=database_url, IOC_DASHBOARD_METRICS_PORT=str(metrics_port)
    )
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        await wait_health(metrics_port, 200, timeout_s=60)  # no visitor has opened a page
        before = await scrape(metrics_port)
        assert value(before, "ioc_dashboard_login_failures_total") == 0
        assert value(before, "ioc_dashboard_sessions_active") == 0
        limits = Throttle(2, 20, window=_minutes(15), lockout=_minutes(15))
        with psycopg.connect(database_url, autocommit=True) as conn:
            for _ in range(2):
                assert (
                    users.login(conn, "admin", "wrong", limits=limits, address="198.51.100.7")
                    is None
                )
        after = await wait_metric(metrics_port, "ioc_dashboard_login_failures_total", 1)
        assert value(after, "ioc_dashboard_login_failures_total") == 2
        assert value(after, "ioc_dashboard_lockouts_total") == 1
        assert value(after, "ioc_dashboard_locks_active", kind="account") == 1
        with database_gone(database_url):
            await wait_health(metrics_port, 503, "database")
        await wait_health(metrics_port, 200)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# ---- the broker's $SYS bridge ------------------------------------------------------------


async def test_broker_bridge_exports_the_brokers_own_figures(
    mqtt_url: str, mqtt_protocol: int
) -> None:
    port = free_port()
    stop = asyncio.Event()
    endpoint = MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol)
    task = asyncio.create_task(run_bridge(endpoint, "127.0.0.1", port, stop=stop))
    try:
        # Mosquitto publishes $SYS every sys_interval (10 s), retained: the first may wait.
        await wait_health(port, 200, timeout_s=40)
        got = await scrape(port)
        assert value(got, "ioc_broker_connected") == 1
        # The bridge's own connection at least, once the broker has published since it came.
        clients = "$SYS/broker/clients/connected"
        await wait_metric(port, "ioc_broker_sys", 0, topic=clients)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ---- Prometheus and Grafana --------------------------------------------------------------


def _exported_names(database_url: str) -> set[str]:
    """Every sample name the services export, from their /metrics scraped over HTTP (each
    service's registry served as the service serves it, on the test's migrated database)."""
    dashboard = CollectorRegistry()
    dashboard.register(ScrapedFigures(database_url, "ioc_dashboard", login_figures))
    liveness = LivenessMetrics(liveness_config(database_url=database_url))
    registries = [
        IngestMetrics().registry,
        liveness.registry,
        CoverageMetrics(60.0, lambda: 0).registry,
        AlertMetrics(database_url, 30.0).registry,
        dashboard,
        _bridge_registry(),
    ]
    names: set[str] = set()
    for registry in registries:
        served = Served()
        served.start("127.0.0.1", free_port(), registry, lambda: (True, {}), name="names")
        assert served.port is not None
        try:
            text = httpx.get(f"http://127.0.0.1:{served.port}/metrics", timeout=10).text
        finally:
            served.stop()
        for family in text_string_to_metric_families(text):
            names |= _sample_names(family.name, family.type)
    return names


def _bridge_registry() -> CollectorRegistry:
    figures = SysFigures(60.0)
    figures.take("$SYS/broker/clients/connected", b"3")
    registry = CollectorRegistry()
    registry.register(figures)
    return registry


def _sample_names(name: str, kind: str) -> set[str]:
    """The series names a family of this type has, whether or not it has samples yet."""
    if kind == "counter":
        return {f"{name}_total", f"{name}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
    return {name}


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from _panels(panel)  # rows hold panels of their own


def test_grafana_dashboard_queries_only_metrics_the_services_export(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    exported = _exported_names(database_url)
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert files, "no dashboard JSON in deploy/grafana/dashboards"
    for path in files:
        dashboard = json.loads(path.read_text())
        panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
        assert len(panels) >= 8, path
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path}: panel ids repeat"
        for panel in panels:
            exprs = [t["expr"] for t in panel.get("targets", [])]
            assert exprs, f"{path}: panel {panel['title']!r} has no query"
            for expr in exprs:
                used = set(re.findall(r"\b(ioc_[a-z0-9_]+)", expr))
                assert used, f"{panel['title']!r}: {expr!r} reads none of ours"
                missing = used - exported
                assert not missing, f"{panel['title']!r} reads {missing}, exported by no service"


def test_prometheus_scrapes_every_service_and_the_broker() -> None:
    import yaml

    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    every = {t.split(":")[0] for ts in targets.values() for t in ts}
    assert {"ingest-1", "ingest-2", "processing", "coverage", "alerts", "dashboard"} <= every
    assert any("mosquitto" in host for host in every)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("processing", "coverage", "alerts"):
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/health" in check and "_stcore" not in check, (name, check)
    grafana = services["grafana"]
    assert grafana["profiles"] == ["monitoring"]
