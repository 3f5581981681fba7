"""The MQTT → database pipeline."""

from ingest.config import IngestConfig
from ingest.service import Ingester, IngestStats

__all__ = ["IngestConfig", "IngestStats", "Ingester"]
