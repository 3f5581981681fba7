"""The MQTT → database pipeline."""

from ingest.config import IngestConfig
from ingest.service import Ingester, IngestStats
from store.writer import WriteMode

__all__ = ["IngestConfig", "IngestStats", "Ingester", "WriteMode"]
