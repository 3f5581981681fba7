"""The 1,723 base stations of Bình Định's four mobile operators (synthetic positions).

Report of 31 May 2022 (seed-documents/004): 4 operators, 1,723 BTS, 3G/4G at 100 % of commune
and town centres, five villages without mobile broadband. The split between operators, the
sites' positions and their radio parameters are ours and plausible, not operator data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from devices.kinds import Operator, Technology
from seeds import geo
from seeds.geo import FloatArray
from seeds.model import BtsSector, BtsSite
from seeds.sites import Ground, IntArray, short_name, to_latlon

BTS_TOTAL = 1723  # the report's count of mobile base stations in the province
# Shares of the 1,723 sites. Assumed, not reported: Viettel runs the largest network in Vietnam
# and the widest rural coverage, VNPT-Vinaphone and Mobifone follow, Vietnamobile is small.
OPERATOR_SHARES: dict[Operator, float] = {
    Operator.VIETTEL: 0.38,
    Operator.VINAPHONE: 0.27,
    Operator.MOBIFONE: 0.25,
    Operator.VIETNAMOBILE: 0.10,
}
OPERATOR_CODE = {
    Operator.VIETTEL: "VTL",
    Operator.MOBIFONE: "MBF",
    Operator.VINAPHONE: "VNP",
    Operator.VIETNAMOBILE: "VNM",
}
OPERATOR_NAME = {
    Operator.VIETTEL: "Viettel",
    Operator.MOBIFONE: "Mobifone",
    Operator.VINAPHONE: "Vinaphone",
    Operator.VIETNAMOBILE: "Vietnamobile",
}
# Chance that an operator has a site at a commune centre: (town, lowland xã, mountain xã).
# Viettel is at every centre, which is what makes 3G/4G reach 100 % of them.
CENTRE_PRESENCE: dict[Operator, tuple[float, float, float]] = {
    Operator.VIETTEL: (1.0, 1.0, 1.0),
    Operator.VINAPHONE: (1.0, 0.9, 0.6),
    Operator.MOBIFONE: (1.0, 0.85, 0.5),
    Operator.VIETNAMOBILE: (0.9, 0.3, 0.0),
}
# Share of an operator's sites spread over the mountains for area coverage.
MOUNTAIN_SHARE = {
    Operator.VIETTEL: 0.05,
    Operator.VINAPHONE: 0.03,
    Operator.MOBIFONE: 0.03,
    Operator.VIETNAMOBILE: 0.0,
}
VILLAGE_REACH_KM = 6.0  # Viettel adds a site for any ordinary village farther than this
# Layers: 4G on every site (band by area), and by operator the chance of a 3G 2100 MHz and a
# 2G 900 MHz layer. Bands as licensed in Vietnam: 900, 1800, 2100 MHz; some 4G on 900 / 2600.
LAYER_3G = {
    Operator.VIETTEL: 0.4,
    Operator.VINAPHONE: 0.55,
    Operator.MOBIFONE: 0.55,
    Operator.VIETNAMOBILE: 0.7,
}
LAYER_2G = {
    Operator.VIETTEL: 0.45,
    Operator.VINAPHONE: 0.4,
    Operator.MOBIFONE: 0.4,
    Operator.VIETNAMOBILE: 0.2,
}
BEAMWIDTH_DEG = 65.0  # typical 3-sector panel antenna
# Sites within this distance of a seed dead-spot village turn their sectors so that the
# villages fall in the gaps between them: operators aim sectors at the people they serve, and
# the coverage model (devices.radio, processing.coverage) is calibrated so that, with this,
# the seed villages stay without mobile broadband while every other village has it.
FACE_AWAY_KM = 24.0


def operator_counts(total: int = BTS_TOTAL) -> dict[Operator, int]:
    """Sites per operator: the shares of ``total``, rounded by largest remainder."""
    raw = {op: total * share for op, share in OPERATOR_SHARES.items()}
    counts = {op: int(v) for op, v in raw.items()}
    for op in sorted(raw, key=lambda o: counts[o] - raw[o])[: total - sum(counts.values())]:
        counts[op] += 1
    return counts


def _area_class(ground: Ground) -> IntArray:
    """Per commune: 0 town (phường, thị trấn), 1 lowland xã, 2 mountain xã."""
    mountain = {d.code for d in ground.districts if d.mountainous}
    return np.array(
        [
            0 if c.division_type != "xã" else 2 if c.district_code in mountain else 1
            for c in ground.communes
        ]
    )


def _mountain_points(ground: Ground, n: int, rng: np.random.Generator) -> FloatArray:
    """Uniform points over the mountainous districts, where a radio site may stand."""
    mountain = [d.code for d in ground.districts if d.mountainous]
    if not mountain:  # a generated province may have none: then no area-coverage sites
        return np.empty((0, 2))
    lo, hi = ground.outline.min(axis=0), ground.outline.max(axis=0)
    out = np.empty((0, 2))
    while len(out) < n:
        cand = rng.uniform(lo, hi, size=(8 * n, 2))
        cand = cand[ground.allowed(cand, radio=True)]
        out = np.vstack([out, cand[np.isin(ground.locate(cand)[0], mountain)]])
    return out[:n]


def _population_points(ground: Ground, n: int, rng: np.random.Generator) -> FloatArray:
    """Sites where people live: villages drawn by population, a short way off each."""
    weight = np.array([v.population for v in ground.villages], dtype=np.float64)
    out = np.empty((0, 2))
    while len(out) < n:
        base = ground.village_xy[rng.choice(len(weight), size=n, p=weight / weight.sum())]
        cand = ground.place(base, 0.7, rng, radio=True, max_km=2.0)
        out = np.vstack([out, cand[ground.allowed(cand, radio=True)]])
    return out[:n]


def _reach_villages(ground: Ground, sites: FloatArray, rng: np.random.Generator) -> FloatArray:
    """A site for each ordinary village farther than VILLAGE_REACH_KM from every site; where the
    village is near a dead spot, the site stands on the far side of the exclusion."""
    have = [sites]
    for v, xy in zip(ground.villages, ground.village_xy, strict=True):
        if v.seed_dead_spot or np.hypot(*(np.vstack(have) - xy).T).min() <= VILLAGE_REACH_KM:
            continue
        p = ground.place(xy[None, :], 0.5, rng, radio=True)
        for _ in range(3):
            if ground.allowed(p, radio=True)[0]:
                break
            p = ground.push_from_seeds(p)
        if ground.allowed(p, radio=True)[0]:
            have.append(p)
    return np.vstack(have[1:]) if len(have) > 1 else np.empty((0, 2))


def _sectors(op: Operator, area: IntArray, rng: np.random.Generator) -> list[tuple[BtsSector, ...]]:
    """Radio parameters for sites of the given area classes (vectorised draws)."""
    n = len(area)
    count = rng.choice([2, 3, 4], size=n, p=[0.05, 0.9, 0.05])
    rotation = rng.uniform(0.0, 120.0, size=n)
    has_3g = rng.random(n) < LAYER_3G[op]
    has_2g = rng.random(n) < LAYER_2G[op]
    town_band = rng.choice([1800.0, 2600.0, 900.0], size=n, p=[0.7, 0.2, 0.1])
    rural_band = rng.choice([1800.0, 900.0], size=n, p=[0.65, 0.35])
    band_4g = np.where(area == 0, town_band, rural_band)
    if op is Operator.VIETNAMOBILE:
        band_4g[:] = 1800.0
    tilt = np.choose(area, [rng.uniform(4, 8, n), rng.uniform(3, 6, n), rng.uniform(2, 4, n)])
    jitter = rng.uniform(-1.0, 1.0, size=(n, 12))
    out = []
    for i in range(n):
        layers = [(Technology.G4, float(band_4g[i]), 44.5)]
        layers += [(Technology.G3, 2100.0, 42.5)] if has_3g[i] else []
        layers += [(Technology.G2, 900.0, 41.5)] if has_2g[i] else []
        cells: list[BtsSector] = []
        for tech, band, power in layers:
            for k in range(int(count[i])):
                j = float(jitter[i, len(cells)])
                cells.append(
                    BtsSector(
                        sector=len(cells) + 1,
                        azimuth_deg=round(
                            (float(rotation[i]) + k * 360.0 / int(count[i])) % 360.0, 1
                        ),
                        tilt_deg=round(min(8.0, max(2.0, float(tilt[i]) + 0.5 * j)), 1),
                        band_mhz=band,
                        technology=tech,
                        tx_power_dbm=round((power + 1.5 * j) * 2) / 2,
                        beamwidth_deg=BEAMWIDTH_DEG,
                    )
                )
        out.append(tuple(cells))
    return out


def _face_away_from_seeds(
    sectors: list[tuple[BtsSector, ...]], xy: FloatArray, ground: Ground
) -> list[tuple[BtsSector, ...]]:
    """Turn each site near a seed village (FACE_AWAY_KM) so that every such village is as far
    as possible, in bearing, from the nearest sector's azimuth."""
    if len(ground.seed_latlon) == 0:
        return sectors
    sx, sy = geo.to_km(ground.seed_latlon[:, 0], ground.seed_latlon[:, 1])
    near = ground.seed_distance_km(xy) < FACE_AWAY_KM
    out = list(sectors)
    for i in np.flatnonzero(near):
        dx, dy = sx - xy[i, 0], sy - xy[i, 1]
        bearings = np.degrees(np.arctan2(dx, dy))[np.hypot(dx, dy) < FACE_AWAY_KM]
        count = len({s.azimuth_deg for s in sectors[i]})
        step = 360.0 / count
        turns = np.arange(0.0, step, 0.5)
        azimuths = turns[:, None] + step * np.arange(count)[None, :]  # (turn, sector)
        off = np.abs((bearings[None, None, :] - azimuths[:, :, None] + 180.0) % 360.0 - 180.0)
        turn = float(turns[np.argmax(off.min(axis=(1, 2)))])
        old = sorted({s.azimuth_deg for s in sectors[i]})
        new = {a: round((turn + step * k) % 360.0, 1) for k, a in enumerate(old)}
        out[i] = tuple(replace(s, azimuth_deg=new[s.azimuth_deg]) for s in sectors[i])
    return out


def _make_sites(
    op: Operator, xy: FloatArray, ground: Ground, rng: np.random.Generator, tag: str
) -> list[BtsSite]:
    district, commune = ground.locate(xy)
    order = np.lexsort((xy[:, 0], -xy[:, 1], commune))
    xy, district, commune = xy[order], district[order], commune[order]
    by_code = {c.code: i for i, c in enumerate(ground.communes)}
    area = _area_class(ground)[[by_code[int(c)] for c in commune]]
    low, high = np.choose(area, [25, 30, 35]), np.choose(area, [32, 40, 45])
    height = np.round(rng.uniform(low, high) * 2) / 2
    sectors = _face_away_from_seeds(_sectors(op, area, rng), xy, ground)
    seen: Counter[int] = Counter()
    sites = []
    for n, ((lat, lon), d, c) in enumerate(zip(to_latlon(xy), district, commune, strict=True)):
        seen[int(c)] += 1
        name = ground.communes[by_code[int(c)]].name
        sites.append(
            BtsSite(
                device_id=f"BTS-{OPERATOR_CODE[op]}-{tag}{n + 1:04d}",
                operator=op,
                name=f"{OPERATOR_NAME[op]} {short_name(name)} {seen[int(c)]:02d}",
                lat=lat,
                lon=lon,
                district_code=int(d),
                commune_code=int(c),
                antenna_height_m=float(height[n]),
                sectors=sectors[n],
            )
        )
    return sites


def build_bts(
    ground: Ground, rng: np.random.Generator, *, total: int = BTS_TOTAL, tag: str = ""
) -> tuple[BtsSite, ...]:
    """Every operator: a site at the commune centres it serves, some area coverage in the
    mountains, the rest where the people are; never within the dead-spot exclusion.

    ``total``: the province's site count; ``tag``: put into every id after the operator
    ("24-" for Bắc Giang: BTS-VTL-24-0001), so that provinces never share an id."""
    counts = operator_counts(total)
    area = _area_class(ground)
    sites: list[BtsSite] = []
    for op in OPERATOR_SHARES:
        presence = np.array(CENTRE_PRESENCE[op])[area]
        centres = ground.commune_xy[rng.random(len(area)) < presence]
        parts = [ground.place(centres, 0.3, rng, radio=True, max_km=0.8)]
        parts.append(_mountain_points(ground, round(MOUNTAIN_SHARE[op] * counts[op]), rng))
        if op is Operator.VIETTEL:
            parts.append(_reach_villages(ground, np.vstack(parts), rng))
        parts.append(_population_points(ground, counts[op] - sum(map(len, parts)), rng))
        sites += _make_sites(op, np.vstack(parts), ground, rng, tag)
    return tuple(sites)
