"""Drive-test routes along the scenario's roads (synthetic polylines between towns, communes
and villages, see ``seeds``).

A probe's route is a closed tour from its start: every district road and track reachable
from there without taking a national road, each driven out and back, in the order a depth-first
walk meets them (so a track to a remote village is driven from the commune it leaves). The
probe loops the tour at a steady speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seeds import Road
from seeds.geo import FloatArray, to_deg, to_km

LOCAL_CLASSES = ("district", "track")  # national roads would take a probe across the province
SNAP_KM = 0.05  # road ends closer than this are one junction


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    x_km: FloatArray  # vertices, projected (seeds.geo)
    y_km: FloatArray
    cum_km: FloatArray  # distance from the start to each vertex
    synthetic: bool

    @property
    def length_km(self) -> float:
        return float(self.cum_km[-1])

    def position(self, km: float) -> tuple[float, float]:
        """(lat, lon) after driving ``km`` from the start, looping the tour."""
        if self.length_km <= 0:
            lat, lon = to_deg(self.x_km[0], self.y_km[0])
            return float(lat), float(lon)
        d = km % self.length_km
        i = int(np.clip(np.searchsorted(self.cum_km, d, side="right") - 1, 0, len(self.cum_km) - 2))
        seg = self.cum_km[i + 1] - self.cum_km[i]
        f = 0.0 if seg <= 0 else (d - self.cum_km[i]) / seg
        x = self.x_km[i] + f * (self.x_km[i + 1] - self.x_km[i])
        y = self.y_km[i] + f * (self.y_km[i + 1] - self.y_km[i])
        lat, lon = to_deg(x, y)
        return float(lat), float(lon)


def tour(start: tuple[float, float], roads: Sequence[Road], name: str = "") -> Route:
    """The closed tour of the local roads reachable from ``start`` (lat, lon)."""
    local = [r for r in roads if r.road_class in LOCAL_CLASSES and len(r.points) >= 2]
    paths = [np.column_stack(to_km([p[0] for p in r.points], [p[1] for p in r.points]))
             for r in local]  # fmt: skip
    ends = [(p[0], p[-1]) for p in paths]
    sx, sy = to_km(start[0], start[1])
    here = np.array([float(sx), float(sy)])
    points: list[FloatArray] = [here[None, :]]
    used = [False] * len(local)

    def walk(at: FloatArray) -> None:
        for i, (a, b) in enumerate(ends):
            if used[i]:
                continue
            if np.hypot(*(a - at)) <= SNAP_KM:
                path = paths[i]
            elif np.hypot(*(b - at)) <= SNAP_KM:
                path = paths[i][::-1]
            else:
                continue
            used[i] = True
            points.append(path)
            walk(path[-1])
            points.append(path[::-1])

    walk(here)
    xy = np.concatenate(points)
    steps = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1]))
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    synthetic = any(r.synthetic for r, u in zip(local, used, strict=True) if u)
    return Route(name, xy[:, 0].copy(), xy[:, 1].copy(), cum, synthetic)
