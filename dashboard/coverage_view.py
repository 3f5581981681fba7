"""The coverage engine's results as the dashboard shows them, read through store/coverage.py.

The engine stores per-place verdicts and levels (``coverage_places``) and, for the map, its
best-level raster per operator (``coverage_rasters``): drawn as one image layer
(dashboard/coverage_raster.py), rebuilt only when the service writes a new one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
import pydeck as pdk

from dashboard import coverage_raster
from dashboard.coverage_raster import RasterImage
from dashboard.headline import CoverageHeadline
from dashboard.i18n import num, t, when
from devices.kinds import Operator
from store import coverage
from store.scope import Scope

OPERATORS = tuple(o.value for o in Operator)
LEVEL_BANDS = coverage_raster.LEVEL_BANDS  # the raster's colour by level (dBm), for the legend
# The legend's swatches: Streamlit's named colours nearest each of LEVEL_BANDS, then no signal.
LEGEND_COLOURS = ("green", "yellow", "orange", "red")
RASTER_LAYER_ID = "coverage-raster"


@dataclass(frozen=True, slots=True)
class CoverageSnapshot:
    villages: list[dict[str, Any]]
    communes: list[dict[str, Any]]
    centres: tuple[int, int]  # (covered, judged)


def snapshot(conn: psycopg.Connection, *, scope: Scope) -> CoverageSnapshot | None:
    """The engine's current verdicts in the scope; None until it has computed any there."""
    villages = coverage.coverage_rows(conn, "village", scope=scope)
    if not villages:
        return None
    return CoverageSnapshot(
        villages,
        coverage.coverage_rows(conn, "commune", scope=scope),
        coverage.commune_centres(conn, scope=scope),
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


def layer(images: list[RasterImage]) -> list[pdk.Layer]:
    """The rasters (one a province) as bitmaps under the device layers (and under the dead-spot
    rings); the first keeps the plain id, each layer's id is unique as deck.gl needs."""
    # Quoted: pydeck would read a bare string as an expression.
    return [pdk.Layer("BitmapLayer", id=RASTER_LAYER_ID + (f"-{k}" if k else ""),
                      image=f"'{image.data_url}'", bounds=image.frame.bounds)
            for k, image in enumerate(images)]  # fmt: skip


def legend(image: RasterImage | None) -> str:
    """The raster's colour scale in dBm, as Markdown for a caption under the map."""
    if image is None:
        return t("raster.pending")
    (good, _), (fair, _), (poor, _) = LEVEL_BANDS
    labels = (
        t("raster.good", a=num(good)),
        t("raster.fair", b=num(fair), a=num(good)),
        t("raster.poor", b=num(poor), a=num(fair)),
        t("raster.none"),
    )
    swatches = "  ".join(f":{c}[■] {label}" for c, label in zip(LEGEND_COLOURS, labels,
                                                                strict=True))  # fmt: skip
    computed = t("raster.computed", when=when(image.computed_at, "medium"))
    return f"{t('raster.legend')}: {swatches}  ·  {t('raster.rings')}  ·  {computed}"


def tower_criticality(
    conn: psycopg.Connection, device_id: str, *, scope: Scope
) -> dict[str, Any] | None:
    """This tower's N-1 row (villages and people that would lose signal without it)."""
    for row in coverage.critical_top(conn, 100_000, scope=scope):
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
