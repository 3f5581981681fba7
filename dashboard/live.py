"""What the live views read on every refresh, once for the map page and the wall screen: the
scenario's places (cached) and the fleet's state, headline and coverage at one moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from dashboard import coverage_view
from dashboard.coverage_view import CoverageSnapshot
from dashboard.data import db
from dashboard.headline import CoverageHeadline
from store import alerts, readings, registry
from store import places as scenario_places
from store.readings import IngestHealth


@st.cache_data(ttl=300, show_spinner=False)
def places() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Districts, map features and villages: scenario data, re-read every few minutes."""
    with db() as conn:
        return (
            scenario_places.districts(conn),
            scenario_places.map_features(conn),
            scenario_places.villages(conn),
        )


@dataclass(frozen=True, slots=True)
class LiveState:
    devices: list[registry.MapDevice]
    health: IngestHealth
    open_alerts: dict[str, int] | None
    coverage: CoverageSnapshot | None
    dead_spots: set[str]
    headline: CoverageHeadline | None


def state(now: datetime) -> LiveState:
    """The fleet as of ``now``, in one pooled connection."""
    with db() as conn:
        devices = registry.map_devices(conn, now)
        health = readings.ingest_health(conn, now)
        open_alerts = alerts.open_counts(conn)
        snap = coverage_view.snapshot(conn)
    return LiveState(
        devices=devices,
        health=health,
        open_alerts=open_alerts,
        coverage=snap,
        dead_spots=coverage_view.dead_spot_ids(snap),
        headline=coverage_view.headline(snap),
    )
