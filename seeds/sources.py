"""Reading the shipped data files in ``seeds/data/`` (see its README for sources and licences)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
DIVISIONS = DATA / "binh_dinh_divisions.json"
DISTRICT_TOWNS = DATA / "district_towns.csv"
OUTLINE = DATA / "province_outline.json"
SEED_DEAD_SPOTS = DATA / "seed_dead_spots.json"
PLACES = DATA / "places.json"
# Synthetic terrain for Bình Định, made by `python -m seeds.terrain` (see data/README.md)
SCENARIO_DEM = DATA / "binh_dinh_dem.tif"


@dataclass(frozen=True, slots=True)
class Town:
    district_code: int
    name: str
    lat: float
    lon: float


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def divisions() -> dict[str, Any]:
    """Bình Định's districts and communes: GSO names and codes (vietnam-provinces 0.6.0)."""
    doc: dict[str, Any] = _json(DIVISIONS)
    return doc


def district_towns() -> dict[int, Town]:
    """District seats by district code (GeoNames positions)."""
    with DISTRICT_TOWNS.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        towns = [
            Town(int(r["district_code"]), r["town"], float(r["lat"]), float(r["lon"])) for r in rows
        ]
    return {t.district_code: t for t in towns}


def outline() -> list[tuple[float, float]]:
    """The hand-drawn, approximate province outline as (lat, lon) vertices."""
    return [(float(a), float(b)) for a, b in _json(OUTLINE)["points"]]


def seed_places() -> list[dict[str, Any]]:
    """The six place names of the seed article (five villages and their commune)."""
    places: list[dict[str, Any]] = _json(SEED_DEAD_SPOTS)["places"]
    return places


def places() -> dict[str, Any]:
    """The generated places (``python -m seeds.generate``)."""
    doc: dict[str, Any] = _json(PLACES)
    return doc
