"""The thin slice, whole: scenario devices → broker → ingester → rows; a will → offline."""

from __future__ import annotations

import asyncio
from itertools import islice

from devices import Kind, Topics
from devices.endpoint import MqttEndpoint
from ingest import Ingester
from seeds import load_scenario
from simulators.fleet import Fleet
from tests.support.databases import rows
from tests.support.polling import wait_until

PER_KIND = 4
TELEMETRY = {
    Kind.BTS: "telemetry_bts",
    Kind.CAMERA: "telemetry_camera",
    Kind.BROADBAND: "telemetry_broadband",
}


async def test_scenario_devices_reach_the_database_and_a_killed_one_goes_offline(
    ingester: Ingester, database_url: str, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    scenario = load_scenario()
    specs = [
        spec
        for kind in TELEMETRY
        for spec in islice((d for d in scenario.devices() if d.kind == kind), PER_KIND)
    ]
    fleet = Fleet(
        specs, MqttEndpoint.parse(mqtt_url, protocol=mqtt_protocol), topics=topics, speed=120
    )
    fleet.start()
    try:

        async def every_kind_has_readings() -> bool:
            counts = [
                rows(database_url, f"SELECT count(DISTINCT device_id) FROM {table}")[0][0]
                for table in TELEMETRY.values()
            ]
            return counts == [PER_KIND] * len(TELEMETRY)

        await wait_until(every_kind_has_readings, timeout_s=60)
        registered = rows(
            database_url, "SELECT device_id, kind, state FROM devices ORDER BY device_id"
        )
        assert registered == sorted((s.device_id, s.kind.value, "online") for s in specs)
        victim = next(s.device_id for s in specs if s.kind == Kind.BTS)
        await fleet.devices[victim].kill()

        async def offline_by_will() -> bool:
            return rows(
                database_url, "SELECT state, state_reason FROM devices WHERE device_id = %s", victim
            ) == [("offline", "will")]

        await wait_until(offline_by_will, timeout_s=60)
        events = rows(
            database_url,
            "SELECT state, reason FROM status_events WHERE device_id = %s ORDER BY ts",
            victim,
        )
        assert events[-1] == ("offline", "will")
        assert rows(database_url, "SELECT count(*) FROM rejects") == [(0,)]
    finally:
        await asyncio.shield(fleet.stop())
