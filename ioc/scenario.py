"""Puts a province's scenario into the database (places, map features, the device registry),
and ``ioc scenario generate``: any of the 63 provinces' places documents and counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import psycopg

from seeds import Scenario, load_scenario
from seeds.national import BINH_DINH, province_codes
from seeds.scenario import places_document
from store.places import load_places
from store.registry import device_row, register_devices

COLUMNS = ("districts", "communes", "villages", "population", "sites", "cameras", "olts")


def load_into(conn: psycopg.Connection, province: str | int = BINH_DINH) -> dict[str, int]:
    """``province``: any of the 63 by name or GSO code (Bình Định, the published one, or a
    generated one), or several separated by commas: one deployment watching them all."""
    scenarios = [load_scenario(code) for code in province_codes(province)]
    provinces, districts, communes, villages, features = [], [], [], [], []
    for s in scenarios:
        provinces.append(
            {
                "code": s.province_code,
                "name": s.province_name,
                "lat": sum(d.lat for d in s.districts) / len(s.districts),
                "lon": sum(d.lon for d in s.districts) / len(s.districts),
                "synthetic": s.province_code != BINH_DINH,
            }
        )
        districts += [
            {**asdict(d), "polygon": [list(p) for p in d.polygon], "province_code": s.province_code}
            for d in s.districts
        ]
        communes += [asdict(c) for c in s.communes]
        villages += [asdict(v) for v in s.villages]
        features.append(
            {
                "name": s.province_name,
                "kind": "outline",
                "points": [list(p) for p in s.outline],
                "synthetic": True,
                "province_code": s.province_code,
            }
        )
        features += [
            {
                "name": r.name,
                "kind": "road",
                "points": [list(p) for p in r.points],
                "synthetic": r.synthetic,
                "province_code": s.province_code,
            }
            for r in s.roads
        ]
    load_places(
        conn,
        provinces=provinces,
        districts=districts,
        communes=communes,
        villages=villages,
        features=features,
    )
    devices = [d for s in scenarios for d in s.devices()]
    register_devices(conn, [device_row(d.kind, d.meta) for d in devices])
    return {
        "provinces": len(scenarios),
        "districts": len(districts),
        "communes": len(communes),
        "villages": len(villages),
        "devices": len(devices),
    }


def counts(s: Scenario) -> dict[str, int]:
    """A province's row in ``ioc scenario generate``'s table."""
    return {
        "districts": len(s.districts),
        "communes": len(s.communes),
        "villages": len(s.villages),
        "population": sum(c.population for c in s.communes),
        "sites": len(s.bts),
        "cameras": len(s.cameras),
        "olts": len(s.broadband),
    }


def generate(
    provinces: list[str | int], out: Path | None, say: Callable[[str], None]
) -> dict[str, int]:
    """Build each province (uncached: 63 at once would hold them all), write its places
    document under ``out`` if given, say its counts; returns the totals."""
    from seeds import national
    from seeds.generate import render

    codes = [national.province_code(p) for p in provinces]  # a bad name stops us first
    totals = dict.fromkeys(COLUMNS, 0)
    for k, code in enumerate(codes, start=1):
        s = load_scenario.__wrapped__(None if code == BINH_DINH else code)
        row = counts(s)
        totals = {key: totals[key] + row[key] for key in COLUMNS}
        where = ""
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"places_{code:02d}_{_codename(code)}.json"
            path.write_text(render(places_document(code)), encoding="utf-8")
            where = f" → {path}"
        say(f"[{k}/{len(codes)}] {s.province_name} ({code}): {line(row)}{where}")
    return totals


def _codename(code: int) -> str:
    from seeds import national

    name: str = next(p["codename"] for p in national.national()["provinces"] if p["code"] == code)
    for prefix in ("tinh_", "thanh_pho_"):
        name = name.removeprefix(prefix)
    return name


def line(row: dict[str, int]) -> str:
    return ", ".join(f"{row[k]:,} {k}" for k in COLUMNS)
