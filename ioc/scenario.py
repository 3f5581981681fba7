"""Puts the seeds scenario into the database: places, map features and the device registry."""

from __future__ import annotations

from dataclasses import asdict

import psycopg

from seeds import load_scenario
from store.places import load_places
from store.registry import device_row, register_devices


def load_into(conn: psycopg.Connection) -> dict[str, int]:
    scenario = load_scenario()
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
