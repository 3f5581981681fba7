"""The coverage report: one table per district (villages, dead spots, population without
signal), the dead-spot villages by name, and a CSV with one row per village."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processing.coverage.state import Coverage, TowerCriticality


@dataclass(frozen=True, slots=True)
class VillageRow:
    village_id: str
    name: str
    commune: str
    district_code: int
    district: str
    population: int
    operators: tuple[str, ...]
    measured: tuple[str, ...]
    dead_spot: bool
    unknown: tuple[str, ...] = ()  # operators resting here on towers never heard from


CSV_FIELDS = (
    "village_id",
    "name",
    "commune",
    "district_code",
    "district",
    "population",
    "operators",
    "dead_spot",
    "judged_on_measurements",
    "resting_on_unknown_towers",
)


def rows_from_coverage(
    cov: Coverage, districts: Mapping[int, str], communes: Mapping[int, str]
) -> tuple[list[VillageRow], int, int]:
    """Village rows, and (commune centres covered, commune centres) from a computed coverage."""
    rows, centres, covered = [], 0, 0
    for (kind, _), pc in cov.current.items():
        p = pc.place
        if kind == "commune":
            centres += 1
            covered += bool(pc.operators)  # not resting on towers never heard from
            continue
        rows.append(
            VillageRow(
                p.place_id,
                p.name,
                communes.get(p.commune_code, str(p.commune_code)),
                p.district_code,
                districts.get(p.district_code, str(p.district_code)),
                p.population,
                tuple(o.value for o in pc.operators),
                tuple(o.value for o in pc.measured),
                pc.dead_spot,
                tuple(o.value for o in pc.unknown),
            )
        )
    return rows, covered, centres


def rows_from_db(villages: Iterable[Mapping[str, Any]]) -> list[VillageRow]:
    return [
        VillageRow(
            r["place_id"],
            r["name"],
            r.get("commune") or str(r["commune_code"]),
            r["district_code"],
            r.get("district") or str(r["district_code"]),
            r["population"],
            tuple(r["operators"]),
            tuple(r["measured"]),
            r["dead_spot"],
            tuple(r.get("unknown") or ()),
        )
        for r in villages
    ]


def report_lines(rows: list[VillageRow], centres_covered: int, centres: int) -> list[str]:
    by_district: dict[int, list[VillageRow]] = {}
    for r in rows:
        by_district.setdefault(r.district_code, []).append(r)
    head = (
        f"{'District':<26}{'Villages':>9}{'Dead spots':>12}{'People without signal':>23}"
        f"{'On probes':>11}"
    )
    out = [head, "-" * len(head)]
    for code in sorted(by_district):
        vs = by_district[code]
        dead = [v for v in vs if v.dead_spot]
        out.append(
            f"{vs[0].district:<26}{len(vs):>9}{len(dead):>12}"
            f"{sum(v.population for v in dead):>23,}{sum(bool(v.measured) for v in vs):>11}"
        )
    dead = [r for r in rows if r.dead_spot]
    out.append("-" * len(head))
    out.append(
        f"{'Province':<26}{len(rows):>9}{len(dead):>12}{sum(v.population for v in dead):>23,}"
        f"{sum(bool(v.measured) for v in rows):>11}"
    )
    out.append("")
    out.append(f"Commune centres with 3G/4G: {centres_covered} of {centres}")
    unknown = [r for r in rows if r.unknown and not r.operators]
    if unknown:
        out.append(
            f"Resting on towers never heard from (not counted as covered): {len(unknown)}"
            f" villages, {sum(v.population for v in unknown):,} people"
        )
    out.append(f"Villages without mobile broadband (dead spots): {len(dead)}")
    for v in dead:
        probes = " — judged on probe measurements" if v.measured else ""
        out.append(f"  {v.name} ({v.commune}, {v.district}), {v.population} people{probes}")
    measured = [r for r in rows if r.measured]
    if measured:
        out.append(f"Villages judged on probe measurements: {len(measured)}")
        for v in measured[:20]:
            out.append(f"  {v.name} ({v.commune}): {', '.join(v.measured)}")
    return out


def write_csv(path: Path, rows: Iterable[VillageRow]) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow(
                [
                    r.village_id,
                    r.name,
                    r.commune,
                    r.district_code,
                    r.district,
                    r.population,
                    " ".join(r.operators),
                    int(r.dead_spot),
                    " ".join(r.measured),
                    " ".join(r.unknown),
                ]
            )
            n += 1
    return n


def critical_lines(rows: Iterable[TowerCriticality | Mapping[str, Any]]) -> list[str]:
    head = (
        f"{'Tower':<16}{'Operator':<14}{'People left with no signal':>28}{'Villages':>10}"
        f"{'People losing this operator':>29}{'Villages':>10}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        d = (
            r
            if isinstance(r, Mapping)
            else {
                "device_id": r.device_id,
                "operator": r.operator.value,
                "population_all": r.population_all,
                "villages_all": r.villages_all,
                "population_operator": r.population_operator,
                "villages_operator": r.villages_operator,
            }
        )
        out.append(
            f"{d['device_id']:<16}{d['operator']:<14}{d['population_all']:>28,}{d['villages_all']:>10}"
            f"{d['population_operator']:>29,}{d['villages_operator']:>10}"
        )
    return out
