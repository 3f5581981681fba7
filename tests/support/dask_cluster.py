"""A real Dask cluster on loopback for tests and benchmarks: ``dask scheduler`` and each
``dask worker`` as separate processes, each in its own session (as services are: DESIGN.md,
Ingest), found through a scheduler file, and gone without leftovers afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from distributed import Client

DASK = Path(sys.executable).parent / "dask"  # the CLI dask[distributed] installs
START_S = 60.0  # a scheduler or worker not up within this has failed


@dataclass
class DaskCluster:
    address: str
    client: Client
    folder: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def add_workers(self, n: int) -> None:
        """Start ``n`` more workers (one thread each) and wait until the scheduler has them."""
        want = len(self.client.scheduler_info(n_workers=-1)["workers"]) + n
        for _ in range(n):
            k = len(self.procs)
            options = "--nthreads 1 --no-dashboard --memory-limit 0 --host 127.0.0.1"
            argv = [str(DASK), "worker", self.address, *options.split(), "--name", f"w{k}"]
            self.procs.append(_spawn(argv, self.folder / f"worker-{k}.log"))
        self.client.wait_for_workers(want, timeout=START_S)


@contextlib.contextmanager
def start_cluster(workers: int) -> Iterator[DaskCluster]:
    folder = Path(tempfile.mkdtemp(prefix="ioc-dask-"))
    info = folder / "scheduler.json"
    options = f"--host 127.0.0.1 --port 0 --no-dashboard --scheduler-file {info}"
    procs = [_spawn([str(DASK), "scheduler", *options.split()], folder / "scheduler.log")]
    client: Client | None = None
    try:
        address = _wait_for_address(info, procs[0], folder / "scheduler.log")
        client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
        cluster = DaskCluster(address, client, folder, procs)
        cluster.add_workers(workers)
        yield cluster
    finally:
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_address(info: Path, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return str(json.loads(info.read_text())["address"])
        time.sleep(0.05)  # polling a file the scheduler writes once it listens
    raise TimeoutError(f"dask scheduler not up within {START_S:g} s: {log.read_text()[-2000:]}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process's session (a worker's nanny and the worker it spawned), workers
    first; SIGKILL to whatever lingers; then no process of theirs may be left."""
    tracked: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            me = psutil.Process(proc.pid)
            tracked += [me, *me.children(recursive=True)]
    for proc in reversed(procs):  # workers first: none outlives its scheduler
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tracked, timeout=20)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    for proc in procs:
        proc.wait(timeout=10)  # reaped: no zombie of ours either
    left = [p.pid for p in tracked if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"dask processes left running: {left}"
