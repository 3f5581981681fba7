"""Any province but Bình Định as a deterministic synthetic scenario: its places document.

    python -m seeds.province "Bắc Giang"     # the summary of one (``ioc scenario generate``)

Real: names, GSO codes and types of districts and communes (vietnam-provinces 0.6.0), the
communes' geocoded positions (vietnamadminunits 1.0.4: real-ish, a geocoder's, not a survey),
the district seats (GeoNames, else the seat commune's geocoded position). **Synthetic**, and
marked so: the outline, commune cells and district polygons (``seeds.province_geometry``), the
``mountainous`` flag, populations, villages and roads, by the rules below. The document has the
schema of ``seeds/data/places.json`` plus the outline, so everything downstream works unchanged.
Bình Định keeps its published scenario (1,723 sites, the seed dead spots): never generated here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon
from shapely.ops import nearest_points

from seeds import geo, national, province_geometry
from seeds.bts import BTS_TOTAL
from seeds.generate import TYPE_WEIGHT, _split
from seeds.geo import FloatArray
from seeds.sites import short_name

RNG_SEED = 20220531  # as seeds.generate; each province draws from [RNG_SEED, its GSO code]
# Population (synthetic rule): Viet Nam's 2019 census total (GSO, "Kết quả Tổng điều tra dân số
# và nhà ở năm 2019": 96,208,984 people) spread over every commune of the country by type
# (TYPE_WEIGHT: phường 3, thị trấn 2.2, xã 1): a province gets its communes' share. Inside it,
# a mountain xã weighs MOUNTAIN_XA_FACTOR and every commune a lognormal(0, 0.3) draw.
CENSUS_2019_POPULATION = 96_208_984
MOUNTAIN_XA_FACTOR = 0.5
# Mountainous (synthetic rule): a huyện whose communes' cells average at least this area.
# Mountain communes are large and few (Bình Định's An Lão, Vĩnh Thạnh, Vân Canh: 70–115 km² a
# commune; its lowland Phù Mỹ, Phù Cát about 30–40); 40 flags Bắc Giang's Sơn Động and Lục Ngạn
# and Thái Nguyên's Võ Nhai, and none of their plains.
MOUNTAIN_COMMUNE_KM2 = 40.0
# ... except in the Mekong River Delta (GSO's region Đồng bằng sông Cửu Long, provinces 80–96),
# where large communes are flat fields and mangroves, not mountains.
FLAT_PROVINCES = range(80, 97)
# Site count (rule, calibrated on Bình Định): sites = 1723 × (½·pop/pop_BĐ + ½·area/area_BĐ),
# with Bình Định's scenario population and outline area. Cameras (per commune and per km of
# road) and OLTs (per commune) follow from the places, as in Bình Định.
BD_POPULATION = 1_504_000  # seeds/data/places.json, about.population_total
BD_AREA_KM2 = 6220.7  # seeds/data/province_outline.json, projected area


def site_count(population: int, area_km2: float) -> int:
    return round(BTS_TOTAL * (0.5 * population / BD_POPULATION + 0.5 * area_km2 / BD_AREA_KM2))


def _type_weight_sum(communes: list[dict[str, Any]]) -> float:
    return float(sum(TYPE_WEIGHT[c["division_type"]] for c in communes))


def province_population(code: int) -> int:
    """The province's share of the census total, by its communes' types (see above)."""
    share = _type_weight_sum(national.province(code)["communes"])
    return round(CENSUS_2019_POPULATION * share / _type_weight_sum(national.national()["communes"]))


def _deg(p: FloatArray) -> list[float]:
    lat, lon = geo.to_deg(p[0], p[1])
    return [round(float(lat), 5), round(float(lon), 5)]


def _seats(rec: dict[str, Any], communes: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """District seat positions: GeoNames' town, else the seat commune's geocoded position."""
    by_code = {c["code"]: c for c in communes}
    out = {}
    for d in rec["districts"]:
        if d["seat_commune"] is None:
            continue
        home = by_code[d["seat_commune"]]
        geonames = d["seat_source"] == "geonames"
        out[d["code"]] = (d["lat"], d["lon"]) if geonames else (home["lat"], home["lon"])
    return out


def generate_places(code: int) -> dict[str, Any]:
    """The places document of a province other than Bình Định (deterministic)."""
    if code == national.BINH_DINH:
        raise ValueError("Bình Định's places are the committed seeds/data/places.json")
    rec = national.province(code)
    with geo.centred_on(rec["lat"], rec["lon"]):
        return _generate(rec)


def _generate(rec: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng([RNG_SEED, rec["code"]])
    communes = list(rec["communes"])
    seats = _seats(rec, communes)
    seat_of = {d["seat_commune"]: d["code"] for d in rec["districts"] if d["code"] in seats}
    lat = [seats[seat_of[c["code"]]][0] if c["code"] in seat_of else c["lat"] for c in communes]
    lon = [seats[seat_of[c["code"]]][1] if c["code"] in seat_of else c["lon"] for c in communes]
    xy = np.column_stack(geo.to_km(lat, lon))
    mine = {c["code"] for c in communes}
    others = [c for c in national.national()["communes"] if c["code"] not in mine]
    far = np.column_stack(geo.to_km([c["lat"] for c in others], [c["lon"] for c in others]))
    shapes = province_geometry.draw(xy, far)
    districts = [d for d in rec["districts"] if d["code"] in seats]
    idx = {d["code"]: [i for i, c in enumerate(communes) if c["district_code"] == d["code"]]
           for d in districts}  # fmt: skip
    mountainous = {
        d["code"]: rec["code"] not in FLAT_PROVINCES
        and d["division_type"] == "huyện"
        and float(np.mean([shapes.cells[i].area for i in idx[d["code"]]])) >= MOUNTAIN_COMMUNE_KM2
        for d in districts
    }
    population = province_population(rec["code"])
    weights = np.array(
        [
            TYPE_WEIGHT[c["division_type"]]
            * (
                MOUNTAIN_XA_FACTOR
                if c["division_type"] == "xã" and mountainous[c["district_code"]]
                else 1.0
            )
            * rng.lognormal(0.0, 0.3)
            for c in communes
        ]
    )
    c_pops = _split(population, weights)
    c_rows, v_rows = [], []
    for i, (c, pop) in enumerate(zip(communes, c_pops, strict=True)):
        villages = _villages(c, pop, shapes.cells[i], shapes.centres[i], mountainous, rng)
        v_rows += villages
        clat, clon = _deg(shapes.centres[i])
        c_rows.append(
            {"code": c["code"], "name": c["name"], "district_code": c["district_code"],
             "division_type": c["division_type"], "lat": clat, "lon": clon,
             "population": sum(v["population"] for v in villages), "synthetic": True}
        )  # fmt: skip
    d_rows = []
    outline = province_geometry.ring(shapes.outline)
    for d in districts:
        poly = province_geometry.district_polygon([shapes.cells[i] for i in idx[d["code"]]],
                                                  shapes.outline)  # fmt: skip
        seat = shapes.centres[
            communes.index(next(c for c in communes if c["code"] == d["seat_commune"]))
        ]
        slat, slon = _deg(seat)
        d_rows.append(
            {"code": d["code"], "name": d["name"], "division_type": d["division_type"],
             "town": d["town"], "lat": slat, "lon": slon, "mountainous": mountainous[d["code"]],
             "population": sum(c_pops[i] for i in idx[d["code"]]),
             "area_km2": round(poly.area), "synthetic_polygon": True,
             "polygon": [_deg(p) for p in province_geometry.ring(poly)]}
        )  # fmt: skip
    area = float(shapes.outline.area)
    about = {
        "generator": "seeds.province.generate_places (ioc scenario generate)",
        "rng_seed": [RNG_SEED, rec["code"]],
        "synthetic": True,
        "real": "district and commune names, GSO codes and types; communes' geocoded positions "
        "(vietnamadminunits 1.0.4); district seats (GeoNames, else the seat commune's position)",
        "synthesised": "outline, commune cells, district polygons, mountainous flags, "
        "populations, villages, roads; no national roads, no seed dead spots",
        "population_total": sum(c_pops),
        "population_rule": "2019 census total (96,208,984, GSO) over all communes by type "
        "(phường 3, thị trấn 2.2, xã 1), mountain xã ×0.5, lognormal(0, 0.3) per commune",
        "mountainous_rule": f"a huyện whose communes average ≥ {MOUNTAIN_COMMUNE_KM2:g} km², "
        "outside the Mekong River Delta (GSO codes 80–96)",
        "area_km2": round(area),
        "bts_sites": site_count(sum(c_pops), area),
        "site_rule": "round(1723 × (½·population/1,504,000 + ½·area_km2/6,220.7)), "
        "calibrated on Bình Định",
        "communes_moved_inside": [communes[i]["code"] for i in shapes.moved],
        "projection_centre": [rec["lat"], rec["lon"]],
        "order": "points are [lat, lon] in degrees; polygons do not repeat their first vertex",
    }
    return {
        "about": about,
        "province": {"code": rec["code"], "name": rec["name"]},
        "outline": [_deg(p) for p in outline],
        "districts": d_rows,
        "communes": c_rows,
        "villages": v_rows,
        "roads": _roads(districts, communes, shapes, rng),
    }


def _villages(
    c: dict[str, Any],
    population: int,
    cell: Polygon,
    centre: FloatArray,
    mountainous: dict[int, bool],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Villages of a commune (synthetic): 4–9 in a mountain xã, 6–12 elsewhere; spread over the
    commune's cell around its centre; populations lognormal(0, 0.35) shares of the commune's."""
    kind, mountain = c["division_type"], mountainous[c["district_code"]]
    n = int(rng.integers(4, 10) if mountain and kind == "xã" else rng.integers(6, 13))
    sd = float(np.clip(np.sqrt(cell.area) / (4.0 if kind != "xã" else 3.0), 0.3, 3.0))
    pts = province_geometry.sample_in(cell, centre, n, sd, rng)
    pops = _split(population, rng.lognormal(0.0, 0.35, size=n))
    name = "Khu phố" if kind != "xã" else "Làng" if mountain else "Thôn"
    return [
        {"village_id": f"{c['code']}-{k:02d}", "name": f"{name} {k}", "commune_code": c["code"],
         "district_code": c["district_code"], "lat": _deg(p)[0], "lon": _deg(p)[1],
         "population": pop, "synthetic": True, "seed_dead_spot": False}
        for k, (p, pop) in enumerate(zip(pts, pops, strict=True), start=1)
    ]  # fmt: skip


def _roads(
    districts: list[dict[str, Any]],
    communes: list[dict[str, Any]],
    shapes: province_geometry.Shapes,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """District roads (synthetic): from the seat to each commune centre of the district."""
    centre = {c["code"]: shapes.centres[i] for i, c in enumerate(communes)}
    out = []
    for d in districts:
        seat = centre[d["seat_commune"]]
        for c in communes:
            if c["district_code"] != d["code"] or c["code"] == d["seat_commune"]:
                continue
            line = _bent_line(seat, centre[c["code"]], shapes.outline, rng)
            out.append(
                {"name": f"Đường huyện {short_name(d['name'])} – {short_name(c['name'])}",
                 "road_class": "district", "synthetic": True,
                 "points": [_deg(p) for p in line]}
            )  # fmt: skip
    return out


def _bent_line(a: FloatArray, b: FloatArray, area: Polygon, rng: np.random.Generator) -> FloatArray:
    """As ``seeds.layout.bent_line`` with two bends, tested against the outline by GEOS."""
    along = np.array([1 / 3, 2 / 3])[:, None]
    normal = np.array([-(b - a)[1], (b - a)[0]])
    straight = a + along * (b - a)
    bent = straight + normal * rng.normal(0.0, 0.08, size=(2, 1))
    keep = shapely.contains_xy(area, bent[:, 0], bent[:, 1])[:, None]
    line = np.vstack([a, np.where(keep, bent, straight), b])
    if area.contains(LineString(line)):
        return line
    # Across a bay of the outline: walk it every 0.2 km, pulling points that leave back inside
    # (cameras stand along district roads, and must stand in the province).
    path = LineString(line)
    steps = np.linspace(0.0, path.length, max(3, int(path.length / 0.2) + 1))
    inner = area.buffer(-0.3)
    out = []
    for t in steps:
        p = path.interpolate(float(t))
        out.append(p.coords[0] if area.contains(p) else nearest_points(inner, p)[0].coords[0])
    return np.asarray(out, dtype=np.float64)


def main(argv: list[str]) -> None:
    from seeds.scenario import load_scenario

    for key, value in load_scenario(argv[0] if argv else "Bắc Giang").summary().items():
        print(f"{key:<38} {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
