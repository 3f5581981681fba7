"""The ground the inventory is built on: where a device may stand, and whose commune it is in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon

from seeds import geo
from seeds.geo import FloatArray
from seeds.model import Commune, District, LatLon, Road, Village

# No base station stands within this distance of a seed dead-spot village (the villages the
# seed article reports without mobile broadband), so that they plausibly end up without signal.
# A later issue calibrates the coverage model against it; commune centres are generated at
# least 13.5 km from those villages (seeds.generate.CENTRE_CLEARANCE_KM).
DEAD_SPOT_EXCLUSION_KM = 12.0

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


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
    seed_latlon: FloatArray  # the seed dead-spot villages, (k, 2) degrees
    # Generated provinces draw districts as unions of commune cells (seeds.province_geometry):
    # there a point's commune is the nearest centre of all, and its district that commune's.
    by_commune: bool = False

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
    ) -> Ground:
        def xy(lat: list[float], lon: list[float]) -> FloatArray:
            return np.column_stack(geo.to_km(lat, lon))

        seeds = [v for v in villages if v.seed_dead_spot]
        return cls(
            districts,
            communes,
            villages,
            roads,
            geo.polygon_km(outline),
            xy([d.lat for d in districts], [d.lon for d in districts]),
            xy([c.lat for c in communes], [c.lon for c in communes]),
            xy([v.lat for v in villages], [v.lon for v in villages]),
            np.array([[v.lat, v.lon] for v in seeds], dtype=np.float64).reshape(-1, 2),
            by_commune,
        )

    @cached_property
    def _outline_shape(self) -> Polygon:
        shape = Polygon(self.outline)
        shapely.prepare(shape)
        return shape

    def seed_distance_km(self, xy: FloatArray) -> FloatArray:
        """Great-circle distance from each projected point to the nearest seed dead spot."""
        if len(self.seed_latlon) == 0:
            return np.full(len(xy), np.inf)
        lat, lon = geo.to_deg(xy[:, 0], xy[:, 1])
        d = geo.haversine_km(
            lat[:, None], lon[:, None], self.seed_latlon[:, 0], self.seed_latlon[:, 1]
        )
        return np.asarray(d.min(axis=1))

    def allowed(self, xy: FloatArray, *, radio: bool) -> BoolArray:
        """Inside the province, and (for radio sites) outside every dead-spot exclusion."""
        # GEOS on a prepared polygon: generated outlines have hundreds of vertices
        ok = shapely.contains_xy(self._outline_shape, xy[:, 0], xy[:, 1])
        if radio:
            ok &= self.seed_distance_km(xy) >= DEAD_SPOT_EXCLUSION_KM
        return ok

    def push_from_seeds(self, xy: FloatArray) -> FloatArray:
        """Move each point straight away from its nearest dead spot to just outside the
        exclusion radius (points already outside stay)."""
        sx, sy = geo.to_km(self.seed_latlon[:, 0], self.seed_latlon[:, 1])
        i = geo.nearest(sx, sy, xy[:, 0], xy[:, 1])
        away = xy - np.column_stack([sx[i], sy[i]])
        dist = np.hypot(away[:, 0], away[:, 1])
        scale = np.maximum((DEAD_SPOT_EXCLUSION_KM + 0.3) / np.maximum(dist, 1e-9), 1.0)
        return np.column_stack([sx[i], sy[i]]) + away * scale[:, None]

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
        radio: bool,
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
            ok = self.allowed(cand, radio=radio)
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
