"""Placement for the generator: candidate points, commune centres, villages and roads.

Everything here works in projected kilometres (``seeds.geo``) on a grid of candidate points
that lie inside the district cells, a margin away from their borders, so that whatever is
placed on them (plus a little jitter) is inside its district polygon.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seeds import geo
from seeds.geo import FloatArray

GRID_KM = 0.5  # spacing of the candidate-point grid
EDGE_MARGIN_KM = 0.35  # candidates keep this far from district borders
JITTER_KM = 0.2  # villages move at most this far off their grid point (< margin / √2)
SEED_BORDER_MARGIN_KM = 1.5  # seed villages keep this far inside the province border
SEED_SPACING_KM = (3.0, 6.0)  # seed villages of one district: this far from the nearest other


@dataclass
class DistrictLayout:
    """Working state for one district while it is generated."""

    raw: dict[str, Any]  # the district record of binh_dinh_divisions.json
    seat: FloatArray  # the district town (GeoNames), projected
    cell: FloatArray  # its nearest-seat cell clipped to the outline, projected
    points: FloatArray = field(default_factory=lambda: np.empty((0, 2)))  # candidates
    centres: dict[int, FloatArray] = field(default_factory=dict)  # commune code → centre
    clear_km: FloatArray = field(default_factory=lambda: np.empty(0))  # points' distance to spots

    @property
    def code(self) -> int:
        return int(self.raw["code"])


def candidate_grid(outline: FloatArray) -> FloatArray:
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    xs = np.arange(np.floor(lo[0] / GRID_KM), np.ceil(hi[0] / GRID_KM) + 1) * GRID_KM
    ys = np.arange(np.floor(lo[1] / GRID_KM), np.ceil(hi[1] / GRID_KM) + 1) * GRID_KM
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    keep = geo.contains(outline, gx, gy)
    return np.column_stack([gx[keep], gy[keep]])


def split_candidates(grid: FloatArray, districts: list[DistrictLayout]) -> None:
    """Give each district the grid points nearest its seat, a margin inside its cell."""
    seats = np.array([d.seat for d in districts])
    owner = geo.nearest(seats[:, 0], seats[:, 1], grid[:, 0], grid[:, 1])
    for i, d in enumerate(districts):
        pts = grid[owner == i]
        d.points = pts[geo.boundary_distance(d.cell, pts[:, 0], pts[:, 1]) >= EDGE_MARGIN_KM]


def distances(pts: FloatArray, to: FloatArray) -> FloatArray:
    """(n, m) planar distances from points (n, 2) to points (m, 2)."""
    return np.asarray(np.hypot(pts[:, None, 0] - to[:, 0], pts[:, None, 1] - to[:, 1]))


def kmeans(
    pts: FloatArray, k: int, rng: np.random.Generator, fixed: FloatArray | None = None
) -> FloatArray:
    """Lloyd's algorithm around ``fixed`` centres that do not move; returns the k free centres,
    snapped to candidate points so that they stay inside."""
    pinned = np.empty((0, 2)) if fixed is None else fixed
    centres = np.vstack([pinned, pts[rng.choice(len(pts), size=k, replace=False)]])
    for _ in range(40):
        label = geo.nearest(centres[:, 0], centres[:, 1], pts[:, 0], pts[:, 1])
        for j in range(len(pinned), len(centres)):
            if np.any(label == j):
                centres[j] = pts[label == j].mean(axis=0)
    free = centres[len(pinned) :]
    return pts[geo.nearest(pts[:, 0], pts[:, 1], free[:, 0], free[:, 1])]


def place_remote(
    names: list[str], pts: FloatArray, outline: FloatArray, rng: np.random.Generator
) -> dict[str, FloatArray]:
    """Seed villages: far west in the district, a few km apart, inside the province border."""
    inner = pts[geo.boundary_distance(outline, pts[:, 0], pts[:, 1]) >= SEED_BORDER_MARGIN_KM]
    inner = inner[np.argsort(inner[:, 0], kind="stable")]  # west first
    lo, hi = SEED_SPACING_KM
    placed: dict[str, FloatArray] = {}
    for name in names:
        if placed:
            gap = distances(inner, np.array(list(placed.values()))).min(axis=1)
            options = inner[(gap >= lo) & (gap <= hi)]
        else:
            options = inner
        placed[name] = options[rng.integers(0, min(10, len(options)))]
    return placed


def place_near(
    pts: FloatArray, spot: FloatArray, clearance_km: float, avoid: list[FloatArray]
) -> FloatArray:
    """The centre of a commune around a remote spot: as far west as it can be while keeping
    ``clearance_km`` from the spot (``pts`` are already clear of every spot) and 5 km from the
    centres in ``avoid``."""
    ok = pts
    if avoid:
        ok = pts[distances(pts, np.array(avoid)).min(axis=1) >= 5.0]
    d = np.hypot(ok[:, 0] - spot[0], ok[:, 1] - spot[1])
    band = ok[d <= max(float(d.min()), clearance_km) + 1.5]
    return np.asarray(band[np.argmin(band[:, 0])])


def place_communes(
    d: DistrictLayout,
    seat_code: int,
    remote: Iterable[int],
    clearance_km: float,
    rng: np.random.Generator,
) -> None:
    """Seat at the town, wards (phường) around it, the rest spread over the cell by k-means,
    ``clearance_km`` away from the remote spots.

    Communes already in ``d.centres`` keep their centre; ``remote`` ones take the west.
    """
    communes = d.raw["communes"]
    fixed = dict(d.centres)
    remote_codes = set(remote)
    wards = [
        c["code"] for c in communes if c["division_type"] == "phường" and c["code"] != seat_code
    ]
    rural = [
        c["code"]
        for c in communes
        if c["code"] not in (seat_code, *wards) and c["code"] not in fixed
    ]
    r_town = max(1.5, 1.6 * float(np.sqrt(len(wards) + 1)))
    from_seat = np.hypot(d.points[:, 0] - d.seat[0], d.points[:, 1] - d.seat[1])
    d.centres[seat_code] = d.seat
    if wards:
        centres = kmeans(d.points[from_seat <= r_town], len(wards), rng, d.seat[None, :])
        for code, i in zip(wards, rng.permutation(len(wards)), strict=True):
            d.centres[code] = centres[i]
    pinned = np.array(list(fixed.values())) if fixed else None
    ok = (from_seat >= r_town + 0.75) & (d.clear_km >= clearance_km)
    centres = kmeans(d.points[ok], len(rural), rng, pinned)
    free = list(range(len(centres)))
    for code in (c for c in rural if c in remote_codes):
        i = min(free, key=lambda j: float(centres[j][0]))
        d.centres[code] = centres[i]
        free.remove(i)
    rest = [c for c in rural if c not in d.centres]
    for code, i in zip(rest, rng.permutation(free), strict=True):
        d.centres[code] = centres[int(i)]


def place_villages(
    d: DistrictLayout, code: int, n: int, spread_km: float, rng: np.random.Generator
) -> FloatArray:
    """n villages in the commune's share of the district (nearest centre), nearest first."""
    codes = list(d.centres)
    centres = np.array([d.centres[c] for c in codes])
    mine = d.points[
        geo.nearest(centres[:, 0], centres[:, 1], d.points[:, 0], d.points[:, 1])
        == codes.index(code)
    ]
    centre = d.centres[code]
    dist = np.hypot(mine[:, 0] - centre[0], mine[:, 1] - centre[1])
    weight = np.exp(-dist / spread_km)
    pick = rng.choice(len(mine), size=min(n, len(mine)), replace=False, p=weight / weight.sum())
    pts = mine[pick] + rng.uniform(-JITTER_KM, JITTER_KM, size=(len(pick), 2))
    order = np.argsort(np.hypot(pts[:, 0] - centre[0], pts[:, 1] - centre[1]), kind="stable")
    return np.asarray(pts[order])


def bent_line(
    a: FloatArray, b: FloatArray, area: FloatArray, bends: int, rng: np.random.Generator
) -> FloatArray:
    """A road from a to b with a few sideways bends, kept inside ``area`` where it can be."""
    along = np.linspace(0.0, 1.0, bends + 2)[1:-1]
    normal = np.array([-(b - a)[1], (b - a)[0]])
    pts = [a]
    for t in along:
        p = a + t * (b - a) + normal * rng.normal(0.0, 0.08)
        pts.append(p if bool(geo.contains(area, p[0], p[1])) else a + t * (b - a))
    pts.append(b)
    return np.array(pts)
