"""Coverage of places from the raster: per operator, covered or not; dead spots; what changed
since the last look and which towers it was; and what each tower's loss alone would cost."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from devices.kinds import Operator
from processing.coverage.engine import CoverageEngine
from processing.coverage.kernel import Emitter
from processing.coverage.measured import Measured, MeasuredCells
from processing.coverage.places import Place, PlaceCoverage

if TYPE_CHECKING:
    from distributed import Client

EVENT_KINDS = ("lost", "restored", "degraded", "improved")


@dataclass(frozen=True, slots=True)
class CoverageEvent:
    ts: datetime
    village_id: str
    kind: str  # one of EVENT_KINDS
    operators_lost: tuple[str, ...]
    operators_now: tuple[str, ...]
    towers: tuple[str, ...]  # whose loss (or return) made the change
    population: int


@dataclass(frozen=True, slots=True)
class TowerCriticality:
    device_id: str
    operator: Operator
    population_all: int  # would lose every operator's broadband if this tower alone failed
    villages_all: int
    population_operator: int  # would lose this tower's operator
    villages_operator: int


@dataclass
class Coverage:
    """The engine plus the places it is judged on, and the last verdict for each."""

    engine: CoverageEngine
    places: Sequence[Place]
    measured: Measured | None = None
    outline: tuple[tuple[float, float], ...] = ()  # the province, (lat, lon), for pictures
    current: dict[tuple[str, str], PlaceCoverage] = field(default_factory=dict)
    # place key → towers whose broadband level there clears the threshold, by operator
    covering: dict[tuple[str, str], dict[Operator, frozenset[str]]] = field(default_factory=dict)
    # the same with every registered sector on air: the plan, to tell what unknown towers hold
    planned: dict[tuple[str, str], dict[Operator, frozenset[str]]] = field(default_factory=dict)
    unknown_sites: frozenset[str] = frozenset()  # towers never heard from
    # the measured cells still valid, and for which (samples, engine changes) they were chosen
    _valid: tuple[Measured, int, MeasuredCells] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        g = self.engine.grid
        lat = np.array([p.lat for p in self.places], np.float64)
        lon = np.array([p.lon for p in self.places], np.float64)
        self.rows, self.cols, self.inside = g.cell_of(lat, lon)
        self.flat = self.rows * g.cols + self.cols
        self.keys = [(p.kind, p.place_id) for p in self.places]
        cfg = self.engine.config
        self.thresholds = np.array(
            [cfg.thresholds_dbm[t] for _, t in self.engine.layers], np.float32
        )
        self.broadband = np.array([t in cfg.broadband for _, t in self.engine.layers], np.bool_)

    # -- verdicts ------------------------------------------------------------------------
    def evaluate(self) -> dict[tuple[str, str], PlaceCoverage]:
        """Each place's verdict now: the prediction from the serving towers, replaced by
        measurement where enough valid samples are; an operator whose predicted coverage here
        rests only on towers never heard from is ``unknown``, not covered."""
        eng = self.engine
        levels = eng.levels_at(self.rows, self.cols).copy()
        measured = np.zeros(levels.shape, bool)
        if self.measured is not None:
            cells = self._valid_cells(self.measured)
            for layer in range(len(eng.layers)):
                found, value = cells.lookup(layer, self.flat)
                levels[layer, found] = value[found]
                measured[layer] = found
        if not self.inside.all():  # a place off the raster has no signal we know of
            levels[:, ~self.inside] = eng.floors[:, None]
        covered = (levels >= self.thresholds[:, None]) & self.broadband[:, None]
        measured &= self.broadband[:, None]
        ops = list(Operator)
        of_op = np.array([ops.index(op) for op, _ in eng.layers])
        by_op = np.stack([covered[of_op == k].any(axis=0) for k in range(len(ops))])
        measured_op = np.stack([measured[of_op == k].any(axis=0) for k in range(len(ops))])
        rounded = np.round(levels.astype(np.float64), 1).T.tolist()
        out = {}
        for i, place in enumerate(self.places):
            key = (place.kind, place.place_id)
            unknown = self._rests_on_unknown(key)
            out[key] = PlaceCoverage(
                place=place,
                operators=tuple(
                    op
                    for k, op in enumerate(ops)
                    if by_op[k, i] and (measured_op[k, i] or op not in unknown)
                ),
                measured=tuple(op for k, op in enumerate(ops) if measured_op[k, i]),
                levels=dict(zip(eng.layers, rounded[i], strict=True)),
                unknown=tuple(
                    op for k, op in enumerate(ops) if op in unknown and not measured_op[k, i]
                ),
            )
        return out

    def _valid_cells(self, m: Measured) -> MeasuredCells:
        """The measured cells whose samples still count (chosen again only after a change)."""
        changes = self.engine.changes
        if self._valid is None or self._valid[0] is not m or self._valid[1] != changes:
            valid = m.ts > self.engine.changed_since(m.layer, m.flat)
            self._valid = (m, changes, m.cells(valid))
        return self._valid[2]

    def _rests_on_unknown(self, key: tuple[str, str]) -> set[Operator]:
        """Operators no known serving tower covers here but a tower never heard from would."""
        if not self.unknown_sites:
            return set()
        known = self.covering.get(key, {})
        return {
            op
            for op, towers in self.planned.get(key, {}).items()
            if towers & self.unknown_sites and not (known.get(op, frozenset()) - self.unknown_sites)
        }

    def plan(self, client: Client | None = None) -> None:
        """Which towers would cover each place with every registered sector on air (with a
        Dask ``client``: as tasks on its cluster)."""
        eng = self.engine
        if client is not None:
            from processing.coverage.cluster import covering_by

            self.planned = _freeze(covering_by(self, client, every_sector=True))
            return
        self.planned = _freeze(self._covering_by(eng.emitters, every_sector=True))

    def refresh_covering(self, sites: set[str] | None = None, client: Client | None = None) -> None:
        """Recompute which towers cover each place: from every emitter, or, after a change,
        only the given sites' part (no other tower's level moved). With a Dask ``client``, the
        emitters' part runs as batches on its cluster (N-1 over all sites)."""
        eng = self.engine
        if sites is None:
            self.covering = {}
            emitters = [e for e in eng.emitters if eng.active[e.eid].any()]
        else:
            for key, by_op in list(self.covering.items()):
                if any(sites & t for t in by_op.values()):
                    self.covering[key] = {op: t - sites for op, t in by_op.items() if t - sites}
            emitters = [e for e in eng.emitters if e.device_id in sites and eng.active[e.eid].any()]
        if client is not None:
            from processing.coverage.cluster import covering_by

            found = covering_by(self, client, sites=sites)
        else:
            found = self._covering_by(emitters)
        for key, new_by_op in found.items():
            merged: dict[Operator, set[str]] = {
                op: set(t) for op, t in self.covering.get(key, {}).items()
            }
            for op, towers in new_by_op.items():
                merged.setdefault(op, set()).update(towers)
            self.covering[key] = {op: frozenset(t) for op, t in merged.items()}

    def _covering_by(
        self, emitters: Sequence[Emitter], *, every_sector: bool = False
    ) -> dict[tuple[str, str], dict[Operator, set[str]]]:
        eng = self.engine
        found: dict[tuple[str, str], dict[Operator, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        for e in emitters:
            if e.technology not in eng.config.broadband:
                continue
            idx = np.flatnonzero(eng.in_box(e, self.rows, self.cols) & self.inside)
            if idx.size == 0:
                continue
            level = eng.at(e, self.rows[idx], self.cols[idx], every_sector=every_sector)
            for i in idx[level >= eng.config.thresholds_dbm[e.technology]]:
                found[self.keys[i]][e.operator].add(e.device_id)
        return found

    def update(
        self,
        ts: datetime,
        *,
        changed: set[str] | None = None,
        previous: Coverage | None = None,
    ) -> list[CoverageEvent]:
        """New verdicts after the engine took ``changed`` sites' new states (or after a rebuild
        from ``previous``); returns the village events against the verdicts before."""
        if previous is not None:
            before, before_cov = previous.current, previous.covering
        else:
            before, before_cov = self.current, dict(self.covering)
            if changed:
                self.refresh_covering(changed)
        self.current = self.evaluate()
        events = []
        for i, place in enumerate(self.places):
            if place.kind != "village":
                continue
            old = before.get((place.kind, place.place_id))
            new = self.current[(place.kind, place.place_id)]
            change = place_change(old, new)
            if change is None:
                continue
            kind, lost = change
            was = _towers(before_cov.get(self.keys[i], {}))
            now = _towers(self.covering.get(self.keys[i], {}))
            towers = (was - now) if lost else (now - was)
            events.append(
                CoverageEvent(
                    ts=ts,
                    village_id=place.place_id,
                    kind=kind,
                    operators_lost=tuple(o.value for o in lost),
                    operators_now=tuple(o.value for o in new.operators),
                    towers=tuple(sorted(towers)),
                    population=place.population,
                )
            )
        return events

    # -- N-1 -----------------------------------------------------------------------------
    def criticality(self) -> list[TowerCriticality]:
        """For each tower, who would lose signal if it alone failed (from the predictions)."""
        pop_all: dict[str, int] = defaultdict(int)
        n_all: dict[str, int] = defaultdict(int)
        pop_op: dict[str, int] = defaultdict(int)
        n_op: dict[str, int] = defaultdict(int)
        for i, place in enumerate(self.places):
            if place.kind != "village":
                continue
            by_op = self.covering.get(self.keys[i], {})
            every = _towers(by_op)
            if len(every) == 1:
                (t,) = every
                pop_all[t] += place.population
                n_all[t] += 1
            for towers in by_op.values():
                if len(towers) == 1:
                    (t,) = towers
                    pop_op[t] += place.population
                    n_op[t] += 1
        out = [
            TowerCriticality(
                s.device_id,
                s.operator,
                pop_all[s.device_id],
                n_all[s.device_id],
                pop_op[s.device_id],
                n_op[s.device_id],
            )
            for s in self.engine.sites
        ]
        out.sort(key=lambda c: (-c.population_all, -c.population_operator, c.device_id))
        return out


def place_change(
    old: PlaceCoverage | None, new: PlaceCoverage
) -> tuple[str, list[Operator]] | None:
    """The event kind and the operators lost, or None when nothing known changed. Coverage
    that moves between covered and resting on towers never heard from is no news either way
    (they are reported as unknown): a fleet coming up raises no "restored" storm, and the
    start-up grace running out raises no "lost" one."""
    if old is None:
        return None
    lost = [o for o in old.operators if o not in new.operators and o not in new.unknown]
    gained = [o for o in new.operators if o not in old.operators and o not in old.unknown]
    if not lost and not gained:
        return None
    if lost:  # "lost": nothing left, not even coverage resting on towers never heard from
        return ("lost" if not new.operators and not new.unknown else "degraded"), lost
    return ("restored" if not old.operators and not old.unknown else "improved"), lost


def _freeze(
    found: dict[tuple[str, str], dict[Operator, set[str]]],
) -> dict[tuple[str, str], dict[Operator, frozenset[str]]]:
    return {key: {op: frozenset(t) for op, t in by_op.items()} for key, by_op in found.items()}


def _towers(by_op: dict[Operator, frozenset[str]]) -> set[str]:
    return set().union(*by_op.values()) if by_op else set()
