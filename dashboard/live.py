"""What the live views read on every refresh, once for the map page and the wall screen: the
scenario's places (cached) and the fleet's state, headline and coverage at one moment, each
within the reader's scope (a province drilled into is a narrower scope)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from dashboard import coverage_view
from dashboard.coverage_view import CoverageSnapshot
from dashboard.data import db
from dashboard.headline import CoverageHeadline
from dashboard.i18n import t
from store import alerts, readings, registry
from store import places as scenario_places
from store.readings import IngestHealth
from store.scope import Scope


@st.cache_data(ttl=300, show_spinner=False)
def places(
    scope: Scope,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Districts, map features and villages: scenario data, re-read every few minutes."""
    with db() as conn:
        return (
            scenario_places.districts(conn, scope=scope),
            scenario_places.map_features(conn, scope=scope),
            scenario_places.villages(conn, scope=scope),
        )


@st.cache_data(ttl=300, show_spinner=False)
def provinces(scope: Scope) -> dict[int, str]:
    """The provinces the scope sees, GSO code to name, by name."""
    with db() as conn:
        return {
            int(p["code"]): str(p["name"]) for p in scenario_places.provinces(conn, scope=scope)
        }


@dataclass(frozen=True, slots=True)
class LiveState:
    devices: list[registry.MapDevice]
    health: IngestHealth
    open_alerts: dict[str, int] | None
    coverage: CoverageSnapshot | None
    dead_spots: set[str]
    headline: CoverageHeadline | None


def state(now: datetime, scope: Scope) -> LiveState:
    """The fleet of ``scope`` as of ``now``, in one pooled connection."""
    with db() as conn:
        devices = registry.map_devices(conn, now, scope=scope)
        health = readings.ingest_health(conn, now)
        open_alerts = alerts.open_counts(conn, scope=scope)
        snap = coverage_view.snapshot(conn, scope=scope)
    return LiveState(
        devices=devices,
        health=health,
        open_alerts=open_alerts,
        coverage=snap,
        dead_spots=coverage_view.dead_spot_ids(snap),
        headline=coverage_view.headline(snap),
    )


def place_name(scope: Scope) -> str:
    """What ``scope`` watches, for titles: its provinces' names without "Tỉnh"/"Thành phố",
    or the country for the national role."""
    if scope.national:
        return t("nat.country")
    names = provinces(scope).values()
    return ", ".join(n.removeprefix("Tỉnh ").removeprefix("Thành phố ") for n in names)
