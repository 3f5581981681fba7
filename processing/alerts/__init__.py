"""The alert engine: rules as data, lifecycle with hysteresis and flapping, district grouping,
silences, and delivery through a database outbox to MQTT and webhooks."""

from processing.alerts.config import AlertConfig
from processing.alerts.engine import AlertEngine, run_alerts
from processing.alerts.rules import Rule, RulesError, RuleSet, Severity, Source, load_rules

__all__ = [
    "AlertConfig",
    "AlertEngine",
    "Rule",
    "RuleSet",
    "RulesError",
    "Severity",
    "Source",
    "load_rules",
    "run_alerts",
]
