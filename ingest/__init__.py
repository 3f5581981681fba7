"""The MQTT → database pipeline."""

from ingest.config import IngestConfig, MqttEndpoint
from ingest.service import Ingester, IngestStats

__all__ = ["IngestConfig", "IngestStats", "Ingester", "MqttEndpoint"]
