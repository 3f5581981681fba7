"""``python -m ioc.dashboard_serve run ioc/dashboard_main.py …``: Streamlit's own command line,
with the dashboard's ``/metrics`` and ``/health`` started first.

Streamlit runs the page script only when a visitor opens a session, so an HTTP side started
by the script would not exist until then (and a health check on a fresh container would fail).
Started here, it answers from the process start; the script's own ``serve_once`` then finds it
running (one per process). Arguments are Streamlit's, as ``python -m streamlit`` takes them.
"""

from __future__ import annotations

import sys

from dashboard.observe import serve_once
from ioc.settings import Settings


def serve_metrics() -> None:
    """The dashboard's /metrics and /health, once per process (see dashboard.observe)."""
    settings = Settings()
    d = settings.dashboard
    serve_once(settings.database_url, d.metrics_address, d.metrics_port)


def main() -> None:
    serve_metrics()
    from streamlit.web.cli import main as streamlit

    sys.argv = ["streamlit", *sys.argv[1:]]
    streamlit()


if __name__ == "__main__":
    main()
