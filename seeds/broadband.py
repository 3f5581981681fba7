"""Fibre broadband (OLTs) that passes nearly 56 % of households and more than 99 % of communes.

Report of 31 May 2022 (seed-documents/004): "fibre broadband covers nearly 56 % of households
and more than 99 % of communes". Which commune is left out, how OLTs group communes and the
take-up by area are ours.
"""

from __future__ import annotations

import numpy as np

from seeds.model import BroadbandNode, Commune
from seeds.sites import Ground, short_name, to_latlon

# Assumption: persons per household, close to Vietnam's 2019 census average (3.5).
PERSONS_PER_HOUSEHOLD = 3.5
HOUSEHOLDS_PASSED_SHARE = 0.56  # the report's "nearly 56 %" of households
# The one commune without fibre: Xã An Toàn, a remote mountain commune in the far west of
# An Lão district (the generator places it there). 154 of 155 communes = 99.4 % (> 99 %).
NO_FIBRE_COMMUNES = frozenset({21622})
# Relative share of households passed by area: ward, township, lowland xã, mountain xã.
PASS_WEIGHT = {"phường": 0.85, "thị trấn": 0.7, "xã": 0.5, "mountain": 0.25}


def households(c: Commune) -> int:
    return round(c.population / PERSONS_PER_HOUSEHOLD)


def _pass_rates(ground: Ground, rng: np.random.Generator) -> dict[int, float]:
    """Per commune share of households passed, scaled so the province comes to the target."""
    mountain = {d.code for d in ground.districts if d.mountainous}
    fibre = [c for c in ground.communes if c.code not in NO_FIBRE_COMMUNES]
    base = np.array(
        [
            PASS_WEIGHT[
                "mountain"
                if c.division_type == "xã" and c.district_code in mountain
                else c.division_type
            ]
            * rng.uniform(0.85, 1.15)
            for c in fibre
        ]
    )
    hh = np.array([households(c) for c in fibre], dtype=np.float64)
    total = sum(households(c) for c in ground.communes)
    rate = base
    for _ in range(20):  # scale, cap at 97 %, rescale the rest
        rate = np.minimum(rate * HOUSEHOLDS_PASSED_SHARE * total / float(rate @ hh), 0.97)
    return {c.code: float(r) for c, r in zip(fibre, rate, strict=True)}


def _groups(ground: Ground) -> list[list[Commune]]:
    """One OLT per commune on the lowlands; in the mountains a hub OLT in half of the communes
    (those nearest the district seat) and each other commune served from its nearest hub."""
    mountain = {d.code for d in ground.districts if d.mountainous}
    groups: list[list[Commune]] = []
    for d in ground.districts:
        mine = [
            c
            for c in ground.communes
            if c.district_code == d.code and c.code not in NO_FIBRE_COMMUNES
        ]
        if d.code not in mountain:
            groups += [[c] for c in mine]
            continue
        by_seat = sorted(mine, key=lambda c: (c.lat - d.lat) ** 2 + (c.lon - d.lon) ** 2)
        hubs = [[c] for c in by_seat[: (len(mine) + 1) // 2]]
        for c in by_seat[len(hubs) :]:
            nearest = min(hubs, key=lambda h: (h[0].lat - c.lat) ** 2 + (h[0].lon - c.lon) ** 2)
            nearest.append(c)
        groups += sorted(hubs, key=lambda h: h[0].code)
    return groups


def build_broadband(ground: Ground, rng: np.random.Generator) -> tuple[BroadbandNode, ...]:
    rate = _pass_rates(ground, rng)
    groups = _groups(ground)
    index = {c.code: i for i, c in enumerate(ground.communes)}
    xy = np.array([ground.commune_xy[index[g[0].code]] for g in groups])
    xy = ground.place(xy, 0.1, rng, max_km=0.25)  # beside the commune centre
    passed = {c.code: round(households(c) * rate[c.code]) for g in groups for c in g}
    return tuple(
        BroadbandNode(
            device_id=f"OLT-{hub[0].code}",
            name=f"OLT {short_name(hub[0].name)}",
            lat=lat,
            lon=lon,
            district_code=hub[0].district_code,
            commune_code=hub[0].code,
            communes_served=tuple(sorted(c.code for c in hub)),
            households_passed=sum(passed[c.code] for c in hub),
            households_total=sum(households(c) for c in hub),
            passed_by_commune=tuple(passed[code] for code in sorted(c.code for c in hub)),
        )
        for hub, (lat, lon) in zip(groups, to_latlon(xy), strict=True)
    )
