"""Base stations as the engine takes them, and the checks that keep bad ones out of the raster.

A sector with impossible parameters is refused at registration with a one-line reason; the
rest of its site (and of the province) is computed as usual.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.kinds import Operator, Technology
from devices.radio import KNOWN_BANDS_MHZ


@dataclass(frozen=True, slots=True)
class SectorInput:
    sector: int
    azimuth_deg: float
    tilt_deg: float
    band_mhz: float
    technology: Technology
    tx_power_dbm: float
    beamwidth_deg: float


@dataclass(frozen=True, slots=True)
class SiteInput:
    device_id: str
    operator: Operator
    lat: float
    lon: float
    antenna_height_m: float
    sectors: tuple[SectorInput, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    device_id: str
    sector: int | None  # None: the whole site
    reason: str


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def sector_problem(s: SectorInput) -> str | None:
    if not _finite(s.azimuth_deg, s.tilt_deg, s.band_mhz, s.tx_power_dbm, s.beamwidth_deg):
        return "a radio parameter is not a finite number"
    if s.band_mhz not in KNOWN_BANDS_MHZ:
        bands = ", ".join(f"{b:g}" for b in sorted(KNOWN_BANDS_MHZ))
        return f"unknown band {s.band_mhz:g} MHz (known: {bands})"
    if not 0.0 <= s.azimuth_deg <= 360.0:
        return f"azimuth {s.azimuth_deg}° is not within 0–360°"
    if not -10.0 <= s.tilt_deg <= 30.0:
        return f"tilt {s.tilt_deg}° is not within −10–30°"
    if not 0.0 < s.tx_power_dbm <= 60.0:
        return f"transmit power {s.tx_power_dbm} dBm is not within 0–60 dBm"
    if not 10.0 <= s.beamwidth_deg <= 360.0:
        return f"beamwidth {s.beamwidth_deg}° is not within 10–360°"
    return None


def site_problem(site: SiteInput, inside: bool) -> str | None:
    if not _finite(site.lat, site.lon):
        return "position is not a finite number"
    if not _finite(site.antenna_height_m) or site.antenna_height_m <= 0:
        return f"antenna height {site.antenna_height_m} m is not above ground"
    if site.antenna_height_m > 300:
        return f"antenna height {site.antenna_height_m} m is above 300 m"
    if not inside:
        return f"position {site.lat:.5f}, {site.lon:.5f} is outside the province raster"
    return None


def site_from_meta(meta: Mapping[str, Any]) -> SiteInput:
    """A registry birth record (``devices.schemas`` BtsMeta as a dict) as a SiteInput.

    Missing or mistyped fields become NaN so that the checks above name them, not a KeyError.
    """

    def num(d: Mapping[str, Any], key: str) -> float:
        v = d.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

    sectors = []
    for s in meta.get("sectors") or []:
        try:
            tech = Technology(s.get("technology"))
        except ValueError:
            tech = Technology.G4
            band = math.nan  # refused below with "not a finite number"
        else:
            band = num(s, "band_mhz")
        sectors.append(
            SectorInput(
                sector=int(s.get("sector") or 0),
                azimuth_deg=num(s, "azimuth_deg"),
                tilt_deg=num(s, "tilt_deg"),
                band_mhz=band,
                technology=tech,
                tx_power_dbm=num(s, "tx_power_dbm"),
                beamwidth_deg=num(s, "beamwidth_deg"),
            )
        )
    return SiteInput(
        device_id=str(meta["device_id"]),
        operator=Operator(meta["operator"]),
        lat=num(meta, "lat"),
        lon=num(meta, "lon"),
        antenna_height_m=num(meta, "antenna_height_m"),
        sectors=tuple(sectors),
    )
