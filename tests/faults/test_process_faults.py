"""Faults of the machinery, under load: the ingester killed, the broker restarted, the database
restarted, the database's disk full. Real processes (``python -m ioc ingest``, Mosquitto with
persistence, a throwaway PostgreSQL), two publishers flooding distinct readings meanwhile."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devices.kinds import Kind
from devices.topics import Topics
from ioc.brokers import free_port, start_broker
from store.audit import reading_keys
from store.migrate import upgrade
from tests.faults.harness import audit
from tests.support.databases import stored_readings
from tests.support.environment import harness
from tests.support.flood import device_ids, expected
from tests.support.polling import wait_until
from tests.support.procs import (
    IngesterProcess,
    ThrowawayPostgres,
    finish_flood,
    register_devices,
    start_flood,
)

N = 12_000  # readings per test: 60 batches of 200
PUBLISHERS = 2
DEVICES = 40
RATE = 2000.0  # readings/s per publisher, paced: a few seconds of flood
FENCE = ("BTS-F9-0000", 0)  # tests.flood's first reading of publisher 9, device 0


def prepare(database_url: str) -> set[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        upgrade(conn)
    register_devices(database_url, [d for p in range(PUBLISHERS) for d in device_ids(p, DEVICES)])
    return {k for p in range(PUBLISHERS) for k in expected(p, DEVICES, N // PUBLISHERS)}


def floods(mqtt_url: str, root: str) -> list[subprocess.Popen[bytes]]:
    return [start_flood(mqtt_url, root, publisher=p, devices=DEVICES, messages=N // PUBLISHERS)
            for p in range(PUBLISHERS)]  # fmt: skip


async def finish(running: list[subprocess.Popen[bytes]]) -> int:
    """Wait for the publishers; returns how many times they had to reconnect."""
    return sum([int((await finish_flood(p))["reconnects"]) for p in running])


class RestartableBroker:
    """Mosquitto on the project's config with persistence, restarted on its port and state."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir, self.port = state_dir, free_port()
        self.running = start_broker(state_dir, self.port)
        self.url = self.running.url

    def restart(self) -> None:
        self.running.stop()  # SIGTERM: Mosquitto writes its persistence file on the way out
        self.running = start_broker(self.state_dir, self.port)

    def crash(self) -> None:
        """kill -9, then start again on what its last save left on disk."""
        self.running.process.kill()
        self.running.process.wait()
        self.running = start_broker(self.state_dir, self.port)


@pytest.fixture
def restartable() -> Iterator[RestartableBroker]:
    # Run as root, Mosquitto saves its persistence file as its own user: under pytest's 0700
    # tmp it cannot, the restart forgets every session, and the test would measure that.
    with tempfile.TemporaryDirectory(prefix="ioc-fault-broker-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        os.chmod(tmp, 0o755)
        if os.geteuid() == 0:
            shutil.chown(state, "mosquitto")
        broker = RestartableBroker(state)
        yield broker
        broker.running.stop()


def ingester(database_url: str, mqtt_url: str, root: str, tmp_path: Path, name: str
             ) -> IngesterProcess:  # fmt: skip
    return IngesterProcess(database_url=database_url, mqtt_url=mqtt_url, topic_root=root,
                           client_id=name, log_dir=tmp_path)  # fmt: skip


async def test_ingester_kill_9_under_load(
    database_url: str, mqtt_url: str, topics: Topics, tmp_path: Path
) -> None:
    published = prepare(database_url)
    first = ingester(database_url, mqtt_url, topics.root, tmp_path, "fault-k9").start()
    again = ingester(database_url, mqtt_url, topics.root, tmp_path, "fault-k9")
    try:
        await wait_until(first.subscribed)
        running = floods(mqtt_url, topics.root)
        await wait_until(lambda: stored_readings(database_url) >= N // 4)
        first.kill()
        at_kill = stored_readings(database_url)
        await finish(running)
        again.start()  # the same client id: the broker resumes the session and redelivers
        await wait_until(lambda: stored_readings(database_url) >= N, timeout_s=90)
    finally:
        first.close()
        again.close()
    figures = audit("ingester kill -9 under load", database_url, published,
                    note=f"killed with {at_kill} stored")  # fmt: skip
    assert at_kill < N, "the flood was over before the kill: nothing was tested"
    assert (figures.lost, figures.duplicated) == (0, 0)


async def test_broker_restart_under_load(
    database_url: str, restartable: RestartableBroker, topics: Topics, tmp_path: Path
) -> None:
    published = prepare(database_url)
    ing = ingester(database_url, restartable.url, topics.root, tmp_path, "fault-br").start()
    try:
        await wait_until(ing.subscribed)
        running = floods(restartable.url, topics.root)
        await wait_until(lambda: stored_readings(database_url) >= N // 4)
        restartable.restart()
        at_restart = stored_readings(database_url)
        reconnects = await finish(running)
        await wait_until(lambda: stored_readings(database_url) >= N, timeout_s=90)
        assert ing.alive(), ing.log_tail()
    finally:
        ing.close()
    figures = audit(
        "broker restart under load",
        database_url,
        published,
        note=f"restarted at {at_restart}; publishers reconnected {reconnects}x",
    )
    assert at_restart < N, "the flood was over before the restart"
    assert (figures.lost, figures.duplicated) == (0, 0)


async def test_database_restart_under_load(mqtt_url: str, topics: Topics, tmp_path: Path) -> None:
    pg = ThrowawayPostgres(tmp_path / "pg")  # never the shared server on 5432
    ing = ingester(pg.url, mqtt_url, topics.root, tmp_path, "fault-db")
    try:
        published = prepare(pg.url)
        ing.start()
        await wait_until(ing.subscribed)
        running = floods(mqtt_url, topics.root)
        await wait_until(lambda: stored_readings(pg.url) >= N // 4)
        pg.stop("immediate")  # a crash, as far as the clients can tell
        await wait_until(lambda: bool((h := ing.health()) and not h["database_up"]))
        await finish(running)
        pg.start()
        await wait_until(lambda: stored_readings(pg.url) >= N, timeout_s=120)
        figures = audit("database crash and restart under load", pg.url, published,
                        note="stopped -m immediate mid-flood")  # fmt: skip
    finally:
        ing.close()
        pg.cleanup()
    assert (figures.lost, figures.duplicated) == (0, 0)


class TinyDisk:
    """A small tmpfs for a tablespace, filled on demand; None where mounting is not allowed."""

    def __init__(self, path: Path, size_mb: int, owner: str | None) -> None:
        self.path = path
        path.mkdir(parents=True)
        options = f"size={size_mb}m,mode=0700"
        if owner:
            import pwd

            entry = pwd.getpwnam(owner)
            options += f",uid={entry.pw_uid},gid={entry.pw_gid}"
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       check=True, capture_output=True)  # fmt: skip
        self.filler = path / "filler"

    @classmethod
    def try_mount(cls, path: Path, size_mb: int, owner: str | None) -> TinyDisk | None:
        # IOC_FAULTS_NO_MOUNT=1 takes the read-only path where mounting would work.
        if os.geteuid() != 0 or not shutil.which("mount") or harness().faults_no_mount:
            return None
        try:
            return cls(path, size_mb, owner)
        except subprocess.CalledProcessError:
            return None

    def fill(self, leave_bytes: int) -> None:
        free = shutil.disk_usage(self.path).free
        with self.filler.open("wb") as f:
            f.truncate(0)
            f.write(b"\0" * max(0, free - leave_bytes))

    def free_up(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True)


async def test_disk_full_stops_acknowledging_then_drains_when_space_returns(
    mqtt_url: str, topics: Topics, tmp_path: Path
) -> None:
    pg = ThrowawayPostgres(tmp_path / "pg")
    disk = TinyDisk.try_mount(tmp_path / "tiny", 64, pg.user)
    ing: IngesterProcess | None = None
    try:
        database = pg.url.rsplit("/", 1)[0] + "/ioc"
        with psycopg.connect(pg.url, autocommit=True) as admin:
            if disk:
                # The readings' tablespace on the tiny disk; the WAL stays where it was.
                admin.execute(f"CREATE TABLESPACE tiny LOCATION '{disk.path}'")
                admin.execute("CREATE DATABASE ioc TABLESPACE tiny")
            else:
                admin.execute("CREATE DATABASE ioc")
        published = prepare(database)
        ing = ingester(database, mqtt_url, topics.root, tmp_path, "fault-full").start()
        await wait_until(ing.subscribed)
        if disk:
            disk.fill(leave_bytes=256 * 1024)
        else:  # no mount allowed here: a read-only database is the nearest fault
            with psycopg.connect(pg.url, autocommit=True) as admin:
                admin.execute("ALTER DATABASE ioc SET default_transaction_read_only = on")
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = 'ioc' AND pid <> pg_backend_pid()"
                )
        running = floods(mqtt_url, topics.root)
        # It says why it stopped acknowledging, and stays up.
        why = "No space left on device" if disk else "read-only transaction"
        await wait_until(lambda: why in ing.log_tail() or not ing.alive(), 90)
        assert ing.alive() and why in ing.log_tail(), ing.log_tail()
        assert not (h := ing.health()) or not h["database_up"]
        held_at = stored_readings(database)
        assert held_at < N, "everything fitted: the disk was never full"
        await finish(running)
        if disk:
            disk.free_up()
        else:
            with psycopg.connect(pg.url, autocommit=True) as admin:
                admin.execute("ALTER DATABASE ioc RESET default_transaction_read_only")
        await wait_until(lambda: stored_readings(database) >= N, timeout_s=120)
        how = "64 MB tmpfs tablespace filled" if disk else "database set read-only"
        figures = audit("disk full, then space returns" if disk else "read-only database",
                        database, published, note=f"{how}; stalled at {held_at}")  # fmt: skip
    finally:
        if ing:
            ing.close()
        pg.cleanup()
        if disk:
            disk.unmount()
    assert (figures.lost, figures.duplicated) == (0, 0)


@pytest.mark.parametrize("rate", [RATE, None], ids=["keeping-up", "backlog"])
async def test_broker_kill_9_under_load(
    database_url: str,
    restartable: RestartableBroker,
    topics: Topics,
    tmp_path: Path,
    rate: float | None,
) -> None:
    """What README, "Delivery guarantee", promises of a broker crash: Mosquitto keeps what it
    saved (a clean stop, or every ``autosave_interval``), so a kill -9 loses at most what it
    had PUBACKed since and no ingester had committed yet; everything committed stays. Paced,
    the kill comes mid-flood with the ingester keeping up, as in service; at full speed the
    publishers are done first and the broker holds a backlog for the ingester."""
    published = prepare(database_url) | {FENCE}
    register_devices(database_url, [FENCE[0]])
    ing = ingester(database_url, restartable.url, topics.root, tmp_path, "fault-bk9").start()
    try:
        await wait_until(ing.subscribed)
        window = int((ing.health() or {})["window"])  # messages it may hold unacknowledged
        # A broker that has run a while has saved the ingester's session; a clean restart is
        # that save, so the kill tests the messages, not a session younger than the interval.
        restartable.restart()
        running = [
            start_flood(
                restartable.url,
                topics.root,
                publisher=p,
                devices=DEVICES,
                messages=N // PUBLISHERS,
                rate=rate,
            )
            for p in range(PUBLISHERS)
        ]
        await wait_until(lambda: stored_readings(database_url) >= N // 4)
        restartable.crash()
        at_kill = stored_readings(database_url)
        reconnects = await finish(running)
        await settled(ing, restartable.url, topics.root)
        assert ing.alive(), ing.log_tail()
    finally:
        ing.close()
    how = "under load" if rate else "with a backlog"
    figures = audit(f"broker kill -9 {how}", database_url, published,
                    note=f"killed at {at_kill}; publishers reconnected {reconnects}x; "
                         "autosave_interval 60")  # fmt: skip
    assert at_kill < N, "the flood was over before the kill"
    assert figures.duplicated == 0
    assert figures.lost <= N - at_kill, "the crash lost readings committed before it"
    if rate:  # keeping up, the broker holds no more than the ingester's window
        assert figures.lost <= window, f"lost {figures.lost}, beyond the window of {window}"


async def settled(ing: IngesterProcess, mqtt_url: str, root: str) -> None:
    """Everything the broker still held has reached the database: a reading published after
    the floods is stored (the session's queue is delivered in order) and none is in hand."""
    fence = start_flood(mqtt_url, root, publisher=9, devices=1, messages=1)
    await finish_flood(fence)

    def done() -> bool:
        h = ing.health()
        return bool(h and h["inflight"] == 0) and FENCE in fence_keys(ing)

    await wait_until(done, timeout_s=90, state=ing.health)


def fence_keys(ing: IngesterProcess) -> set[tuple[str, int]]:
    with psycopg.connect(ing.env["IOC_DATABASE_URL"]) as conn:
        return set(reading_keys(conn, Kind.BTS))
