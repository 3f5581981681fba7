"""The device inventory, generated at load time from the places (deterministic, fast).

Base stations (``seeds.bts``), cameras (``seeds.cameras``), broadband OLTs
(``seeds.broadband``) and drive-test probes (here). Each part draws from its own random
stream, so changing one does not move the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from devices.kinds import Operator
from seeds.broadband import (
    HOUSEHOLDS_PASSED_SHARE,
    NO_FIBRE_COMMUNES,
    PERSONS_PER_HOUSEHOLD,
    build_broadband,
)
from seeds.bts import BTS_TOTAL, OPERATOR_NAME, OPERATOR_SHARES, build_bts
from seeds.cameras import build_cameras
from seeds.model import BroadbandNode, BtsSite, Camera, Probe
from seeds.sites import Ground

if TYPE_CHECKING:
    from seeds.terrain import Terrain

__all__ = [
    "HOUSEHOLDS_PASSED_SHARE",
    "INVENTORY_SEED",
    "NO_FIBRE_COMMUNES",
    "OPERATOR_SHARES",
    "PERSONS_PER_HOUSEHOLD",
    "PROBE_STARTS",
    "Inventory",
    "build_inventory",
]

log = logging.getLogger(__name__)

INVENTORY_SEED = 1723
# Drive-test probes: two per operator, each starting from a district seat (district code).
PROBE_STARTS: tuple[tuple[Operator, int], ...] = (
    (Operator.VIETTEL, 540),  # Quy Nhơn
    (Operator.VIETTEL, 546),  # Vĩnh Thạnh: towards the Vĩnh Kim dead spots
    (Operator.VINAPHONE, 549),  # An Nhơn
    (Operator.VINAPHONE, 551),  # Vân Canh: towards Canh Tiến, Cà Nâu, Canh Giao
    (Operator.MOBIFONE, 543),  # Bồng Sơn
    (Operator.MOBIFONE, 547),  # Phú Phong
    (Operator.VIETNAMOBILE, 548),  # Phù Cát
    (Operator.VIETNAMOBILE, 542),  # An Lão
)


@dataclass(frozen=True, slots=True)
class Inventory:
    bts: tuple[BtsSite, ...]
    cameras: tuple[Camera, ...]
    broadband: tuple[BroadbandNode, ...]
    probes: tuple[Probe, ...]


def probe_starts(ground: Ground) -> tuple[tuple[Operator, int], ...]:
    """A generated province's probes: PROBE_STARTS' operators, from the district seats in turn,
    the most populous first (the rule stands in for Bình Định's hand-picked starts)."""
    pops = {d.code: 0 for d in ground.districts}
    for c in ground.communes:
        pops[c.district_code] += c.population
    ranked = sorted(pops, key=lambda code: (-pops[code], code))
    return tuple((op, ranked[i % len(ranked)]) for i, (op, _) in enumerate(PROBE_STARTS))


def build_probes(
    ground: Ground,
    starts: tuple[tuple[Operator, int], ...] = PROBE_STARTS,
    tag: str = "",
) -> tuple[Probe, ...]:
    _, communes = ground.locate(ground.seat_xy)
    seat_commune = {d.code: int(c) for d, c in zip(ground.districts, communes, strict=True)}
    by_code = {d.code: d for d in ground.districts}
    seen: dict[Operator, int] = {}
    probes = []
    for n, (op, code) in enumerate(starts, start=1):
        seen[op] = seen.get(op, 0) + 1
        d = by_code[code]
        probes.append(
            Probe(
                device_id=f"PRB-{tag}{n:03d}",
                operator=op,
                name=f"Drive test {OPERATOR_NAME[op]} {seen[op]} ({d.town})",
                lat=d.lat,
                lon=d.lon,
                district_code=code,
                commune_code=seat_commune[code],
            )
        )
    return tuple(probes)


def scenario_terrain() -> Terrain | None:
    """Bình Định's synthetic DEM, which the operators' planners look over (seeds.bts). None,
    logged, while it is not written: python -m seeds.terrain makes it from the places alone."""
    # imported here: rasterio is for the processes that load the scenario, not all of seeds
    from seeds import sources, terrain

    if not sources.SCENARIO_DEM.exists():
        log.warning("%s: missing, sites placed without terrain", sources.SCENARIO_DEM)
        return None
    return terrain.read(sources.SCENARIO_DEM)


def build_inventory(
    ground: Ground,
    seed: int = INVENTORY_SEED,
    *,
    province_code: int | None = None,
    bts_total: int = BTS_TOTAL,
) -> Inventory:
    """Bình Định's inventory by default; with ``province_code``, a generated province's:
    ``bts_total`` sites, ids tagged with the code (BTS-VTL-24-0001, CAM-24-0001, PRB-24-001;
    OLT ids carry commune codes, national already), its own random streams, probes by rule."""

    def stream(part: int) -> np.random.Generator:
        extra = [] if province_code is None else [province_code]
        return np.random.default_rng([seed, part, *extra])

    if province_code is None and ground.terrain is None:
        ground = replace(ground, terrain=scenario_terrain())
    tag = "" if province_code is None else f"{province_code:02d}-"
    starts = PROBE_STARTS if province_code is None else probe_starts(ground)
    return Inventory(
        bts=build_bts(ground, stream(1), total=bts_total, tag=tag),
        cameras=build_cameras(ground, stream(2), tag),
        broadband=build_broadband(ground, stream(3)),
        probes=build_probes(ground, starts, tag),
    )
