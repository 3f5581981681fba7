"""Drive-test probes: a phone in a car on the scenario's roads, reporting what it measures.

Received levels come from the radio model in ``devices.radio`` (path loss by band, 3GPP sector
pattern, link budget), the one copy processing uses too, over the sectors of the probe's
operator that are on air now (a simulated tower that is dark, has lost its backhaul or has a
sector off air does not serve). On top of the model's median: log-normal shadow fading,
correlated along the road (Gudmundson's exponential model), which is what makes a drive test
differ from a prediction.

The phone camps on its best technology that clears its sensitivity (4G, else 3G, else 2G), and
reports the serving level (RSRP, RSCP or RxLev: ``rsrp_dbm``), quality (RSRQ on 4G, CPICH Ec/Io
on 3G) and SINR (4G), or ``no_service``.

Terrain: over the scenario's DEM (Bình Định's synthetic one) each path from a site to the
phone takes the ground's Bullington loss in excess of smooth earth's (``devices.diffraction``,
the method the coverage engine's sweep is held to), along PROFILE_POINTS samples.

Land use: processing classifies each raster cell (``processing/coverage/landuse.py``), which
simulators may not import; a probe uses the simpler rule in :func:`land_use_at` (urban near a
ward or town centre, suburban in the mountain districts, rural-open elsewhere).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from devices.diffraction import terrain_excess_db
from devices.kinds import Kind, Operator, Technology
from devices.radio import MAX_RANGE_KM, LandUse, bearing_deg, rsrp_dbm
from devices.radio import MOBILE_HEIGHT_M as MOBILE_M
from seeds import Scenario
from seeds.geo import FloatArray, to_km
from simulators.routes import Route, tour
from simulators.values import DeviceCondition, conform

# Phone sensitivity, dBm: below it a technology gives no service. 4G: RSRP of a typical
# handset's reference sensitivity (3GPP TS 36.101, about -124 dBm at 10 MHz); 3G: RSCP -115
# dBm; 2G: the GSM reference sensitivity of -102 dBm (3GPP TS 45.005), a little margin below.
SENSITIVITY_DBM = {Technology.G4: -124.0, Technology.G3: -115.0, Technology.G2: -104.0}
PREFERENCE = (Technology.G4, Technology.G3, Technology.G2)
SHADOW_SIGMA_DB = 8.0  # log-normal shadow fading, macro cells (3GPP TR 36.942 uses 8-10 dB)
DECORRELATION_M = 50.0  # Gudmundson 1991, suburban: correlation e^(-d/50 m)
MEASUREMENT_SIGMA_DB = 1.0  # what the handset adds on its own
NOISE_PER_RE_DBM = -174.0 + 10 * math.log10(15_000) + 7.0  # kT·15 kHz, 7 dB noise figure
CELL_LOAD = 0.5  # share of resource elements carrying data in neighbouring cells
URBAN_RADIUS_KM = 1.2
PROBE_SPEED_KMH = 40.0
PROBE_INTERVAL_S = 5.0  # simulated seconds between samples (about 55 m at 40 km/h)
PROFILE_POINTS = 128  # along each site-to-phone path: 160 m apart at the 20 km range


@dataclass(frozen=True, slots=True)
class _Group:
    """Sectors of one operator on one band and technology, as arrays for the model."""

    technology: Technology
    band_mhz: float
    site: list[str]  # device id of each sector's site
    sector: np.ndarray  # sector numbers
    x_km: FloatArray
    y_km: FloatArray
    height_m: FloatArray
    azimuth_deg: FloatArray
    tilt_deg: FloatArray
    beamwidth_deg: FloatArray
    tx_dbm: FloatArray
    gain_dbi: FloatArray


class RadioScene:
    """The scenario's BTS sectors by operator; which are on air follows live conditions."""

    def __init__(self, scenario: Scenario) -> None:
        rows: dict[tuple[Operator, Technology, float], list[tuple[Any, ...]]] = {}
        for b in scenario.bts:
            x, y = to_km(b.lat, b.lon)
            for s in b.sectors:
                key = (b.operator, s.technology, s.band_mhz)
                rows.setdefault(key, []).append(
                    (b.device_id, s.sector, float(x), float(y), b.antenna_height_m,
                     s.azimuth_deg, s.tilt_deg, s.beamwidth_deg, s.tx_power_dbm,
                     s.antenna_gain_dbi)
                )  # fmt: skip
        self.groups: dict[Operator, list[_Group]] = {}
        for (op, tech, band), r in rows.items():
            cols = list(zip(*r, strict=True))
            arr = [np.asarray(c, np.float64) for c in cols[2:]]
            group = _Group(tech, band, list(cols[0]), np.asarray(cols[1]), *arr)
            self.groups.setdefault(op, []).append(group)
        self.conditions: Mapping[str, DeviceCondition] = {}
        self.towns = [to_km(c.lat, c.lon) for c in scenario.communes
                      if c.division_type in ("phường", "thị trấn")]  # fmt: skip
        self.mountains = [d for d in scenario.districts if d.mountainous]
        self._district_of = {c.code: c.district_code for c in scenario.communes}
        self._mountain_codes = {d.code for d in self.mountains}
        self._commune_xy = np.array([to_km(c.lat, c.lon) for c in scenario.communes])
        self._commune_codes = [c.code for c in scenario.communes]
        self.terrain = scenario.terrain

    def bind(self, conditions: Mapping[str, DeviceCondition]) -> None:
        """Follow these towers' live conditions (the fleet's), by device id."""
        self.conditions = conditions

    def _on_air(self, g: _Group) -> np.ndarray:
        if not self.conditions:
            return np.ones(len(g.site), bool)
        out = np.ones(len(g.site), bool)
        for i, (site, n) in enumerate(zip(g.site, g.sector, strict=True)):
            c = self.conditions.get(site)
            if c is not None and not (c.online and c.backhaul_up and int(n) not in c.sectors_down):
                out[i] = False
        return out

    def land_use_at(self, x: float, y: float) -> LandUse:
        for tx, ty in self.towns:
            if math.hypot(x - float(tx), y - float(ty)) <= URBAN_RADIUS_KM:
                return LandUse.URBAN
        nearest = int(np.argmin(np.hypot(self._commune_xy[:, 0] - x, self._commune_xy[:, 1] - y)))
        district = self._district_of[self._commune_codes[nearest]]
        return LandUse.SUBURBAN if district in self._mountain_codes else LandUse.RURAL_OPEN

    def levels(
        self, operator: Operator, x: float, y: float
    ) -> list[tuple[Technology, FloatArray, int]]:
        """Per band group: its technology, each on-air sector's median level (dBm) and the
        index of the strongest; sectors out of range or off air are left out."""
        use = self.land_use_at(x, y)
        out = []
        for g in self.groups.get(operator, []):
            dx, dy = x - g.x_km, y - g.y_km
            dist = np.hypot(dx, dy)
            keep = (dist <= MAX_RANGE_KM) & self._on_air(g)
            if not keep.any():
                continue
            level = rsrp_dbm(
                tx_power_dbm=g.tx_dbm[keep],
                technology=g.technology,
                freq_mhz=g.band_mhz,
                dist_km=dist[keep],
                h_bs_m=g.height_m[keep],
                az_offset_deg=bearing_deg(dx[keep], dy[keep]) - g.azimuth_deg[keep],
                tilt_deg=g.tilt_deg[keep],
                beamwidth_deg=g.beamwidth_deg[keep],
                land_use=use,
                antenna_gain_dbi=g.gain_dbi[keep],
            )
            if self.terrain is not None:
                level = level - self._terrain_db(g, keep, x, y)
            out.append((g.technology, level, int(np.argmax(level))))
        return out

    def _terrain_db(self, g: _Group, keep: np.ndarray, x: float, y: float) -> FloatArray:
        """What the ground costs each kept sector's path to the phone at (x, y), dB."""
        assert self.terrain is not None
        t = np.linspace(0.0, 1.0, PROFILE_POINTS)
        sx, sy = g.x_km[keep], g.y_km[keep]
        px = sx[:, None] + (x - sx)[:, None] * t
        py = sy[:, None] + (y - sy)[:, None] * t
        ground = self.terrain.height_at(np.column_stack([px.ravel(), py.ravel()]))
        d_km = np.hypot(x - sx, y - sy)[:, None] * t
        return terrain_excess_db(d_km, ground.reshape(px.shape), g.height_m[keep], MOBILE_M,
                                 g.band_mhz)  # fmt: skip


def _db(mw: float) -> float:
    return 10 * math.log10(mw) if mw > 0 else -math.inf


def _mw(dbm: FloatArray | float) -> Any:
    return np.power(10.0, np.asarray(dbm) / 10.0)


class ProbeValues:
    """A probe's reading source: position along its route, then what the phone measures."""

    kind = Kind.PROBE

    def __init__(
        self,
        device_id: str,
        operator: Operator,
        route: Route,
        scene: RadioScene,
        *,
        condition: DeviceCondition | None = None,
        speed_kmh: float = PROBE_SPEED_KMH,
        shadow_sigma_db: float = SHADOW_SIGMA_DB,
        measurement_sigma_db: float = MEASUREMENT_SIGMA_DB,
        seed: int | None = None,
    ) -> None:
        self.device_id, self.operator, self.route, self.scene = device_id, operator, route, scene
        self.condition = condition or DeviceCondition()
        self.speed_kmh = speed_kmh
        self.shadow_sigma_db, self.measurement_sigma_db = shadow_sigma_db, measurement_sigma_db
        self.rng = random.Random(seed if seed is not None else device_id)
        self._start: datetime | None = None
        self._fading_db = self.rng.gauss(0.0, shadow_sigma_db)
        self._last_km = 0.0

    def position_km(self, at: datetime) -> float:
        if self._start is None:
            self._start = at
        return self.speed_kmh * (at - self._start).total_seconds() / 3600

    def reading(self, at: datetime) -> dict[str, Any]:
        km = self.position_km(at)
        lat, lon = self.route.position(km)
        self._fade(abs(km - self._last_km) * 1000)
        self._last_km = km
        x, y = (float(v) for v in to_km(lat, lon))
        return conform(Kind.PROBE, {"lat": lat, "lon": lon, "operator": self.operator.value,
                                    **self.measure(x, y)})  # fmt: skip

    def _fade(self, moved_m: float) -> None:
        rho = math.exp(-moved_m / DECORRELATION_M)
        sigma = self.shadow_sigma_db
        self._fading_db = rho * self._fading_db + math.sqrt(1 - rho * rho) * self.rng.gauss(
            0, sigma
        )

    def measure(self, x: float, y: float) -> dict[str, Any]:
        """What the phone reports at projected (x, y) km (metrics but position and operator)."""
        best: dict[Technology, tuple[float, FloatArray, int]] = {}
        for tech, levels, i in self.scene.levels(self.operator, x, y):
            if tech not in best or levels[i] > best[tech][0]:
                best[tech] = (float(levels[i]), levels, i)
        noise = self.rng.gauss(0.0, self.measurement_sigma_db) if self.measurement_sigma_db else 0.0
        for tech in PREFERENCE:
            if tech not in best:
                continue
            level, levels, i = best[tech]
            serving = level + self._fading_db + noise
            if serving < SENSITIVITY_DBM[tech]:
                continue
            others = float(np.sum(_mw(levels))) - float(_mw(level))
            quality = _quality(tech, serving, others)
            return {"technology": tech.value, "rsrp_dbm": serving, **quality}
        return {"technology": Technology.G4.value, "rsrp_dbm": None, "rsrq_db": None,
                "sinr_db": None, "no_service": True}  # fmt: skip


def _quality(tech: Technology, serving_dbm: float, others_mw: float) -> dict[str, Any]:
    """RSRQ and SINR (4G), Ec/Io (3G) from the serving level and the same band's other cells."""
    s = float(_mw(serving_dbm))
    n = float(_mw(NOISE_PER_RE_DBM))
    if tech is Technology.G4:
        i = CELL_LOAD * others_mw
        sinr = _db(s / (i + n))
        # TS 36.214: RSRQ = N·RSRP / RSSI, RSSI over N resource blocks of 12 subcarriers
        rsrq = -_db(12 * (CELL_LOAD + (i + n) / s))
        return {"rsrq_db": rsrq, "sinr_db": sinr, "no_service": False}
    if tech is Technology.G3:
        # CPICH Ec/Io: the pilot (10 % of a cell's power) over all received power
        total = 10 * (s + others_mw) + n
        return {"rsrq_db": _db(s / total), "sinr_db": None, "no_service": False}
    return {"rsrq_db": None, "sinr_db": None, "no_service": False}


def probe_values(
    scenario: Scenario, scene: RadioScene, ids: Iterable[str] | None = None
) -> dict[str, ProbeValues]:
    """A reading source for each of the scenario's probes (or those in ``ids``), each on the
    tour of the local roads from where it starts."""
    wanted = set(ids) if ids is not None else None
    return {
        p.device_id: ProbeValues(
            p.device_id, p.operator, tour((p.lat, p.lon), scenario.roads, p.name), scene
        )
        for p in scenario.probes
        if wanted is None or p.device_id in wanted
    }
