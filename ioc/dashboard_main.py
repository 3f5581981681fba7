"""The dashboard's Streamlit entry script (``streamlit run``, from `ioc dashboard` and `ioc up`):
it reads the settings like every service and hands the dashboard its config."""

from __future__ import annotations

from dashboard.app import main
from ioc.configs import dashboard_config
from ioc.dashboard_serve import serve_metrics
from ioc.production import apply_password_policy
from ioc.settings import Settings

# Read on every run, not cached: half a millisecond beside a page's queries, and a cached copy
# would outlive the environment it was read from (AppTest runs many apps in one process).
settings = Settings()
apply_password_policy(settings.mode)  # the users page adds users
serve_metrics()  # /metrics and /health, once per process (ioc.dashboard_serve)
main(dashboard_config(settings))
