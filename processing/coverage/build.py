"""The engine built from what the database holds: registered towers, places, the outline."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from processing.coverage.config import CoverageConfig
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


def build_coverage(
    doc: Mapping[str, list[dict[str, Any]]],
    bts_rows: list[dict[str, Any]],
    config: CoverageConfig,
    verdicts: Mapping[str, Verdict] | None = None,
    client: Client | None = None,
) -> Coverage:
    """Register, take the sites' serving verdicts (none given: every site serves), full
    recompute, evaluate: ready for incremental updates. With a Dask ``client`` the full
    recompute and the covering towers (N-1, the plan) run on its cluster."""
    if not doc["outline"]:
        raise ValueError("no province outline in the database: run `ioc scenario load` first")
    outline = [tuple(p) for p in _json(doc["outline"][0]["points"])]
    grid = Grid.around(outline, config.resolution_m)
    points = [PlacePoint(v["lat"], v["lon"], v["population"], False) for v in doc["villages"]]
    points += [
        PlacePoint(c["lat"], c["lon"], 0, c["division_type"] != "xã") for c in doc["communes"]
    ]
    hills = [[tuple(p) for p in _json(d["polygon"])] for d in doc["districts"] if d["mountainous"]]
    lu = land_use(grid, points, mountain_polygons=hills)
    sites, refused = sites_from_rows(bts_rows)
    engine = CoverageEngine(grid, lu, sites, config)
    engine.rejections[:0] = refused
    verdicts = verdicts or {}
    states: dict[str, SiteState] = {d: v.state for d, v in verdicts.items()}
    engine.apply(states)  # before anything is computed: only sets the active sectors
    engine.mark_changed({d: v.since.timestamp() for d, v in verdicts.items() if v.since})
    engine.recompute_full(client)
    coverage = Coverage(
        engine,
        places_from_rows(doc),
        outline=tuple(outline),
        unknown_sites=frozenset(d for d, v in verdicts.items() if v.why is Why.UNKNOWN),
    )
    coverage.refresh_covering(client=client)
    coverage.plan(client)
    return coverage
