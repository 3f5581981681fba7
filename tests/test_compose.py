"""The compose file: well formed, every service it names exists, and its config files exist.

This machine kind runs no Docker engine, so the stack itself is exercised as plain processes
by the other tests; this checks the file those processes mirror.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_names_the_services_and_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"timescaledb", "mosquitto", "ingest", "processing", "dashboard"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert (ROOT / ".env.example").exists()
