"""A province-wide camera system (synthetic): town centres and main roads.

Bắc Giang's programme puts "a surveillance and security camera system across the province"
first (seed-documents/001); the Bình Định scenario gets one of the same shape. Counts and
positions are ours.
"""

from __future__ import annotations

import numpy as np

from seeds import geo
from seeds.geo import FloatArray
from seeds.model import Camera
from seeds.sites import Ground, short_name, to_latlon

PEOPLE_PER_TOWN_CAMERA = 1500  # a ward or township gets one camera per this many people
TOWN_CAMERAS = (6, 24)  # ... at least, at most
SEAT_EXTRA_CAMERAS = 20  # district seats: squares, markets, the People's Committee
COMMUNE_CENTRE_CAMERAS = 1  # every rural commune centre
ROAD_SPACING_KM = {"national": 1.2, "district": 5.0}  # tracks to remote villages get none


def _along(points: FloatArray, spacing_km: float) -> tuple[FloatArray, FloatArray]:
    """Points every ``spacing_km`` along a polyline (first one half a spacing in), with their
    distance from the start."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.arange(spacing_km / 2, cum[-1], spacing_km)
    x = np.interp(at, cum, points[:, 0])
    y = np.interp(at, cum, points[:, 1])
    return np.column_stack([x, y]), at


def build_cameras(ground: Ground, rng: np.random.Generator, tag: str = "") -> tuple[Camera, ...]:
    seats = {(round(d.lat, 5), round(d.lon, 5)) for d in ground.districts}
    rows: list[tuple[FloatArray, str, str]] = []  # position, name, site type
    for c, xy in zip(ground.communes, ground.commune_xy, strict=True):
        if c.division_type == "xã":
            n, sd = COMMUNE_CENTRE_CAMERAS, 0.15
        else:
            n = int(np.clip(round(c.population / PEOPLE_PER_TOWN_CAMERA), *TOWN_CAMERAS))
            sd = 0.5
        if (round(c.lat, 5), round(c.lon, 5)) in seats:
            n += SEAT_EXTRA_CAMERAS
        pts = ground.place(np.repeat(xy[None, :], n, axis=0), sd, rng)
        rows += [(p, f"Camera {short_name(c.name)} {k:02d}", "town") for k, p in enumerate(pts, 1)]
    for road in ground.roads:
        spacing = ROAD_SPACING_KM.get(road.road_class)
        if spacing is None:
            continue
        line = np.column_stack(geo.to_km([p[0] for p in road.points], [p[1] for p in road.points]))
        pts, km = _along(line, spacing)
        label = (
            road.name if road.road_class == "national" else road.name.removeprefix("Đường huyện ")
        )
        rows += [(p, f"Camera {label} km {k:.1f}", "road") for p, k in zip(pts, km, strict=True)]
    xy = np.array([r[0] for r in rows])
    district, commune = ground.locate(xy)
    return tuple(
        Camera(
            device_id=f"CAM-{tag}{n:04d}",
            name=name,
            lat=lat,
            lon=lon,
            district_code=int(d),
            commune_code=int(cc),
            site_type=site_type,
        )
        for n, ((_, name, site_type), (lat, lon), d, cc) in enumerate(
            zip(rows, to_latlon(xy), district, commune, strict=True), start=1
        )
    )
