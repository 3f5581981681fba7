"""Processing killed (-9) while a tower's going offline changes the coverage, then restarted:
every village event that change implies is on disk once — none lost, none written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg

from devices import Channel, Kind, Topics, encode
from store import coverage as q
from store.migrate import upgrade
from store.registry import status_events
from store.scope import NATIONAL
from tests.faults.harness import Figures, record
from tests.support.clients import mqtt_client
from tests.support.coverage_scene import load_scene
from tests.support.environment import clean_environ
from tests.support.ingesters import running_ingester
from tests.support.polling import wait_until

# What tower M going offline does to the three test villages (tests/test_coverage_service.py).
EXPECTED = {("mbf", "lost"), ("both", "degraded")}


class CoverageProcess:
    """``python -m ioc coverage run`` as a real process."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.database_url, self.log = database_url, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CoverageProcess:
        env = clean_environ()
        env["IOC_DATABASE_URL"] = self.database_url
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ioc", "coverage", "run", "--resolution-m", "200"],
            env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        return self

    def builds(self) -> int:
        """Full builds logged so far (the first one ends every start)."""
        return self.log.read_text(errors="replace").count(" dead-spot villages (")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _events(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(e["village_id"], e["kind"]) for e in q.events_since(conn)]


def _offline_stored(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return any(e["state"] == "offline" for e in status_events(conn, "M", scope=NATIONAL))


async def test_processing_kill_9_during_a_coverage_change(
    database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics, tmp_path: Path
) -> None:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    load_scene(database_url)
    log = tmp_path / "coverage.log"
    first = CoverageProcess(database_url, log).start()
    again = CoverageProcess(database_url, log)
    try:
        await wait_until(lambda: first.builds() >= 1, timeout_s=120)
        assert _events(database_url) == []
        async with running_ingester(
            database_url, mqtt_url, mqtt_protocol, topics, self_register=False, name="fault"
        ):
            async with mqtt_client(mqtt_url, mqtt_protocol) as client:
                status = topics.device(Kind.BTS, "M", Channel.STATUS)
                await client.publish(status, encode({"device_id": "M", "state": "offline"}),
                                     qos=1)  # fmt: skip
            # Killed as soon as the change is in the database: mid-recompute, or just before.
            await wait_until(lambda: _offline_stored(database_url), timeout_s=30)
            first.kill()
            at_kill = len(_events(database_url))
            again.start()
            await wait_until(lambda: again.builds() >= 2, timeout_s=120)
            await wait_until(lambda: set(_events(database_url)) >= EXPECTED, timeout_s=30)
    finally:
        first.kill()
        again.kill()
    events = Counter(_events(database_url))
    figures = record(Figures(
        fault="processing kill -9 during a coverage change",
        sent=1, stored=len(events), rejected=0,
        duplicated=sum(n - 1 for n in events.values()),
        lost=len(EXPECTED - set(events)),
        note=f"1 offline status -> {len(EXPECTED)} village events; {at_kill} on disk at the kill",
    ))  # fmt: skip
    assert set(events) == EXPECTED
    assert (figures.lost, figures.duplicated) == (0, 0)
