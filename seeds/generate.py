"""Generate ``seeds/data/places.json``: synthetic positions and populations for Bình Định.

    python -m seeds.generate            # rewrite the committed file
    python -m seeds.generate --check    # exit 1 if the committed file is stale

Real: district and commune names and GSO codes (binh_dinh_divisions.json), district seats
(district_towns.csv, GeoNames). Synthetic, and marked so: district polygons (nearest-seat
cells clipped to the hand-drawn outline), commune centres, villages, populations and roads.
The output is committed; the loader only reads it. Deterministic: same inputs, same bytes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from seeds import geo, layout, sources
from seeds.geo import FloatArray
from seeds.layout import DistrictLayout
from seeds.sites import short_name

RNG_SEED = 20220531  # the report's date; any fixed number would do
# Commune centres keep this far from the seed dead-spot villages, and ordinary villages the
# second distance: the seed villages are remote (SEED-FACTS), each in its own valley behind a
# ridge (seeds.terrain). Historical values, kept so that places.json stays as committed; the
# inventory no longer keeps towers away from the seed villages (the terrain shadows them).
CENTRE_CLEARANCE_KM = 13.5
VILLAGE_CLEARANCE_KM = 6.0

# Synthetic district populations, chosen to sum to about 1.5 million (SEED-FACTS: "population
# about 1.5 million"): the coast dense, the mountainous west sparse. Not census figures.
DISTRICT_POPULATION: dict[int, int] = {
    540: 290_000,  # Quy Nhơn
    542: 28_000,  # An Lão
    543: 212_000,  # Hoài Nhơn
    544: 84_000,  # Hoài Ân
    545: 168_000,  # Phù Mỹ
    546: 31_000,  # Vĩnh Thạnh
    547: 118_000,  # Tây Sơn
    548: 185_000,  # Phù Cát
    549: 178_000,  # An Nhơn
    550: 182_000,  # Tuy Phước
    551: 28_000,  # Vân Canh
}
MOUNTAINOUS = frozenset({542, 544, 546, 551})  # An Lão, Hoài Ân, Vĩnh Thạnh, Vân Canh
WEST_SPARSE = frozenset({544, 547})  # Hoài Ân and Tây Sơn: mountains in their west
# The commune that holds each district seat (GSO codes).
SEAT_COMMUNE: dict[int, int] = {
    540: 21580,
    542: 21609,
    543: 21640,
    544: 21688,
    545: 21730,
    546: 21786,
    547: 21808,
    548: 21853,
    549: 21907,
    550: 21952,
    551: 21994,
}
REMOTE_COMMUNES = (21622,)  # Xã An Toàn (An Lão) sits far west: the commune without fibre
TYPE_WEIGHT = {"phường": 3.0, "thị trấn": 2.2, "xã": 1.0}  # relative commune populations
SEED_VILLAGE_POPULATION = (150, 450)  # remote hamlets

# Main roads through the real towns they serve, hand-drawn; waypoints (lat, lon).
NATIONAL_ROADS: dict[str, list[tuple[float, float]]] = {
    "QL1A": [
        (14.612, 109.040),
        (14.560, 109.050),
        (14.500, 109.035),
        (14.42907, 109.01560),
        (14.360, 109.030),
        (14.290, 109.040),
        (14.230, 109.045),
        (14.17182, 109.04888),
        (14.110, 109.055),
        (14.050, 109.057),
        (14.00316, 109.05804),
        (13.945, 109.085),
        (13.88579, 109.10823),
        (13.845, 109.140),
        (13.810, 109.160),
        (13.760, 109.170),
        (13.700, 109.180),
        (13.640, 109.200),
        (13.590, 109.215),
        (13.540, 109.230),
    ],
    "QL19": [
        (13.77648, 109.22367),
        (13.790, 109.200),
        (13.810, 109.175),
        (13.845, 109.140),
        (13.88579, 109.10823),
        (13.895, 109.050),
        (13.900, 108.990),
        (13.90964, 108.91903),
        (13.920, 108.860),
        (13.935, 108.810),
        (13.945, 108.775),
    ],
}


def _deg(p: FloatArray) -> list[float]:
    lat, lon = geo.to_deg(p[0], p[1])
    return [round(float(lat), 5), round(float(lon), 5)]


def _split(total: int, weights: FloatArray) -> list[int]:
    """Integers proportional to weights that sum exactly to total (largest remainder)."""
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - int(out.sum())]:
        out[i] += 1
    return [int(v) for v in out]


def build_layout(rng: np.random.Generator) -> tuple[list[DistrictLayout], dict[str, FloatArray]]:
    towns = sources.district_towns()
    outline = geo.polygon_km(sources.outline())
    raw = sources.divisions()["province"]["districts"]
    seats = np.array([geo.to_km(towns[d["code"]].lat, towns[d["code"]].lon) for d in raw])
    cells = geo.voronoi_cells(seats, outline)
    districts = [DistrictLayout(r, s, c) for r, s, c in zip(raw, seats, cells, strict=True)]
    layout.split_candidates(layout.candidate_grid(outline), districts)

    seeds = [s for s in sources.seed_places() if s["kind"] == "village"]
    spots: dict[str, FloatArray] = {}
    for d in districts:
        names = [s["name"] for s in seeds if s["district_code"] == d.code]
        if names:
            spots |= layout.place_remote(names, d.points, outline, rng)
    spot_xy = np.array(list(spots.values()))
    for d in districts:
        clear = layout.distances(d.points, spot_xy).min(axis=1)
        d.points, d.clear_km = (
            d.points[clear >= VILLAGE_CLEARANCE_KM],
            clear[clear >= VILLAGE_CLEARANCE_KM],
        )
        for s in seeds:  # the commune of a seed village: centred as near it as the towers may be
            if s["district_code"] == d.code and s["commune_code"] not in d.centres:
                far = d.points[d.clear_km >= CENTRE_CLEARANCE_KM]
                avoid = [d.seat, *d.centres.values()]
                d.centres[s["commune_code"]] = layout.place_near(
                    far, spots[s["name"]], CENTRE_CLEARANCE_KM, avoid
                )
        layout.place_communes(d, SEAT_COMMUNE[d.code], REMOTE_COMMUNES, CENTRE_CLEARANCE_KM, rng)
    return districts, spots


def commune_weights(d: DistrictLayout, rng: np.random.Generator) -> FloatArray:
    w = []
    for c in d.raw["communes"]:
        weight = TYPE_WEIGHT[c["division_type"]] * rng.lognormal(0.0, 0.3)
        if d.code in WEST_SPARSE:  # thinner towards the mountains
            weight *= float(np.clip(np.exp((d.centres[c["code"]][0] - d.seat[0]) / 10.0), 0.3, 1.6))
        w.append(weight)
    return np.array(w)


def villages_of(
    d: DistrictLayout,
    commune: dict[str, Any],
    population: int,
    spots: dict[str, FloatArray],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    code, kind = commune["code"], commune["division_type"]
    mountain = d.code in MOUNTAINOUS
    seeds = [
        s for s in sources.seed_places() if s["kind"] == "village" and s["commune_code"] == code
    ]
    n = int(rng.integers(4, 10) if mountain and kind == "xã" else rng.integers(6, 13))
    spread = 1.2 if kind != "xã" else (3.0 if mountain else 2.0)
    pts = layout.place_villages(d, code, max(3, n - len(seeds)), spread, rng)
    seed_pops = [int(rng.integers(*SEED_VILLAGE_POPULATION)) for _ in seeds]
    pops = _split(population - sum(seed_pops), rng.lognormal(0.0, 0.35, size=len(pts)))
    names = [
        (f"Khu phố {k}" if kind != "xã" else f"Làng {k}" if mountain else f"Thôn {k}")
        for k in range(1, len(pts) + 1)
    ]
    rows = list(zip(names, pts, pops, [False] * len(pts), strict=True))
    rows += [(s["name"], spots[s["name"]], p, True) for s, p in zip(seeds, seed_pops, strict=True)]
    return [
        {
            "village_id": f"{code}-{k:02d}",
            "name": name,
            "commune_code": code,
            "district_code": d.code,
            "lat": _deg(xy)[0],
            "lon": _deg(xy)[1],
            "population": pop,
            "synthetic": True,
            "seed_dead_spot": seed,
        }
        for k, (name, xy, pop, seed) in enumerate(rows, start=1)
    ]


def roads(
    districts: list[DistrictLayout], spots: dict[str, FloatArray], rng: np.random.Generator
) -> list[dict[str, Any]]:
    out = [
        {
            "name": name,
            "road_class": "national",
            "synthetic": True,
            "points": [list(p) for p in pts],
        }
        for name, pts in NATIONAL_ROADS.items()
    ]
    names = {int(c["code"]): short_name(c["name"]) for d in districts for c in d.raw["communes"]}
    for d in districts:
        seat = SEAT_COMMUNE[d.code]
        for code, centre in d.centres.items():
            if code != seat:
                line = layout.bent_line(d.seat, centre, d.cell, 2, rng)
                out.append(
                    {
                        "name": f"Đường huyện {short_name(d.raw['name'])} – {names[code]}",
                        "road_class": "district",
                        "synthetic": True,
                        "points": [_deg(p) for p in line],
                    }
                )
    for s in sources.seed_places():
        if s["kind"] == "village":
            d = next(d for d in districts if d.code == s["district_code"])
            line = layout.bent_line(d.centres[s["commune_code"]], spots[s["name"]], d.cell, 3, rng)
            out.append(
                {
                    "name": f"Đường vào {s['name']}",
                    "road_class": "track",
                    "synthetic": True,
                    "points": [_deg(p) for p in line],
                }
            )
    return out


def generate() -> dict[str, Any]:
    rng = np.random.default_rng(RNG_SEED)
    districts, spots = build_layout(rng)
    towns = sources.district_towns()
    d_rows: list[dict[str, Any]] = []
    c_rows: list[dict[str, Any]] = []
    v_rows: list[dict[str, Any]] = []
    for d in districts:
        pops = _split(DISTRICT_POPULATION[d.code], commune_weights(d, rng))
        for commune, pop in zip(d.raw["communes"], pops, strict=True):
            villages = villages_of(d, commune, pop, spots, rng)
            v_rows += villages
            lat, lon = _deg(d.centres[commune["code"]])
            if commune["code"] == SEAT_COMMUNE[d.code]:  # exactly the GeoNames town
                lat, lon = towns[d.code].lat, towns[d.code].lon
            c_rows.append(
                {
                    "code": commune["code"],
                    "name": commune["name"],
                    "district_code": d.code,
                    "division_type": commune["division_type"],
                    "lat": lat,
                    "lon": lon,
                    "population": sum(v["population"] for v in villages),
                    "synthetic": True,
                }
            )
        d_rows.append(
            {
                "code": d.code,
                "name": d.raw["name"],
                "division_type": d.raw["division_type"],
                "town": towns[d.code].name,
                "lat": towns[d.code].lat,
                "lon": towns[d.code].lon,
                "mountainous": d.code in MOUNTAINOUS,
                "population": sum(c["population"] for c in c_rows if c["district_code"] == d.code),
                "area_km2": round(geo.area_km2(d.cell)),
                "synthetic_polygon": True,
                "polygon": [_deg(p) for p in d.cell],
            }
        )
    province = sources.divisions()["province"]
    about = {
        "generator": "python -m seeds.generate",
        "rng_seed": RNG_SEED,
        "synthetic": True,
        "real": "district and commune names, GSO codes and division types; district seats",
        "synthesised": "district polygons, commune centres, villages, populations, roads",
        "population_total": sum(c["population"] for c in c_rows),
        "population_note": "about 1.5 million (SEED-FACTS); district totals are ours, not census",
        "order": "points are [lat, lon] in degrees; polygons do not repeat their first vertex",
    }
    return {
        "about": about,
        "province": {"code": province["code"], "name": province["name"]},
        "districts": d_rows,
        "communes": c_rows,
        "villages": v_rows,
        "roads": roads(districts, spots, rng),
    }


def render(doc: dict[str, Any]) -> str:
    """JSON with one record per line: readable, and small diffs when the generator changes."""
    parts = []
    for key, value in doc.items():
        if isinstance(value, list):
            rows = ",\n  ".join(json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f' "{key}": [\n  {rows}\n ]')
        else:
            parts.append(f' "{key}": {json.dumps(value, ensure_ascii=False)}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str]) -> None:
    text = render(generate())
    if argv == ["--check"]:
        stale = sources.PLACES.read_text(encoding="utf-8") != text
        print(f"{sources.PLACES}: {'stale' if stale else 'up to date'}")
        raise SystemExit(1 if stale else 0)
    sources.PLACES.write_text(text, encoding="utf-8")
    print(f"wrote {sources.PLACES}")


if __name__ == "__main__":
    main(sys.argv[1:])
