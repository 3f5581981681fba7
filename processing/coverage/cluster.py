"""Coverage on a Dask cluster (``dask.distributed``): the full recompute as tiles, the covering
towers of every place (N-1) as batches of emitters, the siting advisor per operator.

The full recompute splits the raster into fixed-size tiles (bands of whole rows). A tile's
task runs every active emitter whose window reaches the tile (a site outside it within range
counts: the halo), in emitter order, over the window's part inside the tile, with the merge
of ``CoverageEngine.recompute_full``. A cell's level from an emitter is the same float32 whatever
box it is computed in (the kernel's promise, which the incremental repair relies on too), and
each cell sees the same emitters in the same order, so the mosaic equals the single-process
raster bit for bit, value and best emitter. No cell is computed twice: the tiles only cut each
window into pieces.

What the tasks need (land use, emitters, which sectors are on) goes to every worker once
(``Client.scatter(broadcast=True)``), and serves a rebuild's recompute, covering and plan
until a sector changes. It goes pickled: scattered as objects, the emitters' dataclasses took
dask 1.8 s to walk (Bình Định, 3,298 emitters) against 10 ms for the same 1.2 MB as bytes.
A worker unpickles a shipment once and keeps it, with what it derives from it (each band's
land-use correction raster, the geometry templates), for the next task.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator
from processing.coverage.engine import class_corrections
from processing.coverage.kernel import (
    F32,
    Emitter,
    Templates,
    emitter_shadow,
    merge_best,
    point_levels,
    shadow_at,
)
from processing.coverage.kernel import window_levels as kernel_window

if TYPE_CHECKING:
    from distributed import Client

    from processing.coverage.advise import Advice, Ground
    from processing.coverage.engine import CoverageEngine
    from processing.coverage.state import Coverage

Box = tuple[int, int, int, int]
Found = dict[tuple[str, str], dict[Operator, set[str]]]
TILES_PER_WORKER = 4  # more tiles than workers: dense towns and empty hills even out


@dataclass(frozen=True, slots=True)
class Shipment:
    """The engine as a task needs it."""

    shape: tuple[int, int]
    res: float
    half: int  # the templates' half-size, cells
    land_use: npt.NDArray[np.int8]
    class_corr: dict[float, F32]  # band → land-use correction per raster class, float32
    emitters: tuple[Emitter, ...]  # every one, by id
    active: tuple[npt.NDArray[np.bool_], ...]  # each emitter's sectors on air
    floors: F32  # per layer
    ground: F32 | None  # heights above sea level (terrain), or none


@dataclass(frozen=True, slots=True)
class Placed:
    """The places N-1 is judged on: their cells, and the thresholds."""

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    inside: npt.NDArray[np.bool_]
    thresholds: dict[Any, float]


@dataclass
class ClusterRun:
    """What one call on the cluster cost: tasks, the shipment (none: reused) and its time, the
    whole."""

    tasks: int = 0
    ship_bytes: int = 0
    ship_s: float = 0.0
    total_s: float = 0.0
    workers: int = 0


def shipment(engine: CoverageEngine) -> Shipment:
    return Shipment(
        shape=engine.grid.shape,
        res=engine.grid.res,
        half=engine.templates.half,
        land_use=engine.land_use,
        class_corr={b: class_corrections(b, engine.config) for b in engine.corr},
        emitters=tuple(engine.emitters),
        active=tuple(a.copy() for a in engine.active),
        floors=engine.floors,
        ground=engine.ground,
    )


# -- on the worker ------------------------------------------------------------------------------
Packed = tuple[str, bytes]  # (key, pickle): what is scattered
_unpacked: dict[str, Any] = {}  # key → the object, and the derived ground of a Shipment
_lock = threading.Lock()
# Shipments a worker keeps: an engine's and its places' for each engine of a recompute_many
# (bench.scale: 8 provinces; with 4 kept, their covering re-derived each one: 36 s → 75 s).
KEPT = 24


def _unpack(packed: Packed, derive: bool = False) -> Any:
    key, blob = packed
    with _lock:  # a worker with several threads unpickles a shipment once
        got = _unpacked.get(key)
        if got is None:
            while len(_unpacked) >= KEPT:
                del _unpacked[next(iter(_unpacked))]
            got = pickle.loads(blob)
            if derive:
                corr = {b: table[got.land_use] for b, table in got.class_corr.items()}
                got = (got, _templates(got.half, got.res), corr)
            _unpacked[key] = got
    return got


_kept_templates: dict[tuple[int, float], Templates] = {}


def _templates(half: int, res: float) -> Templates:
    """One Templates per geometry on a worker, its elevation grids kept across shipments (a
    rebuild's or each province's: the same resolution and range)."""
    got = _kept_templates.get((half, res))
    if got is None:
        _kept_templates.clear()
        got = _kept_templates[(half, res)] = Templates.build(half, res)
    return got


def tile_task(
    packed: Packed, tile: Box, picks: npt.NDArray[np.int64]
) -> dict[int, tuple[F32, Any]]:
    """Level and best emitter over one tile, per layer some emitter reaches."""
    s, templates, corr = _unpack(packed, derive=True)
    t0, t1, u0, u1 = tile
    out: dict[int, tuple[F32, Any]] = {}
    scratch = np.empty((t1 - t0) * (u1 - u0), np.float32)  # every window's part fits the tile
    for k in picks:  # ascending emitter id: the lowest keeps a tie, as in the engine
        e = s.emitters[int(k)]
        r0, r1, c0, c1 = e.box(*s.shape)
        box = (max(r0, t0), min(r1, t1), max(c0, u0), min(c1, u1))
        if e.layer not in out:
            out[e.layer] = (
                np.full((t1 - t0, u1 - u0), s.floors[e.layer], np.float32),
                np.full((t1 - t0, u1 - u0), -1, np.int32),
            )
        value, best = out[e.layer]
        # a tile sweeps the radials its part of the window reads: a radial's samples are the
        # same whichever part asks, so the mosaic still equals the engine's raster
        shadow = None if s.ground is None else emitter_shadow(s.ground, e, s.res, box)
        active = s.active[int(k)]
        v = kernel_window(e, active, templates, corr[e.band_mhz], box, scratch, shadow)
        merge_best(v, value, best, (box[0] - t0, box[2] - u0), e.eid)
    return out


def covering_task(
    packed: Packed, places: Packed, picks: Sequence[int], every_sector: bool
) -> npt.NDArray[np.int64]:
    """Which of these emitters clear their threshold at which place (``Coverage._covering_by``),
    as (place index, emitter id) rows: numbers travel back fast where the same answer as
    dicts of sets of names took dask ~0.13 s a task to gather."""
    s, templates, corr = _unpack(packed, derive=True)
    p: Placed = _unpack(places)
    parts = [np.empty((0, 2), np.int64)]
    for k in picks:
        e = s.emitters[k]
        near = (np.abs(p.rows - e.row) <= e.radius) & (np.abs(p.cols - e.col) <= e.radius)
        idx = np.flatnonzero(near & p.inside)
        if idx.size == 0:
            continue
        active = np.ones_like(s.active[k]) if every_sector else s.active[k]
        rows, cols = p.rows[idx], p.cols[idx]
        shadow = None if s.ground is None else shadow_at(s.ground, e, templates, rows, cols)
        level = point_levels(e, active, templates, corr[e.band_mhz], rows, cols, shadow)
        hit = idx[level >= p.thresholds[e.technology]]
        parts.append(np.column_stack([hit, np.full(hit.size, e.eid)]))
    return np.concatenate(parts)


# -- on the client ------------------------------------------------------------------------------
def tiles(shape: tuple[int, int], workers: int, multiple: int) -> list[Box]:
    """Bands of whole rows, at least TILES_PER_WORKER a worker, each a multiple of ``multiple``
    rows (the engine's index tiles). Whole rows keep each window's rows whole: the kernel's
    inner loop runs along a row, and square tiles that cut rows short ran 15-25% slower than
    the single-process engine (Bắc Giang, 100 m), bands as fast."""
    rows, cols = shape
    want = max(1, TILES_PER_WORKER * max(workers, 1))
    height = max(multiple, -(-rows // want) // multiple * multiple)
    return [(r, min(r + height, rows), 0, cols) for r in range(0, rows, height)]


def worker_count(client: Client) -> int:
    """How many workers the cluster has now."""
    return len(client.scheduler_info(n_workers=-1)["workers"])


def _ship(client: Client, what: Any) -> tuple[Any, int, float]:
    """``what`` on every worker: (its future, bytes, seconds)."""
    t0 = time.perf_counter()
    blob = pickle.dumps(what, protocol=pickle.HIGHEST_PROTOCOL)
    packed = (uuid.uuid4().hex, blob)
    future = client.scatter(packed, broadcast=True, hash=False)  # type: ignore[no-untyped-call]
    return future, len(blob), time.perf_counter() - t0


@dataclass
class _Sent:
    """An engine's shipment on a cluster, reused while its sectors on air are unchanged: a
    rebuild's recompute, covering and plan ship it once."""

    client: Client
    active: bytes  # which sectors were on air
    future: Any
    places: tuple[Any, Any] | None = None  # (the Coverage's place rows, their future)


_sent: weakref.WeakKeyDictionary[CoverageEngine, _Sent] = weakref.WeakKeyDictionary()


def _shipped(engine: CoverageEngine, client: Client, run: ClusterRun) -> Any:
    active = np.packbits(np.concatenate(engine.active)).tobytes() if engine.active else b""
    sent = _sent.get(engine)
    if sent is None or sent.client is not client or sent.active != active:
        future, run.ship_bytes, run.ship_s = _ship(client, shipment(engine))
        sent = _sent[engine] = _Sent(client, active, future)
    return sent.future


def recompute_full(engine: CoverageEngine, client: Client) -> ClusterRun:
    """The engine's full recompute on the cluster, into the engine's own rasters."""
    return recompute_many([engine], client)[0]


def recompute_many(engines: Sequence[CoverageEngine], client: Client) -> list[ClusterRun]:
    """Several engines' full recomputes (provinces), every tile submitted before any result
    is awaited: no province waits for the one before it to drain from the workers."""
    t0 = time.perf_counter()
    workers = worker_count(client)
    pending = []
    for engine in engines:
        run = ClusterRun(workers=workers)
        shipped = _shipped(engine, client, run)
        on = np.array([a.any() for a in engine.active], bool)
        rows = np.array([e.row for e in engine.emitters], np.int64)
        radius = np.array([e.radius for e in engine.emitters], np.int64)
        futures = []
        for box in tiles(engine.grid.shape, workers, engine.config.tile_cells):
            r0, r1, _, _ = box
            picks = np.flatnonzero(on & (rows + radius >= r0) & (rows - radius < r1))
            if picks.size:
                futures.append((box, client.submit(tile_task, shipped, box, picks, pure=False)))
        run.tasks = len(futures)
        pending.append((engine, run, futures))
    for engine, run, futures in pending:
        engine.value[:] = engine.floors[:, None, None]
        engine.best[:] = -1
        for box, future in futures:
            r0, r1, c0, c1 = box
            for layer, (value, best) in future.result().items():
                engine.value[layer, r0:r1, c0:c1] = value
                engine.best[layer, r0:r1, c0:c1] = best
        engine.cluster_run = run
        run.total_s = time.perf_counter() - t0
    return [run for _, run, _ in pending]


def covering_by(
    cov: Coverage, client: Client, *, sites: set[str] | None = None, every_sector: bool = False
) -> Found:
    """``Coverage._covering_by`` over every active emitter (or every emitter with every sector
    on: the plan; or only ``sites``' emitters) as batches of emitters on the cluster; the sets
    merged, which is exact whatever the batches."""
    eng = cov.engine
    picks = [
        e.eid
        for e in eng.emitters
        if e.technology in eng.config.broadband
        and (every_sector or eng.active[e.eid].any())
        and (sites is None or e.device_id in sites)
    ]
    found: Found = defaultdict(lambda: defaultdict(set))
    if not picks:
        return found
    run = ClusterRun()
    shipped = _shipped(eng, client, run)
    sent = _sent[eng]
    if sent.places is None or sent.places[0] is not cov.rows:
        placed = Placed(cov.rows, cov.cols, cov.inside, dict(eng.config.thresholds_dbm))
        sent.places = (cov.rows, _ship(client, placed)[0])
    n = max(1, TILES_PER_WORKER * worker_count(client))
    batches = [picks[i::n] for i in range(n) if picks[i::n]]
    futures = [
        client.submit(covering_task, shipped, sent.places[1], b, every_sector, pure=False)
        for b in batches
    ]
    for part in (f.result() for f in futures):
        for i, eid in part.tolist():
            e = eng.emitters[eid]
            found[cov.keys[i]][e.operator].add(e.device_id)
    return found


def advise_each(
    ground: Ground,
    operators: Sequence[Operator | None],
    towers: int,
    client: Client | None = None,
    **options: Any,
) -> list[Advice]:
    """The siting advisor for each operator (None: the dead spots): here one after another,
    or with a ``client`` one task each on its cluster, the ground shipped once."""
    from processing.coverage.advise import advise

    if client is None:
        return [advise(ground, op, towers, **options) for op in operators]
    shipped, *_ = _ship(client, ground)
    futures = [
        client.submit(advise_task, shipped, op, towers, options, pure=False) for op in operators
    ]
    return [f.result() for f in futures]


def advise_task(
    packed: Packed, operator: Operator | None, towers: int, options: dict[str, Any]
) -> Advice:
    from processing.coverage.advise import advise

    return advise(_unpack(packed), operator, towers, **options)
