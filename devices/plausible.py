"""Which changes of a base station's birth record a device may make by itself.

A birth record redraws coverage: with one device's credential, a record moving a site across
the province, raising its power or handing it to another operator would paint coverage where
there is none (or hide an outage). Every field is range-checked when decoded (``devices.schemas``);
this judges the change against the registered record. What a field crew really changes stays
well inside these bounds (a re-surveyed position, a new antenna mount, a re-tuned sector); a
real relocation or re-planning goes through the registry (``ioc scenario load``), not a birth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MAX_MOVE_M = 500.0  # a re-survey, not a relocation
MAX_HEIGHT_CHANGE_M = 15.0  # a new mount on the same mast
MAX_POWER_RISE_DB = 3.0  # above the site's strongest registered sector
EARTH_RADIUS_M = 6_371_000.0


def _num(doc: Mapping[str, Any], key: str) -> float | None:
    v = doc.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def _strongest_dbm(doc: Mapping[str, Any]) -> float | None:
    powers = [
        p
        for s in doc.get("sectors") or []
        if isinstance(s, Mapping) and (p := _num(s, "tx_power_dbm")) is not None
    ]
    return max(powers, default=None)


def implausible_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why ``new`` is not a plausible field change of the registered ``old``; None if it is."""
    if old.get("operator") and new.get("operator") != old.get("operator"):
        return f"operator changed from {old.get('operator')} to {new.get('operator')}"
    coords = [_num(d, k) for d in (old, new) for k in ("lat", "lon")]
    lat1, lon1, lat2, lon2 = coords
    if lat1 is not None and lon1 is not None and lat2 is not None and lon2 is not None:
        moved = _distance_m(lat1, lon1, lat2, lon2)
        if moved > MAX_MOVE_M:
            return f"moved {moved:,.0f} m (more than {MAX_MOVE_M:,.0f} m)"
    h_old, h_new = _num(old, "antenna_height_m"), _num(new, "antenna_height_m")
    if h_old is not None and h_new is not None and abs(h_new - h_old) > MAX_HEIGHT_CHANGE_M:
        return (
            f"antenna height changed from {h_old:g} m to {h_new:g} m"
            f" (more than {MAX_HEIGHT_CHANGE_M:g} m)"
        )
    p_old, p_new = _strongest_dbm(old), _strongest_dbm(new)
    if p_old is not None and p_new is not None and p_new > p_old + MAX_POWER_RISE_DB:
        return (
            f"transmit power raised to {p_new:g} dBm, {p_new - p_old:.1f} dB above the site's"
            f" strongest registered sector (at most {MAX_POWER_RISE_DB:g} dB)"
        )
    return None
