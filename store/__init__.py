"""Storage: schema and migrations, connections, the ingest writer, and named read queries."""

from store.db import Flavor, StoreUnavailable, aconnect, connect, detect_flavor
from store.migrate import upgrade

__all__ = ["Flavor", "StoreUnavailable", "aconnect", "connect", "detect_flavor", "upgrade"]
