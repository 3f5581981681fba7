"""The headline strip: what an operator must see at a glance, above the map."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from dashboard.i18n import num, pct, t
from devices.health import DisplayState
from store.readings import IngestHealth
from store.registry import MapDevice


@dataclass(frozen=True, slots=True)
class CoverageHeadline:
    dead_spot_villages: int
    population_affected: int
    centres_covered: float | None  # fraction of commune centres covered by any operator
    population_covered: dict[str, float]  # operator ("any" too) → fraction of population
    # fraction of population no heard-from tower covers but towers never heard from would
    population_unknown: float = 0.0


def strip(
    devices: Sequence[MapDevice],
    open_alerts: dict[str, int] | None,
    coverage: CoverageHeadline | None,
    health: IngestHealth,
) -> None:
    top = st.columns(4)
    for column, kind in zip(top, ("bts", "camera", "broadband"), strict=False):
        rows = [d for d in devices if d.kind == kind]
        online = sum(DisplayState(d.state).live for d in rows)
        column.metric(
            t("head.online_of", kind=t("kind." + kind), total=num(len(rows))),
            num(online),
            delta=t("head.not_online", n=num(len(rows) - online)),
            delta_arrow="off",
            delta_color="inverse" if online < len(rows) else "off",
        )
    if open_alerts is not None:
        top[3].metric(
            t("head.alerts"),
            num(sum(open_alerts.values())),
            delta=t("head.alerts_detail", **{k: num(v) for k, v in open_alerts.items()}),
            delta_arrow="off",
            delta_color="inverse" if open_alerts.get("critical") else "off",
        )
    bottom = st.columns(4)
    if coverage is None:
        for column, key in zip(
            bottom, ("head.dead_spots", "head.centres", "head.population"), strict=False
        ):
            column.metric(
                t(key), "—", delta=t("head.no_coverage"), delta_arrow="off", delta_color="off"
            )
    else:
        bottom[0].metric(
            t("head.dead_spots"),
            num(coverage.dead_spot_villages),
            delta=t("head.dead_spots_detail", population=num(coverage.population_affected)),
            delta_arrow="off",
            delta_color="inverse" if coverage.dead_spot_villages else "off",
        )
        bottom[1].metric(t("head.centres"), pct(coverage.centres_covered))
        per_operator = " · ".join(
            f"{op}: {pct(share, 0)}"
            for op, share in coverage.population_covered.items()
            if op != "any"
        )
        unknown = coverage.population_unknown
        bottom[2].metric(
            t("head.population"),
            pct(coverage.population_covered.get("any")),
            delta=t("head.unknown", share=pct(unknown)) if unknown else per_operator or None,
            delta_arrow="off",
            delta_color="inverse" if unknown else "off",
        )
    bottom[3].metric(
        t("head.ingest"),
        num(health.messages_per_s, 1),
        delta=t(
            "head.ingest_detail",
            lag=num(health.lag_s, 1),
            rejects=num(health.rejects_last_hour),
        ),
        delta_arrow="off",
        delta_color="inverse" if health.rejects_last_hour else "off",
    )
