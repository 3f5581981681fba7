"""The dashboard's ``/metrics`` and ``/health``: failed logins, lockouts, sessions in force.

Streamlit runs the page script again on every interaction, in every session; the HTTP side is
started once per process (a module-level singleton: modules are imported once) and reads its
figures from the database at each scrape (``store.gauges.login_figures``). The database, not
this process, holds the audit log, the locks and the sessions, so the figures are the same
whichever replica is asked and survive restarts, and the login code needs no counters of its
own. ``/health`` is 200 while that database answers, 503 with the reason when it does not.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from devices.service_http import HealthAnswer, Served
from store.gauges import ScrapedFigures, login_figures

_lock = threading.Lock()
_served: Served | None = None


def _health(figures: ScrapedFigures) -> HealthAnswer:
    list(figures.collect())  # one query: is the database there for the dashboard?
    if figures.last_error is not None:
        return False, {"service": "dashboard", "reason": f"database: {figures.last_error}"}
    return True, {"service": "dashboard"}


def serve_once(database_url: str | None, address: str, port: int | None) -> Served | None:
    """Start the dashboard's HTTP side unless this process already did; ``port`` None or 0,
    or no database: none."""
    global _served
    with _lock:
        if _served is not None or not port or not database_url:
            return _served
        registry = CollectorRegistry()
        figures = ScrapedFigures(database_url, "ioc_dashboard", login_figures)
        registry.register(figures)
        _served = Served()
        _served.start(address, port, registry, lambda: _health(figures), name="dashboard-http")
        return _served
