"""The ground the inventory is built on: where a device may stand, and whose commune it is in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiLineString, Polygon

from seeds import geo
from seeds.geo import FloatArray
from seeds.model import Commune, District, LatLon, Road, Village

if TYPE_CHECKING:  # seeds.terrain pulls in rasterio: loaded only where a DEM is read
    from seeds.terrain import Terrain

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Line of sight as a radio planner checks it on a DEM: the earth bulges with the effective
# radius of k = 4/3 (the median atmosphere, as processing.coverage.terrain), the handset is
# 1.5 m above the ground, and the ray must clear every sample by 60 % of the first Fresnel zone
# at 1800 MHz (the usual clearance criterion; there diffraction costs about nothing).
EFFECTIVE_EARTH_RADIUS_KM = 6371.0 * 4.0 / 3.0
HANDSET_M = 1.5
FRESNEL_SHARE, FRESNEL_MHZ = 0.6, 1800.0
LOS_SAMPLES = 64  # along each path: a sample every 100 m at 6 km, finer than the DEM's 275 m
# A radio site is built and powered from a road: within ACCESS_KM of a national or district
# one (tracks carry neither a crane nor a power line).
ACCESS_KM = 1.0
ACCESS_ROAD_CLASSES = frozenset({"national", "district"})


@dataclass(frozen=True)
class Ground:
    """Places as arrays, projected (``seeds.geo``), for vectorised placement."""

    districts: tuple[District, ...]
    communes: tuple[Commune, ...]
    villages: tuple[Village, ...]
    roads: tuple[Road, ...]
    outline: FloatArray  # projected province outline
    seat_xy: FloatArray  # district seats, in the order of ``districts``
    commune_xy: FloatArray  # commune centres, in the order of ``communes``
    village_xy: FloatArray
    # Generated provinces draw districts as unions of commune cells (seeds.province_geometry):
    # there a point's commune is the nearest centre of all, and its district that commune's.
    by_commune: bool = False
    terrain: Terrain | None = None  # ground heights (EPSG:4326); None: the ground is flat

    @classmethod
    def of(
        cls,
        outline: Sequence[LatLon],
        districts: tuple[District, ...],
        communes: tuple[Commune, ...],
        villages: tuple[Village, ...],
        roads: tuple[Road, ...],
        *,
        by_commune: bool = False,
        terrain: Terrain | None = None,
    ) -> Ground:
        def xy(lat: list[float], lon: list[float]) -> FloatArray:
            return np.column_stack(geo.to_km(lat, lon))

        return cls(
            districts,
            communes,
            villages,
            roads,
            geo.polygon_km(outline),
            xy([d.lat for d in districts], [d.lon for d in districts]),
            xy([c.lat for c in communes], [c.lon for c in communes]),
            xy([v.lat for v in villages], [v.lon for v in villages]),
            by_commune,
            terrain,
        )

    @cached_property
    def _outline_shape(self) -> Polygon:
        shape = Polygon(self.outline)
        shapely.prepare(shape)
        return shape

    def allowed(self, xy: FloatArray) -> BoolArray:
        """Inside the province: where any device may stand (seeds.bts states where operators
        build their sites)."""
        # GEOS on a prepared polygon: generated outlines have hundreds of vertices
        return np.asarray(shapely.contains_xy(self._outline_shape, xy[:, 0], xy[:, 1]))

    @cached_property
    def _access_roads(self) -> MultiLineString | None:
        lines = [
            geo.polygon_km(r.points)
            for r in self.roads
            if r.road_class in ACCESS_ROAD_CLASSES and len(r.points) > 1
        ]
        if not lines:
            return None
        shape = MultiLineString(lines)
        shapely.prepare(shape)
        return shape

    def road_distance_km(self, xy: FloatArray) -> FloatArray:
        """Distance from each point to the nearest national or district road (inf: none)."""
        if self._access_roads is None:
            return np.full(len(xy), np.inf)
        return np.asarray(shapely.distance(self._access_roads, shapely.points(xy)))

    def accessible(self, xy: FloatArray) -> BoolArray:
        """Within ACCESS_KM of a national or district road (everywhere, where none is drawn)."""
        if self._access_roads is None:
            return np.ones(len(xy), dtype=np.bool_)
        return self.road_distance_km(xy) <= ACCESS_KM

    def height_m(self, xy: FloatArray) -> FloatArray:
        """Ground height at each point (``Terrain.height_at``; 0 without a DEM)."""
        if self.terrain is None:
            return np.zeros(len(xy))
        return self.terrain.height_at(xy)

    def sees(self, site: FloatArray, mast_m: FloatArray, target: FloatArray) -> BoolArray:
        """Whether the antenna ``mast_m`` above each site has line of sight, with the Fresnel
        clearance, to a handset at the paired target (True everywhere without a DEM)."""
        if self.terrain is None or len(site) == 0:
            return np.ones(len(site), dtype=np.bool_)
        t = (np.arange(1, LOS_SAMPLES + 1) / (LOS_SAMPLES + 1))[None, :]  # (1, k)
        path = site[:, None, :] + t[..., None] * (target - site)[:, None, :]  # (n, k, 2)
        ground = self.height_m(path.reshape(-1, 2)).reshape(path.shape[:2])
        d = np.hypot(*(target - site).T)[:, None]  # km
        d1, d2 = t * d, (1 - t) * d
        bulge = 500.0 * d1 * d2 / EFFECTIVE_EARTH_RADIUS_KM  # m
        tx = self.height_m(site) + mast_m
        rx = self.height_m(target) + HANDSET_M
        ray = tx[:, None] * (1 - t) + rx[:, None] * t
        wavelength = 299.792458 / FRESNEL_MHZ
        fresnel = np.sqrt(wavelength * 1000.0 * d1 * d2 / np.maximum(d, 1e-9))
        return np.asarray(np.all(ray - ground - bulge >= FRESNEL_SHARE * fresnel, axis=1))

    def locate(self, xy: FloatArray) -> tuple[IntArray, IntArray]:
        """District (nearest seat, as the district polygons are drawn) and commune (nearest
        centre of that district) of each point; with ``by_commune``, the nearest centre of all
        and its district."""
        if self.by_commune:
            nearest = geo.nearest(self.commune_xy[:, 0], self.commune_xy[:, 1], xy[:, 0], xy[:, 1])
            codes = np.array([c.code for c in self.communes], dtype=np.int64)
            districts = np.array([c.district_code for c in self.communes], dtype=np.int64)
            return districts[nearest], codes[nearest]
        seat = geo.nearest(self.seat_xy[:, 0], self.seat_xy[:, 1], xy[:, 0], xy[:, 1])
        district = np.array([d.code for d in self.districts], dtype=np.int64)[seat]
        c_district = np.array([c.district_code for c in self.communes], dtype=np.int64)
        d2 = (xy[:, None, 0] - self.commune_xy[:, 0]) ** 2 + (
            xy[:, None, 1] - self.commune_xy[:, 1]
        ) ** 2
        d2 = np.where(c_district[None, :] == district[:, None], d2, np.inf)
        commune = np.array([c.code for c in self.communes], dtype=np.int64)[d2.argmin(axis=1)]
        return district, commune

    def place(
        self,
        base: FloatArray,
        sd_km: float,
        rng: np.random.Generator,
        *,
        max_km: float | None = None,
    ) -> FloatArray:
        """Jitter each base point (normal, ``sd_km``), redrawing jitters that land where a
        device may not stand; a point still refused after a few draws keeps its base."""
        out = base.copy()
        todo = np.arange(len(base))
        limit = max_km if max_km is not None else 3 * sd_km
        for _ in range(8):
            if len(todo) == 0:
                break
            step = rng.normal(0.0, sd_km, size=(len(todo), 2))
            norm = np.maximum(np.hypot(step[:, 0], step[:, 1]) / limit, 1.0)
            cand = base[todo] + step / norm[:, None]
            ok = self.allowed(cand)
            out[todo[ok]] = cand[ok]
            todo = todo[~ok]
        return out


def to_latlon(xy: FloatArray) -> list[tuple[float, float]]:
    lat, lon = geo.to_deg(xy[:, 0], xy[:, 1])
    return [(round(float(a), 6), round(float(b), 6)) for a, b in zip(lat, lon, strict=True)]


def short_name(name: str) -> str:
    """A division's name without its type: "Xã Vĩnh Kim" → "Vĩnh Kim"."""
    for prefix in ("Thành phố ", "Thị xã ", "Huyện ", "Quận ", "Phường ", "Thị trấn ", "Xã "):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
