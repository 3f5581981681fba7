"""The coverage raster: best level per (operator, technology) from the sectors online now.

Full recompute: every active emitter over its window, in emitter order, keeping the best
level and which emitter gave it. Incremental: an emitter that loses sectors is recomputed only
where it was the best (from the emitters the spatial index says reach those cells); one that
gains sectors is maxed in over its window. Ties go to the lowest emitter id on every path, so
the two agree exactly. Over terrain (``ground``) each site's sweep (processing.coverage.terrain)
takes the ground's diffraction loss off its levels; every path sweeps the radials it reads the
same way, so they still agree bit for bit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from devices.kinds import Operator, Technology
from devices.radio import MOBILE_HEIGHT_M, LandUse, land_use_correction_db
from processing.coverage.config import CoverageConfig
from processing.coverage.grid import Grid
from processing.coverage.kernel import (
    F32,
    Emitter,
    Sweeps,
    Templates,
    make_emitter,
    merge_best,
    point_levels,
    reach_by_radial,
    shade,
    shadow_at,
    window_levels,
)
from processing.coverage.serving import SiteState
from processing.coverage.sites import (
    Rejection,
    SectorInput,
    SiteInput,
    sector_problem,
    site_problem,
)
from processing.coverage.terrain import radials, sweep

if TYPE_CHECKING:
    from distributed import Client

    from processing.coverage.cluster import ClusterRun

log = logging.getLogger("ioc.coverage")
Layer = tuple[Operator, Technology]
IntArray = npt.NDArray[np.int64]


class CoverageEngine:
    def __init__(
        self,
        grid: Grid,
        land_use: npt.NDArray[np.int8],
        sites: Sequence[SiteInput],
        config: CoverageConfig,
        ground: F32 | None = None,
    ) -> None:
        """``ground``: heights above sea level on the grid (``dem.load_dem``); none: no
        terrain, Okumura-Hata and land use alone."""
        self.grid = grid
        self.config = config
        self.land_use = land_use
        self.ground = ground
        self.rejections: list[Rejection] = []
        self.sites: list[SiteInput] = []
        self._register(sites)
        self.value = np.empty((len(self.layers), *grid.shape), np.float32)
        self.best = np.empty((len(self.layers), *grid.shape), np.int32)
        self.floors = np.array([self.config.floor_dbm(t) for _, t in self.layers], np.float32)
        self.value[:] = self.floors[:, None, None]
        self.best[:] = -1
        self.cluster_run: ClusterRun | None = None  # the last full recompute's, on a cluster

    # -- registration -------------------------------------------------------------------
    def _register(self, sites: Sequence[SiteInput]) -> None:
        cfg, grid = self.config, self.grid
        half = int(np.ceil(cfg.max_range_km * 1000.0 / grid.res))
        self.templates = Templates.build(half, grid.res)
        lat = np.array([s.lat for s in sites], np.float64)
        lon = np.array([s.lon for s in sites], np.float64)
        ok_pos = np.isfinite(lat) & np.isfinite(lon)
        rows, cols, inside = grid.cell_of(np.where(ok_pos, lat, 0.0), np.where(ok_pos, lon, 0.0))
        inside &= ok_pos
        seen: set[str] = set()
        accepted: list[tuple[SiteInput, int, int, list[SectorInput]]] = []
        for site, r, c, ins in zip(sites, rows, cols, inside, strict=True):
            problem = site_problem(site, bool(ins))
            if problem is None and site.device_id in seen:
                problem = "registered twice"
            if problem:
                self.rejections.append(Rejection(site.device_id, None, problem))
                continue
            seen.add(site.device_id)
            good: list[SectorInput] = []
            for s in site.sectors:
                why = sector_problem(s)
                if why:
                    self.rejections.append(Rejection(site.device_id, s.sector, why))
                else:
                    good.append(s)
            if good:
                accepted.append((site, int(r), int(c), good))
        for rej in self.rejections:
            where = rej.device_id + (f" sector {rej.sector}" if rej.sector is not None else "")
            log.warning("coverage: %s refused: %s", where, rej.reason)

        # Every (operator, technology) has a layer, sites or not: probes may measure any.
        self.layers: list[Layer] = [(op, tech) for op in Operator for tech in Technology]
        layer_of = {k: i for i, k in enumerate(self.layers)}
        lu_block = self._land_use_blocks()
        self.emitters: list[Emitter] = []
        self.site_emitters: list[list[int]] = []
        self.site_index: dict[str, int] = {}
        for site, r, c, good in accepted:
            i = len(self.sites)
            self.sites.append(site)
            self.site_index[site.device_id] = i
            groups: dict[tuple[Technology, float], list[SectorInput]] = defaultdict(list)
            for s in good:
                groups[(s.technology, s.band_mhz)].append(s)
            best_lu = LandUse(int(lu_block(r, c, half)))
            mine = []
            for (tech, band), secs in sorted(groups.items()):
                e = make_emitter(
                    eid=len(self.emitters),
                    site=i,
                    device_id=site.device_id,
                    operator=site.operator,
                    technology=tech,
                    layer=layer_of[(site.operator, tech)],
                    band_mhz=band,
                    height_m=site.antenna_height_m,
                    row=r,
                    col=c,
                    sectors=secs,
                    floor_dbm=cfg.floor_dbm(tech),
                    max_range_m=cfg.max_range_km * 1000.0,
                    best_land_use=best_lu,
                    res=grid.res,
                )
                mine.append(e.eid)
                self.emitters.append(e)
            self.site_emitters.append(mine)
        self.active = [np.ones(len(e.azimuth), bool) for e in self.emitters]
        self.states: dict[str, SiteState] = {s.device_id: SiteState() for s in self.sites}
        bands = sorted({e.band_mhz for e in self.emitters})
        self.corr: dict[float, F32] = {b: class_corrections(b, cfg)[self.land_use] for b in bands}
        self._build_index()

    def _land_use_blocks(self) -> Callable[[int, int, int], int]:
        """Most open land use within a box, from per-block maxima (cheap for 1,723 sites)."""
        b = self.config.tile_cells
        lu = self.land_use
        nr, nc = -(-lu.shape[0] // b), -(-lu.shape[1] // b)
        padded = np.full((nr * b, nc * b), LandUse.URBAN, np.int8)
        padded[: lu.shape[0], : lu.shape[1]] = lu
        blocks = padded.reshape(nr, b, nc, b).max(axis=(1, 3))

        def most_open(r: int, c: int, half: int) -> int:
            return int(
                blocks[
                    max(r - half, 0) // b : (r + half) // b + 1,
                    max(c - half, 0) // b : (c + half) // b + 1,
                ].max()
            )

        return most_open

    def _build_index(self) -> None:
        """Spatial index: for each (layer, tile), the emitters whose window reaches the tile."""
        t = self.config.tile_cells
        self.tile_cols = -(-self.grid.cols // t)
        pairs = []
        for e in self.emitters:
            r0, r1, c0, c1 = e.box(*self.grid.shape)
            tr, tc = np.mgrid[r0 // t : (r1 - 1) // t + 1, c0 // t : (c1 - 1) // t + 1]
            tiles = (tr * self.tile_cols + tc).ravel()
            pairs.append(
                np.column_stack([np.full(tiles.size, e.layer), tiles, np.full(tiles.size, e.eid)])
            )
        self.emitter_tiles = [p[:, 1] for p in pairs]
        self.operator_layers = {
            op: np.array([k for k, (o, _) in enumerate(self.layers) if o is op]) for op in Operator
        }
        # When the sectors reaching each (layer, tile) last changed, epoch seconds: a probe
        # sample taken before that measured another network and no longer counts.
        n_tiles = self.tile_cols * -(-self.grid.rows // t)
        self.changed_at = np.full((len(self.layers), n_tiles), -np.inf)
        self.changes = 0  # how many times changed_at moved
        allp = np.vstack(pairs) if pairs else np.empty((0, 3), np.int64)
        allp = allp[np.lexsort((allp[:, 2], allp[:, 1], allp[:, 0]))]
        keys = allp[:, 0] * (1 << 32) + allp[:, 1]
        cut = np.flatnonzero(np.diff(keys)) + 1
        self.index: dict[tuple[int, int], IntArray] = {
            (int(g[0, 0]), int(g[0, 1])): g[:, 2].copy() for g in np.split(allp, cut) if len(g)
        }

    # -- geometry of one emitter --------------------------------------------------------
    def at(self, e: Emitter, rows: IntArray, cols: IntArray, *, every_sector: bool = False) -> F32:
        """Levels at these cells from the emitter's active sectors (or all of them: the plan)."""
        active = np.ones_like(self.active[e.eid]) if every_sector else self.active[e.eid]
        shadow = None
        if self.ground is not None:
            shadow = shadow_at(self.ground, e, self.templates, rows, cols)
        corr = self.corr[e.band_mhz]
        return point_levels(e, active, self.templates, corr, rows, cols, shadow=shadow)

    def in_box(self, e: Emitter, rows: IntArray, cols: IntArray) -> npt.NDArray[np.bool_]:
        return (np.abs(rows - e.row) <= e.radius) & (np.abs(cols - e.col) <= e.radius)

    # -- recompute ----------------------------------------------------------------------
    def recompute_full(self, client: Client | None = None) -> None:
        """Every active emitter over its window. Layers are independent, so they are shared
        out between ``config.threads`` threads (numpy releases the GIL in its loops); within a
        layer the order is the emitter order, so the result does not depend on the threads.
        With a Dask ``client``, as tiles on its cluster (``processing.coverage.cluster``): the
        same rasters bit for bit."""
        if client is not None:
            from processing.coverage.cluster import recompute_full

            self.cluster_run = recompute_full(self, client)
            return
        self.cluster_run = None
        self.value[:] = self.floors[:, None, None]
        self.best[:] = -1
        # An operator's layers are its own, so operators are shared out between threads,
        # largest first, each to the thread with the least work so far; within an operator the
        # sites go in order, so each layer sees its emitters in emitter order.
        by_operator: dict[Operator, list[int]] = defaultdict(list)
        work: dict[Operator, int] = defaultdict(int)
        for i, mine in enumerate(self.site_emitters):
            on = [k for k in mine if self.active[k].any()]
            if on:
                op = self.emitters[on[0]].operator
                by_operator[op].append(i)
                work[op] += sum((2 * self.emitters[k].radius + 1) ** 2 for k in on)
        shares: list[list[int]] = [[] for _ in range(max(1, self.config.threads))]
        load = [0] * len(shares)
        for op in sorted(by_operator, key=lambda o: work[o], reverse=True):
            k = load.index(min(load))
            shares[k] += by_operator[op]
            load[k] += work[op]

        def run(share: list[int]) -> None:
            for i in share:
                on = [self.emitters[k] for k in self.site_emitters[i] if self.active[k].any()]
                for e, v, box in self._site_windows(on):
                    merge_best(v, self.value[e.layer], self.best[e.layer], box[::2], e.eid)

        if len(shares) == 1:
            run(shares[0])
            return
        with ThreadPoolExecutor(len(shares), thread_name_prefix="coverage") as pool:
            for done in [pool.submit(run, share) for share in shares]:
                done.result()

    def _site_windows(
        self, emitters: list[Emitter]
    ) -> list[tuple[Emitter, F32, tuple[int, int, int, int]]]:
        """Levels of a site's emitters over their windows. Over terrain the site is swept once
        for all its emitters of one reach, each radial only as far as one of them, over flat
        ground, has signal along it."""
        out = []
        for e in emitters:
            box = e.box(*self.grid.shape)
            corr = self.corr[e.band_mhz]
            out.append((e, window_levels(e, self.active[e.eid], self.templates, corr, box), box))
        if self.ground is None:
            return out
        for radius in {e.radius for e in emitters}:
            mine = [w for w in out if w[0].radius == radius]
            reach = np.full(radials(radius), -1, np.int64)
            for e, v, box in mine:
                reach_by_radial(e, self.templates, box, v, reach)
            which = np.flatnonzero(reach >= 0)
            if which.size == 0:
                continue
            e0 = mine[0][0]
            shadow = sweep(self.ground, e0.row, e0.col, radius, self.grid.res, e0.height_m,
                           MOBILE_HEIGHT_M, which, reach[which])  # fmt: skip
            for e, v, box in mine:
                shade(e, self.templates, box, shadow, v)
        return out

    def mark_changed(self, sites: Mapping[str, float]) -> None:
        """Date a change of these sites' sectors (epoch seconds) over their windows' tiles, in
        each of their operator's layers."""
        self.changes += 1
        for device_id, at in sites.items():
            i = self.site_index.get(device_id)
            for eid in self.site_emitters[i] if i is not None else ():
                # every technology of the operator: a 3G sample where only the site's 4G is
                # predicted still measured that site
                mine = self.operator_layers[self.emitters[eid].operator]
                box = np.ix_(mine, self.emitter_tiles[eid])
                self.changed_at[box] = np.maximum(self.changed_at[box], at)

    def changed_since(self, layers: IntArray, flat: IntArray) -> npt.NDArray[np.float64]:
        """When the sectors reaching these (layer, flat cell) pairs last changed."""
        t = self.config.tile_cells
        rows, cols = flat // self.grid.cols, flat % self.grid.cols
        out: npt.NDArray[np.float64] = self.changed_at[
            layers, (rows // t) * self.tile_cols + cols // t
        ]
        return out

    def apply(self, states: Mapping[str, SiteState], *, at: float | None = None) -> set[str]:
        """Take new site states; recompute what they change. Returns the sites that changed,
        dated ``at`` (epoch seconds) for the measurements over their footprints."""
        lost: list[int] = []
        gained: list[int] = []
        changed: set[str] = set()
        for device_id, state in states.items():
            i = self.site_index.get(device_id)
            if i is None or self.states[device_id] == state:
                continue
            self.states[device_id] = state
            for eid in self.site_emitters[i]:
                e = self.emitters[eid]
                new = np.array(
                    [state.serving and _up(state.sectors_up, n) for n in e.sector_numbers], bool
                )
                old = self.active[eid]
                if (old & ~new).any():
                    lost.append(eid)
                if (new & ~old).any():
                    gained.append(eid)
                if (old != new).any():
                    changed.add(device_id)
                self.active[eid] = new
        by_layer: dict[int, list[int]] = defaultdict(list)
        for eid in lost:
            by_layer[self.emitters[eid].layer].append(eid)
        sweeps = None if self.ground is None else Sweeps(self.ground, self.templates)
        for layer, eids in by_layer.items():
            self._repair(layer, eids, sweeps)
        for eid in sorted(gained):
            for e, v, box in self._site_windows([self.emitters[eid]]):
                merge_best(v, self.value[e.layer], self.best[e.layer], box[::2], e.eid,
                           tie_break=True)  # fmt: skip
        if at is not None:
            self.mark_changed(dict.fromkeys(changed, at))
        return changed

    def _repair(self, layer: int, eids: Iterable[int], sweeps: Sweeps | None = None) -> None:
        """Recompute the cells where these emitters were the best, from every active one."""
        parts_r, parts_c = [], []
        for eid in eids:
            r0, r1, c0, c1 = self.emitters[eid].box(*self.grid.shape)
            rr, cc = np.nonzero(self.best[layer, r0:r1, c0:c1] == eid)
            parts_r.append(rr + r0)
            parts_c.append(cc + c0)
        rows, cols = np.concatenate(parts_r), np.concatenate(parts_c)
        if rows.size == 0:
            return
        self.value[layer, rows, cols] = self.floors[layer]
        self.best[layer, rows, cols] = -1
        t = self.config.tile_cells
        tiles = np.unique((rows // t) * self.tile_cols + cols // t)
        found = [self.index.get((layer, int(tile))) for tile in tiles]
        candidates = np.unique(
            np.concatenate([f for f in found if f is not None] or [np.empty(0, np.int64)])
        )
        # The affected cells as a mask over their bounding box; each candidate is computed on
        # the window path over its part of that box (unit-stride, as in a full recompute).
        br0, bc0 = int(rows.min()), int(cols.min())
        affected = np.zeros((int(rows.max()) + 1 - br0, int(cols.max()) + 1 - bc0), bool)
        affected[rows - br0, cols - bc0] = True
        for eid in candidates:  # ascending: the lowest id keeps a tie, as in a full recompute
            e = self.emitters[int(eid)]
            if not self.active[e.eid].any():
                continue
            r0, r1, c0, c1 = e.box(*self.grid.shape)
            r0, c0 = max(r0, br0), max(c0, bc0)
            r1, c1 = min(r1, br0 + affected.shape[0]), min(c1, bc0 + affected.shape[1])
            if r0 >= r1 or c0 >= c1:
                continue
            mine = affected[r0 - br0 : r1 - br0, c0 - bc0 : c1 - bc0]
            if not mine.any():
                continue
            box = (r0, r1, c0, c1)
            v = window_levels(e, self.active[e.eid], self.templates, self.corr[e.band_mhz], box)
            if sweeps is not None:
                # Terrain only takes signal away, so a cell without signal over flat ground
                # stays without: the ground is swept only towards the affected cells that the
                # flat levels reach (most candidates stand far off, and reach few or none).
                live = mine & (v >= e.floor)
                rr, cc = np.nonzero(live)
                if rr.size == 0:
                    continue
                shade(e, self.templates, box, sweeps.at(e, rr + r0, cc + c0), v, live)
            merge_best(v, self.value[layer], self.best[layer], (r0, c0), e.eid, where=mine)

    # -- reading -------------------------------------------------------------------------
    def levels_at(self, rows: IntArray, cols: IntArray) -> F32:
        """(layers, points) predicted levels at these cells."""
        return self.value[:, rows, cols]

    @property
    def nbytes(self) -> int:
        """Memory the rasters hold (levels, best emitter, land use, land-use corrections)."""
        return (
            self.value.nbytes
            + self.best.nbytes
            + self.land_use.nbytes
            + sum(c.nbytes for c in self.corr.values())
            + self.templates.nbytes
        )


def class_corrections(band_mhz: float, config: CoverageConfig) -> F32:
    """Land-use correction of each raster class, float32: indexed by a land-use raster, the
    engine's ``corr`` (the siting advisor and the cluster's tasks gather it the same way)."""
    classes = np.array([c for c in LandUse if c is not LandUse.METROPOLITAN])
    if config.metropolitan:
        classes[LandUse.URBAN] = LandUse.METROPOLITAN
    return land_use_correction_db(band_mhz, classes).astype(np.float32)


def _up(flags: tuple[bool, ...] | None, sector: int) -> bool:
    if flags is None or not 1 <= sector <= len(flags):
        return True  # a flag the telemetry does not carry is not a failure
    return flags[sector - 1]
