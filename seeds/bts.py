"""The 1,723 base stations of Bình Định's four mobile operators (synthetic positions).

Report of 31 May 2022 (seed-documents/004): 4 operators, 1,723 BTS, 3G/4G at 100 % of commune
and town centres, five villages without mobile broadband. The split between operators, the
sites' positions and their radio parameters are ours and plausible, not operator data.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from devices.kinds import Operator, Technology
from seeds.geo import FloatArray
from seeds.model import BtsSector, BtsSite
from seeds.sites import BoolArray, Ground, IntArray, short_name, to_latlon

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
# Where operators build, as a radio planner would state it; no rule names the seed villages:
# - a site at each commune centre the operator serves (CENTRE_PRESENCE);
# - area coverage in the mountains (MOUNTAIN_SHARE): a site needs a road for its construction
#   and its power line (seeds.sites.ACCESS_KM of a national or district road), and stands on
#   the highest such ground within HILLTOP_KM of where the planner looked;
# - Viettel's reach: a site beside each ordinary village that no Viettel site within reach
#   sees over the terrain (seeds.sites.Ground.sees: line of sight with the Fresnel clearance,
#   on the scenario's DEM); the reach is VILLAGE_REACH_KM in the countryside and TOWN_REACH_KM
#   in a town's quarters, where buildings shorten a cell;
# - the rest where the people are: villages drawn by population, a short way off each. The seed
#   article reports the five seed villages served by no operator, so they weigh nothing there.
HILLTOP_KM = 0.5
HILLTOP_STEP_KM = 0.1
VILLAGE_REACH_KM = 6.0
TOWN_REACH_KM = 0.7
REACH_SITE_KM = 1.5  # a reach site stands this near its village at most (half the reach in towns)
REACH_TRIES = 4  # jitters tried beside a village for one that sees it; else in the village
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


def _masts(ground: Ground, xy: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Antenna heights above ground by area: taller masts where the sites are fewer."""
    _, commune = ground.locate(xy)
    by_code = {c.code: i for i, c in enumerate(ground.communes)}
    area = _area_class(ground)[[by_code[int(c)] for c in commune]]
    low, high = np.choose(area, [25, 30, 35]), np.choose(area, [32, 40, 45])
    out: FloatArray = np.round(rng.uniform(low, high) * 2) / 2
    return out


def _hilltops(ground: Ground, xy: FloatArray) -> FloatArray:
    """Each point moved to the highest ground within HILLTOP_KM that is still accessible (the
    point itself when nothing is higher, and always without a DEM)."""
    r = np.linspace(-HILLTOP_KM, HILLTOP_KM, 2 * round(HILLTOP_KM / HILLTOP_STEP_KM) + 1)
    offsets = np.stack(np.meshgrid(r, r), axis=-1).reshape(-1, 2)
    away = np.hypot(offsets[:, 0], offsets[:, 1])
    # nearest first, so that of equally high ground the nearest wins (the point itself first)
    offsets = offsets[np.argsort(away, kind="stable")][np.sort(away) <= HILLTOP_KM + 1e-9]
    cand = (xy[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    ok = ground.allowed(cand) & ground.accessible(cand)
    height = np.where(ok, ground.height_m(cand), -np.inf).reshape(len(xy), len(offsets))
    out: FloatArray = cand.reshape(len(xy), len(offsets), 2)[np.arange(len(xy)), height.argmax(1)]
    return out


def _mountain_points(ground: Ground, n: int, rng: np.random.Generator) -> FloatArray:
    """Area-coverage sites over the mountainous districts: points drawn uniformly where a site
    can be built (near a road), each moved up to its hilltop."""
    mountain = [d.code for d in ground.districts if d.mountainous]
    if not mountain:  # a generated province may have none: then no area-coverage sites
        return np.empty((0, 2))
    lo, hi = ground.outline.min(axis=0), ground.outline.max(axis=0)
    out = np.empty((0, 2))
    while len(out) < n:
        cand = rng.uniform(lo, hi, size=(8 * n, 2))
        cand = cand[ground.allowed(cand) & ground.accessible(cand)]
        out = np.vstack([out, cand[np.isin(ground.locate(cand)[0], mountain)]])
    return _hilltops(ground, out[:n])


def _population_points(ground: Ground, n: int, rng: np.random.Generator) -> FloatArray:
    """Sites where people live: villages the operators serve, drawn by population, a short way
    off each."""
    served = np.array([not v.seed_dead_spot for v in ground.villages])
    weight = np.array([v.population for v in ground.villages], dtype=np.float64) * served
    out = np.empty((0, 2))
    while len(out) < n:
        base = ground.village_xy[rng.choice(len(weight), size=n, p=weight / weight.sum())]
        cand = ground.place(base, 0.7, rng, max_km=2.0)
        out = np.vstack([out, cand[ground.allowed(cand)]])
    return out[:n]


def _seen(
    ground: Ground, sites: FloatArray, masts: FloatArray, targets: FloatArray, reach: FloatArray
) -> BoolArray:
    """Per target: whether a site within the target's reach (km) sees it."""
    d = np.hypot(*(sites[None, :, :] - targets[:, None, :]).transpose(2, 0, 1))
    t, s = np.nonzero(d <= reach[:, None])
    out = np.zeros(len(targets), dtype=np.bool_)
    out[t[ground.sees(sites[s], masts[s], targets[t])]] = True
    return out


def _reach_villages(
    ground: Ground, sites: FloatArray, masts: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Viettel's reach rule: a site (and its mast) beside each ordinary village that no Viettel
    site within reach sees, standing where it sees the village."""
    ordinary = np.array([not v.seed_dead_spot for v in ground.villages])
    town = {c.code for c in ground.communes if c.division_type != "xã"}
    reach = np.array(
        [TOWN_REACH_KM if v.commune_code in town else VILLAGE_REACH_KM for v in ground.villages]
    )
    todo = np.flatnonzero(ordinary & ~_seen(ground, sites, masts, ground.village_xy, reach))
    new_xy, new_mast = np.empty((0, 2)), np.empty(0)
    for i in todo:  # in order: a site added for one village may see the next
        xy = ground.village_xy[i : i + 1]
        if _seen(ground, new_xy, new_mast, xy, reach[i : i + 1])[0]:
            continue
        near = min(REACH_SITE_KM, reach[i] / 2)  # well within the village's reach
        base = np.repeat(xy, REACH_TRIES, axis=0)
        cand = ground.place(base, near / 3, rng, max_km=near)
        mast = _masts(ground, cand, rng)
        sees = ground.sees(cand, mast, base)
        k = int(np.argmax(sees)) if sees.any() else None
        site, height = (cand[k], mast[k]) if k is not None else (xy[0], mast[0])
        new_xy, new_mast = np.vstack([new_xy, site]), np.append(new_mast, height)
    return new_xy, new_mast


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


def _make_sites(
    op: Operator,
    xy: FloatArray,
    height: FloatArray,
    ground: Ground,
    rng: np.random.Generator,
    tag: str,
) -> list[BtsSite]:
    district, commune = ground.locate(xy)
    order = np.lexsort((xy[:, 0], -xy[:, 1], commune))
    xy, height, district, commune = xy[order], height[order], district[order], commune[order]
    by_code = {c.code: i for i, c in enumerate(ground.communes)}
    area = _area_class(ground)[[by_code[int(c)] for c in commune]]
    sectors = _sectors(op, area, rng)
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
    """Every operator: a site at the commune centres it serves, area coverage on accessible
    mountain tops, Viettel's reach to the villages, the rest where the people are.

    ``total``: the province's site count; ``tag``: put into every id after the operator
    ("24-" for Bắc Giang: BTS-VTL-24-0001), so that provinces never share an id."""
    counts = operator_counts(total)
    area = _area_class(ground)
    sites: list[BtsSite] = []
    for op in OPERATOR_SHARES:
        presence = np.array(CENTRE_PRESENCE[op])[area]
        centres = ground.commune_xy[rng.random(len(area)) < presence]
        xy = [ground.place(centres, 0.3, rng, max_km=0.8)]
        xy.append(_mountain_points(ground, round(MOUNTAIN_SHARE[op] * counts[op]), rng))
        masts = [_masts(ground, p, rng) for p in xy]
        if op is Operator.VIETTEL:
            reach_xy, reach_mast = _reach_villages(
                ground, np.vstack(xy), np.concatenate(masts), rng
            )
            xy.append(reach_xy)
            masts.append(reach_mast)
        xy.append(_population_points(ground, counts[op] - sum(map(len, xy)), rng))
        masts.append(_masts(ground, xy[-1], rng))
        sites += _make_sites(op, np.vstack(xy), np.concatenate(masts), ground, rng, tag)
    return tuple(sites)
