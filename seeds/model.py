"""The scenario's value objects: places (real names and codes, synthetic positions) and devices.

Positions are (lat, lon) in degrees (WGS 84); polygons and polylines are tuples of (lat, lon)
pairs, first vertex not repeated. Codes are GSO administrative codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devices.kinds import Kind, Operator
from devices.sectors import SectorRecord

# A site's sectors are the device contract's record (devices.sectors), under the scenario's name.
BtsSector = SectorRecord

LatLon = tuple[float, float]


@dataclass(frozen=True, slots=True)
class District:
    code: int
    name: str
    town: str  # the district seat, named as in GeoNames (Vietnamese spelling)
    lat: float  # the seat's GeoNames position
    lon: float
    mountainous: bool
    polygon: tuple[LatLon, ...]  # synthetic: nearest-seat cell clipped to the outline


@dataclass(frozen=True, slots=True)
class Commune:
    code: int
    name: str
    district_code: int
    division_type: str  # "phường", "thị trấn" or "xã"
    lat: float  # synthetic commune centre
    lon: float
    population: int  # synthetic: the sum of its villages
    has_fibre: bool
    households: int = 0  # population over seeds.broadband.PERSONS_PER_HOUSEHOLD
    households_passed: int = 0  # by fibre (seeds.broadband); 0 where no OLT serves it


@dataclass(frozen=True, slots=True)
class Village:
    village_id: str
    name: str
    commune_code: int
    district_code: int
    lat: float
    lon: float
    population: int
    synthetic: bool
    seed_dead_spot: bool  # one of the seed documents' villages without mobile broadband


@dataclass(frozen=True, slots=True)
class SeedPlace:
    """One of the six place names of the seed article (five villages and their commune)."""

    name: str
    kind: str  # "village" or "commune"
    district_code: int
    commune_code: int
    village_id: str | None  # the village, for kind "village"


@dataclass(frozen=True, slots=True)
class PlacedDevice:
    """What every device of the inventory has: its id and name, where it stands, and the
    district and commune it stands in."""

    device_id: str
    name: str
    lat: float
    lon: float
    district_code: int
    commune_code: int


@dataclass(frozen=True, slots=True)
class BtsSite(PlacedDevice):
    operator: Operator
    antenna_height_m: float
    sectors: tuple[BtsSector, ...]


@dataclass(frozen=True, slots=True)
class Camera(PlacedDevice):
    site_type: str  # "town" or "road"


@dataclass(frozen=True, slots=True)
class BroadbandNode(PlacedDevice):
    communes_served: tuple[int, ...]
    households_passed: int
    households_total: int
    passed_by_commune: tuple[int, ...] = ()  # households passed, one per communes_served


@dataclass(frozen=True, slots=True)
class Probe(PlacedDevice):
    """A drive-test probe; it moves, so its position is where it starts."""

    operator: Operator


@dataclass(frozen=True, slots=True)
class Road:
    name: str
    points: tuple[LatLon, ...]
    synthetic: bool
    road_class: str = "district"  # "national", "district" or "track"


@dataclass(frozen=True, slots=True)
class ScenarioDevice:
    kind: Kind
    device_id: str
    meta: dict[str, Any]  # the birth payload; validates against devices.schemas.META_TYPES[kind]
