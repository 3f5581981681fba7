"""Puts a province's scenario into the database (places, map features, the device registry),
and ``ioc scenario generate``: any of the 63 provinces' places documents and counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import psycopg

from seeds import Scenario, load_scenario
from seeds.national import BINH_DINH
from seeds.scenario import places_document
from store.places import load_places
from store.registry import device_row, register_devices

COLUMNS = ("districts", "communes", "villages", "population", "sites", "cameras", "olts")


def load_into(conn: psycopg.Connection, province: str | int = BINH_DINH) -> dict[str, int]:
    """``province``: any of the 63 by name or GSO code (Bình Định, the published one, or a
    generated one)."""
    scenario = load_scenario(province)
    features = [
        {
            "name": scenario.province_name,
            "kind": "outline",
            "points": [list(p) for p in scenario.outline],
            "synthetic": True,
        }
    ]
    features += [
        {
            "name": r.name,
            "kind": "road",
            "points": [list(p) for p in r.points],
            "synthetic": r.synthetic,
        }
        for r in scenario.roads
    ]
    load_places(
        conn,
        districts=[
            {**asdict(d), "polygon": [list(p) for p in d.polygon]} for d in scenario.districts
        ],
        communes=[asdict(c) for c in scenario.communes],
        villages=[asdict(v) for v in scenario.villages],
        features=features,
    )
    devices = scenario.devices()
    register_devices(conn, [device_row(d.kind, d.meta) for d in devices])
    return {
        "districts": len(scenario.districts),
        "communes": len(scenario.communes),
        "villages": len(scenario.villages),
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
