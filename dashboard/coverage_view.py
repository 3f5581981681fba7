"""The coverage engine's results as the dashboard shows them, read through store/coverage.py.

The engine keeps its raster in memory and stores per-place verdicts and levels
(``coverage_places``); the map's coverage layer draws those village-level levels, one
translucent disc per village, which stays a few thousand points however fine the raster is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
import pydeck as pdk

from dashboard.headline import CoverageHeadline
from dashboard.i18n import num, t
from devices.kinds import Operator
from store import coverage

OPERATORS = tuple(o.value for o in Operator)
# Received level → colour: the usual RSRP bands (good ≥ −95 dBm, fair ≥ −105, poor ≥ −115).
LEVEL_BANDS = ((-95.0, [39, 174, 96, 95]), (-105.0, [241, 196, 15, 95]),
               (-115.0, [230, 126, 34, 95]))  # fmt: skip
NO_SIGNAL = [231, 76, 60, 110]
UNKNOWN = [149, 165, 166, 110]  # rests on towers never heard from: neither covered nor dead


@dataclass(frozen=True, slots=True)
class CoverageSnapshot:
    villages: list[dict[str, Any]]
    communes: list[dict[str, Any]]
    centres: tuple[int, int]  # (covered, judged)


def snapshot(conn: psycopg.Connection) -> CoverageSnapshot | None:
    """The engine's current verdicts; None until it has computed any."""
    villages = coverage.coverage_rows(conn, "village")
    if not villages:
        return None
    return CoverageSnapshot(
        villages, coverage.coverage_rows(conn, "commune"), coverage.commune_centres(conn)
    )


def dead_spot_ids(snap: CoverageSnapshot | None) -> set[str]:
    return {v["place_id"] for v in snap.villages if v["dead_spot"]} if snap else set()


def headline(snap: CoverageSnapshot | None) -> CoverageHeadline | None:
    if snap is None:
        return None
    total = sum(v["population"] for v in snap.villages) or 1
    dead = [v for v in snap.villages if v["dead_spot"]]
    share = {
        op: sum(v["population"] for v in snap.villages if op in v["operators"]) / total
        for op in OPERATORS
    }
    share["any"] = sum(v["population"] for v in snap.villages if v["operators"]) / total
    unknown = sum(v["population"] for v in snap.villages if v["unknown"] and not v["operators"])
    covered, judged = snap.centres
    return CoverageHeadline(
        dead_spot_villages=len(dead),
        population_affected=sum(v["population"] for v in dead),
        centres_covered=covered / judged if judged else None,
        population_covered=share,
        population_unknown=unknown / total,
    )


def best_level(row: dict[str, Any], operator: str) -> float | None:
    """The best level over technologies of one operator, or of any ("any")."""
    levels = row["levels"] or {}
    ops = OPERATORS if operator == "any" else (operator,)
    found = [lv for op in ops for lv in (levels.get(op) or {}).values() if lv is not None]
    return max(found) if found else None


def _colour(row: dict[str, Any], operator: str) -> list[int]:
    covered = bool(row["operators"]) if operator == "any" else operator in row["operators"]
    unknown = row.get("unknown") or ()
    if not covered and (operator in unknown or (operator == "any" and unknown)):
        return UNKNOWN
    if not covered:
        return NO_SIGNAL
    level = best_level(row, operator)
    for floor, colour in LEVEL_BANDS:
        if level is not None and level >= floor:
            return colour
    return LEVEL_BANDS[-1][1]


def layer(
    snap: CoverageSnapshot | None, villages: list[dict[str, Any]], operator: str
) -> list[pdk.Layer]:
    """Coverage of ``operator`` (or "any") as translucent discs under the device layers."""
    if snap is None:
        return []
    where = {v["village_id"]: (v["lat"], v["lon"]) for v in villages}
    rows = [r for r in snap.villages if r["place_id"] in where]
    frame = pd.DataFrame(
        {
            "lat": [where[r["place_id"]][0] for r in rows],
            "lon": [where[r["place_id"]][1] for r in rows],
            "colour": [_colour(r, operator) for r in rows],
        }
    )
    return [
        pdk.Layer(
            "ScatterplotLayer",
            frame,
            id=f"coverage-{operator}",
            get_position=["lon", "lat"],
            get_fill_color="colour",
            get_radius=1500,
            radius_min_pixels=3,
            pickable=False,
        )
    ]


def tower_criticality(conn: psycopg.Connection, device_id: str) -> dict[str, Any] | None:
    """This tower's N-1 row (villages and people that would lose signal without it)."""
    for row in coverage.critical_top(conn, 100_000):
        if row["device_id"] == device_id:
            return row
    return None


def report(snap: CoverageSnapshot, critical: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """The report's tables, with localised column names: per district, per commune, N-1."""
    frame = pd.DataFrame(snap.villages)
    for op in OPERATORS:
        frame[op] = [op not in ops for ops in frame["operators"]]
    centres = {int(c["commune_code"]): bool(c["operators"]) for c in snap.communes}

    def summarise(keys: list[str]) -> pd.DataFrame:
        groups = frame.groupby(keys, sort=True)
        out = pd.DataFrame(
            {
                t("cov.villages"): groups.size(),
                t("cov.dead_spots"): groups["dead_spot"].sum(),
                t("cov.population"): groups["population"].sum(),
                t("cov.without"): groups.apply(
                    lambda g: int(g.loc[g["dead_spot"], "population"].sum()), include_groups=False
                ),
            }
        )
        for op in OPERATORS:
            out[t("cov.without_op", operator=op)] = groups.apply(
                lambda g, op=op: int(g.loc[g[op], "population"].sum()), include_groups=False
            )
        return out

    by_district = (
        summarise(["district"]).reset_index().rename(columns={"district": t("cov.district")})
    )
    by_commune = summarise(["district", "commune", "commune_code"]).reset_index()
    by_commune[t("cov.centre")] = [centres.get(int(c)) for c in by_commune["commune_code"]]
    by_commune = by_commune.drop(columns="commune_code").rename(
        columns={"district": t("cov.district"), "commune": t("cov.commune")}
    )
    towers = pd.DataFrame(critical).rename(
        columns={
            "device_id": t("device.pick"),
            "operator": t("device.operator"),
            "population_all": t("cov.n1_population_all"),
            "villages_all": t("cov.n1_villages_all"),
            "population_operator": t("cov.n1_population_op"),
            "villages_operator": t("cov.n1_villages_op"),
        }
    )
    towers = towers.drop(columns=[c for c in ("district_code", "computed_at") if c in towers])
    return {
        t("cov.by_district"): by_district,
        t("cov.by_commune"): by_commune,
        t("cov.critical"): towers,
    }


def criticality_text(row: dict[str, Any] | None) -> str:
    if row is None or not row["villages_all"]:
        return t("device.not_critical")
    return t("device.critical", n=num(row["villages_all"]), population=num(row["population_all"]))


def to_xlsx(sheets: dict[str, pd.DataFrame]) -> bytes:
    """One workbook, one sheet per table."""
    out = io.BytesIO()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False)  # Excel's limit
    return out.getvalue()
