"""A province's scenario: places, and devices generated on load.

``load_scenario()`` is Bình Định: it reads the committed data files (no generation of places at
run time) and builds the device inventory deterministically. ``load_scenario("Bắc Giang")``
generates another province's places (``seeds.province``) and inventory. Cached per province,
so every caller in a process shares one immutable scenario.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from devices.kinds import Kind
from seeds import geo, national, sources
from seeds.broadband import households
from seeds.bts import BTS_TOTAL, OPERATOR_SHARES
from seeds.inventory import build_inventory, scenario_terrain
from seeds.model import (
    BroadbandNode,
    BtsSite,
    Camera,
    Commune,
    District,
    LatLon,
    PlacedDevice,
    Probe,
    Road,
    ScenarioDevice,
    SeedPlace,
    Village,
)
from seeds.sites import Ground

if TYPE_CHECKING:  # seeds.terrain pulls in rasterio: loaded only where a DEM is read
    from seeds.terrain import Terrain

REPORT_INTERVAL_S = 60
FIRMWARE = {kind: f"ioc-sim-{kind.value}/1.0" for kind in Kind}  # simulated devices
PROBE_MODEL = "drive-test handset (simulated)"


@dataclass(frozen=True, slots=True)
class Scenario:
    province_code: int
    province_name: str
    outline: tuple[LatLon, ...]  # approximate: hand-drawn, or generated (synthetic)
    districts: tuple[District, ...]
    communes: tuple[Commune, ...]
    villages: tuple[Village, ...]
    bts: tuple[BtsSite, ...]
    cameras: tuple[Camera, ...]
    broadband: tuple[BroadbandNode, ...]
    probes: tuple[Probe, ...]
    roads: tuple[Road, ...]
    seed_places: tuple[SeedPlace, ...]  # the article's six names (five villages, one commune)
    # the ground the towers were placed over, and that the probes measure across (Bình Định's
    # synthetic DEM; None: flat, as every generated province)
    terrain: Terrain | None = field(default=None, compare=False)

    def dead_spot_villages(self) -> tuple[Village, ...]:
        """The seed documents' villages without mobile broadband."""
        return tuple(v for v in self.villages if v.seed_dead_spot)

    def devices(self) -> list[ScenarioDevice]:
        """Every device with its birth payload (``devices.schemas.META_TYPES[kind]``)."""

        def common(d: PlacedDevice, kind: Kind) -> dict[str, Any]:
            return {
                "device_id": d.device_id,
                "name": d.name,
                "lat": d.lat,
                "lon": d.lon,
                "district_code": d.district_code,
                "commune_code": d.commune_code,
                "interval_s": REPORT_INTERVAL_S,
                "firmware": FIRMWARE[kind],
            }

        out = [
            ScenarioDevice(
                Kind.BTS,
                b.device_id,
                {
                    **common(b, Kind.BTS),
                    "operator": b.operator.value,
                    "antenna_height_m": b.antenna_height_m,
                    "sectors": [
                        {
                            "sector": s.sector,
                            "azimuth_deg": s.azimuth_deg,
                            "tilt_deg": s.tilt_deg,
                            "band_mhz": s.band_mhz,
                            "technology": s.technology.value,
                            "tx_power_dbm": s.tx_power_dbm,
                            "beamwidth_deg": s.beamwidth_deg,
                            "antenna_gain_dbi": s.antenna_gain_dbi,
                        }
                        for s in b.sectors
                    ],
                },
            )
            for b in self.bts
        ]
        out += [
            ScenarioDevice(
                Kind.CAMERA, c.device_id, {**common(c, Kind.CAMERA), "site_type": c.site_type}
            )
            for c in self.cameras
        ]
        out += [
            ScenarioDevice(
                Kind.BROADBAND,
                n.device_id,
                {
                    **common(n, Kind.BROADBAND),
                    "households_passed": n.households_passed,
                    "communes_served": list(n.communes_served),
                },
            )
            for n in self.broadband
        ]
        out += [  # "operator" is not in the probe schema (ignored there) but the registry uses it
            ScenarioDevice(
                Kind.PROBE,
                p.device_id,
                {
                    **common(p, Kind.PROBE),
                    "model": PROBE_MODEL,
                    "operator": p.operator.value,
                },
            )
            for p in self.probes
        ]
        return out

    def summary(self) -> dict[str, int | float | str]:
        """Headline counts, in the order a report would give them."""
        total_hh = sum(households(c) for c in self.communes)
        fibre = sum(c.has_fibre for c in self.communes)
        out: dict[str, int | float | str] = {
            "province": f"{self.province_name} ({self.province_code})",
            "districts": len(self.districts),
            "communes": len(self.communes),
            "villages": len(self.villages),
            "population": sum(c.population for c in self.communes),
            "bts": len(self.bts),
        }
        for op in OPERATOR_SHARES:
            out[f"bts_{op.value}"] = sum(b.operator is op for b in self.bts)
        out |= {
            "cameras": len(self.cameras),
            "cameras_town": sum(c.site_type == "town" for c in self.cameras),
            "cameras_road": sum(c.site_type == "road" for c in self.cameras),
            "broadband_nodes": len(self.broadband),
            "communes_with_fibre": fibre,
            "communes_with_fibre_pct": round(100 * fibre / len(self.communes), 1),
            "households": total_hh,
            "households_passed_pct": round(
                100 * sum(n.households_passed for n in self.broadband) / total_hh, 1
            ),
            "probes": len(self.probes),
            "seed_dead_spot_villages": len(self.dead_spot_villages()),
            "seed_places": ", ".join(p.name for p in self.seed_places),
        }
        return out


def _pair(p: list[float]) -> LatLon:
    return float(p[0]), float(p[1])


@functools.cache
def load_scenario(province: str | int | None = None) -> Scenario:
    """A province's scenario (cached per province; build once per process).

    None, Bình Định (any spelling) or 52: the published Bình Định scenario, read from the
    committed files. Any other of the 63 provinces, by name ("Bắc Giang", "Tỉnh Bắc Giang",
    "Bac Giang", "bac_giang") or GSO code: generated on the fly, deterministic and synthetic
    (``seeds.province``). An unknown name raises ``UnknownProvince`` naming close matches."""
    code = national.BINH_DINH if province is None else national.province_code(province)
    if code == national.BINH_DINH and province is not None:  # one build per province: the
        return load_scenario()  # cache keys load_scenario() and load_scenario(None) apart
    if code != national.BINH_DINH and province != code:
        return load_scenario(code)
    doc = places_document(code)
    outline = tuple(_pair(p) for p in doc["outline"])
    if code == national.BINH_DINH:
        return _assemble(doc, outline, sources.seed_places(), None, BTS_TOTAL)
    with geo.centred_on(*doc["about"]["projection_centre"]):
        return _assemble(doc, outline, [], code, doc["about"]["bts_sites"])


def places_document(code: int) -> dict[str, Any]:
    """A province's places (``seeds/data/places.json``'s schema) with its outline: Bình
    Định's committed files, or any other province generated (``seeds.province``)."""
    if code == national.BINH_DINH:
        return {**sources.places(), "outline": [list(p) for p in sources.outline()]}
    from seeds.province import generate_places

    return generate_places(code)


def _assemble(
    doc: dict[str, Any],
    outline: tuple[LatLon, ...],
    seeds: list[dict[str, Any]],
    province_code: int | None,
    bts_total: int,
) -> Scenario:
    """The scenario from a places document: places as value objects, devices generated."""
    districts = tuple(
        District(
            d["code"],
            d["name"],
            d["town"],
            d["lat"],
            d["lon"],
            d["mountainous"],
            tuple(_pair(p) for p in d["polygon"]),
        )
        for d in doc["districts"]
    )
    communes = tuple(
        Commune(
            c["code"],
            c["name"],
            c["district_code"],
            c["division_type"],
            c["lat"],
            c["lon"],
            c["population"],
            has_fibre=False,
        )
        for c in doc["communes"]
    )
    villages = tuple(Village(**v) for v in doc["villages"])
    roads = tuple(
        Road(r["name"], tuple(_pair(p) for p in r["points"]), r["synthetic"], r["road_class"])
        for r in doc["roads"]
    )
    ground = Ground.of(
        outline, districts, communes, villages, roads, by_commune=province_code is not None
    )
    if province_code is None:
        ground = replace(ground, terrain=scenario_terrain())
    inventory = build_inventory(ground, province_code=province_code, bts_total=bts_total)
    passed = {
        code: n
        for node in inventory.broadband
        for code, n in zip(node.communes_served, node.passed_by_commune, strict=True)
    }
    communes = tuple(
        replace(
            c,
            has_fibre=c.code in passed,
            households=households(c),
            households_passed=passed.get(c.code, 0),
        )
        for c in communes
    )
    by_name = {(v.commune_code, v.name): v.village_id for v in villages}
    seed_places = tuple(
        SeedPlace(
            p["name"],
            p["kind"],
            p["district_code"],
            p["commune_code"],
            by_name.get((p["commune_code"], p["name"])) if p["kind"] == "village" else None,
        )
        for p in seeds
    )
    return Scenario(
        province_code=doc["province"]["code"],
        province_name=doc["province"]["name"],
        outline=outline,
        districts=districts,
        communes=communes,
        villages=villages,
        bts=inventory.bts,
        cameras=inventory.cameras,
        broadband=inventory.broadband,
        probes=inventory.probes,
        roads=roads,
        seed_places=seed_places,
        terrain=ground.terrain,
    )
