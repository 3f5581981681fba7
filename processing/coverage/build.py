"""The engine built from what the database holds: registered towers, places, the outline."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from processing.coverage.config import CoverageConfig
from processing.coverage.dem import province_ground
from processing.coverage.engine import CoverageEngine
from processing.coverage.grid import Grid
from processing.coverage.landuse import PlacePoint, land_use
from processing.coverage.places import Place
from processing.coverage.serving import SiteState, Verdict, Why
from processing.coverage.sites import Rejection, SiteInput, site_from_meta
from processing.coverage.state import Coverage

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("ioc.coverage")


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


def places_from_rows(doc: Mapping[str, list[dict[str, Any]]]) -> list[Place]:
    out = [
        Place(
            "village",
            v["village_id"],
            v["name"],
            v["district_code"],
            v["commune_code"],
            v["lat"],
            v["lon"],
            v["population"],
        )
        for v in doc["villages"]
    ]
    out += [
        Place(
            "commune",
            str(c["code"]),
            c["name"],
            c["district_code"],
            c["code"],
            c["lat"],
            c["lon"],
            0,
        )
        for c in doc["communes"]
    ]
    return out


def sites_from_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[SiteInput], list[Rejection]]:
    sites, refused = [], []
    for r in rows:
        meta = {**_json(r["meta"]), "device_id": r["device_id"]}
        meta.setdefault("operator", r.get("operator"))
        try:
            sites.append(site_from_meta(meta))
        except (ValueError, KeyError, TypeError) as err:
            refused.append(Rejection(r["device_id"], None, f"unreadable birth record: {err}"))
    return sites, refused


@dataclass(frozen=True, slots=True)
class ProvinceInput:
    """One province's share of what the database holds: its places document (the shape of
    ``store.coverage.places``, one outline) and its registered towers."""

    doc: dict[str, list[dict[str, Any]]]
    bts: list[dict[str, Any]]


def split_provinces(
    doc: Mapping[str, list[dict[str, Any]]], bts_rows: list[dict[str, Any]]
) -> tuple[dict[int, ProvinceInput], list[Rejection]]:
    """Each province's places (through their districts: GSO codes are national) and towers
    (through the district each names), by GSO province code. One province loaded keeps every
    outline and tower, as a one-province deployment always did; among several, a tower whose
    district lies in none of them is refused."""
    of_district = {d["code"]: d["province_code"] for d in doc["districts"]}
    codes = sorted({p for p in of_district.values() if p is not None})
    if not codes:
        raise ValueError("no province in the database: run `ioc scenario load` first")
    if len(codes) == 1:
        return {codes[0]: ProvinceInput({k: list(v) for k, v in doc.items()}, bts_rows)}, []
    parts = {
        p: ProvinceInput(
            {
                "districts": [d for d in doc["districts"] if d["province_code"] == p],
                "communes": [
                    c for c in doc["communes"] if of_district.get(c["district_code"]) == p
                ],
                "villages": [
                    v for v in doc["villages"] if of_district.get(v["district_code"]) == p
                ],
                "outline": [o for o in doc["outline"] if o["province_code"] == p],
            },
            [r for r in bts_rows if r["province_code"] == p],
        )
        for p in codes
    }
    refused = [
        Rejection(r["device_id"], None, f"district {r['district_code']} is in no province loaded")
        for r in bts_rows
        if r["province_code"] not in parts
    ]
    return parts, refused


def build_coverage(
    doc: Mapping[str, list[dict[str, Any]]],
    bts_rows: list[dict[str, Any]],
    config: CoverageConfig,
    verdicts: Mapping[str, Verdict] | None = None,
    client: Client | None = None,
    province: int = 0,
) -> Coverage:
    """Register, take the sites' serving verdicts (none given: every site serves), full
    recompute, evaluate: ready for incremental updates. With a Dask ``client`` the full
    recompute and the covering towers (N-1, the plan) run on its cluster. ``province``: the
    GSO code, which says whether the config's DEM applies."""
    part = {province: ProvinceInput(dict(doc), bts_rows)}
    return build_provinces(part, config, verdicts, client)[province]


def build_provinces(
    parts: Mapping[int, ProvinceInput],
    config: CoverageConfig,
    verdicts: Mapping[str, Verdict] | None = None,
    client: Client | None = None,
) -> dict[int, Coverage]:
    """``build_coverage`` for each province; with a Dask ``client`` every province's full
    recompute is submitted before any is awaited (``cluster.recompute_many``)."""
    verdicts = verdicts or {}
    engines = {p: _engine(p, part, config, verdicts) for p, part in parts.items()}
    if client is not None:
        from processing.coverage.cluster import recompute_many

        recompute_many([engine for engine, _ in engines.values()], client)
    else:
        for engine, _ in engines.values():
            engine.recompute_full()
    out = {}
    for p, (engine, outline) in engines.items():
        coverage = Coverage(
            engine,
            places_from_rows(parts[p].doc),
            outline=outline,
            unknown_sites=frozenset(d for d, v in verdicts.items() if v.why is Why.UNKNOWN),
        )
        coverage.refresh_covering(client=client)
        coverage.plan(client)
        out[p] = coverage
    return out


def _engine(
    province: int, part: ProvinceInput, config: CoverageConfig, verdicts: Mapping[str, Verdict]
) -> tuple[CoverageEngine, tuple[tuple[float, float], ...]]:
    """The province's engine, registered and given the sites' states, not yet computed."""
    doc = part.doc
    if not doc["outline"]:
        raise ValueError("no province outline in the database: run `ioc scenario load` first")
    outline = tuple((float(a), float(b)) for a, b in _json(doc["outline"][0]["points"]))
    grid = Grid.around(outline, config.resolution_m)
    points = [PlacePoint(v["lat"], v["lon"], v["population"], False) for v in doc["villages"]]
    points += [
        PlacePoint(c["lat"], c["lon"], 0, c["division_type"] != "xã") for c in doc["communes"]
    ]
    hills = [[tuple(p) for p in _json(d["polygon"])] for d in doc["districts"] if d["mountainous"]]
    lu = land_use(grid, points, mountain_polygons=hills)
    sites, refused = sites_from_rows(part.bts)
    ground = province_ground(config, province, grid, outline)
    engine = CoverageEngine(grid, lu, sites, config, ground)
    engine.rejections[:0] = refused
    states: dict[str, SiteState] = {d: v.state for d, v in verdicts.items()}
    engine.apply(states)  # before anything is computed: only sets the active sectors
    engine.mark_changed({d: v.since.timestamp() for d, v in verdicts.items() if v.since})
    return engine, outline
