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
from devices.radio import ANTENNA_GAIN_DBI, KNOWN_BANDS_MHZ
from devices.sectors import SectorRecord, out_of_range

# The engine's name for the contract's sector record.
SectorInput = SectorRecord


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


# The ranges are the device contract's, checked again here because a registry row may come from
# elsewhere than a decoded birth (a scenario load, an old row).
def sector_problem(s: SectorInput) -> str | None:
    numbers = {
        "azimuth_deg": s.azimuth_deg,
        "tilt_deg": s.tilt_deg,
        "tx_power_dbm": s.tx_power_dbm,
        "beamwidth_deg": s.beamwidth_deg,
        "antenna_gain_dbi": s.antenna_gain_dbi,
    }
    if not _finite(s.band_mhz, *numbers.values()):
        return "a radio parameter is not a finite number"
    if s.band_mhz not in KNOWN_BANDS_MHZ:
        bands = ", ".join(f"{b:g}" for b in sorted(KNOWN_BANDS_MHZ))
        return f"unknown band {s.band_mhz:g} MHz (known: {bands})"
    return next(filter(None, (out_of_range(k, v) for k, v in numbers.items())), None)


def site_problem(site: SiteInput, inside: bool) -> str | None:
    if not _finite(site.lat, site.lon):
        return "position is not a finite number"
    if not _finite(site.antenna_height_m):
        return f"antenna height {site.antenna_height_m} m is not a finite number"
    if why := out_of_range("antenna_height_m", site.antenna_height_m):
        return why
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
                antenna_gain_dbi=num(s, "antenna_gain_dbi")
                if s.get("antenna_gain_dbi") is not None
                else ANTENNA_GAIN_DBI,
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
