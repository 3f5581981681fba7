"""Villages and commune centres, and what coverage each has: per operator, covered or not."""

from __future__ import annotations

from dataclasses import dataclass

from devices.kinds import Operator, Technology


@dataclass(frozen=True, slots=True)
class Place:
    kind: str  # "village" or "commune" (the commune centre)
    place_id: str  # village id, or the commune's GSO code
    name: str
    district_code: int
    commune_code: int
    lat: float
    lon: float
    population: int


@dataclass(frozen=True, slots=True)
class PlaceCoverage:
    place: Place
    operators: tuple[Operator, ...]  # that cover it now (any broadband technology)
    measured: tuple[Operator, ...]  # whose verdict here comes from probe measurements
    levels: dict[tuple[Operator, Technology], float]  # best level, dBm (floor where none)
    # operators that would cover it only through towers never heard from: neither covered
    # nor lost until those towers report
    unknown: tuple[Operator, ...] = ()

    @property
    def dead_spot(self) -> bool:
        return not self.operators and not self.unknown
