"""The coverage service's inputs changing under it: on TimescaleDB, a birth record that
changes the radio (or only says hello), a spoofed birth refused, a flapping tower settling in
its last state. The scene is tests/support/coverage_scene.py."""

from __future__ import annotations

import itertools
import re
from typing import Any

import psycopg

from devices import Channel, Kind, encode
from processing.coverage.service import CoverageService
from processing.coverage.serving import Why
from store.migrate import upgrade
from store.registry import device_row, register_devices
from tests.support.coverage_scene import (
    LAT0,
    LON0,
    SECTORS,
    Live,
    bts_doc,
    built_once,
    load_scene,
    offset,
    village_rows,
)
from tests.support.polling import wait_until


async def test_the_service_runs_on_timescaledb(tsdb_url: str) -> None:
    with psycopg.connect(tsdb_url) as conn:
        upgrade(conn)
    load_scene(tsdb_url)
    await built_once(tsdb_url)
    villages = village_rows(tsdb_url)
    assert villages["mbf"]["operators"] == ["mobifone"] and villages["far"]["dead_spot"]


async def test_only_a_radio_change_in_a_birth_record_rebuilds(
    coverage_service: CoverageService, database_url: str
) -> None:
    before = coverage_service.coverage

    def register(**extra: Any) -> None:
        with psycopg.connect(database_url) as conn:
            register_devices(
                conn, [device_row(Kind.BTS, bts_doc("V", "viettel", LAT0, LON0, **extra))]
            )

    register(interval_s=1)  # a fleet announcing its accelerated interval: nothing radio
    wakes = coverage_service.wakes

    async def woken() -> bool:
        return coverage_service.wakes > wakes

    await wait_until(woken, timeout_s=15)
    assert coverage_service.coverage is before
    register(sectors=[dict(SECTORS[0], azimuth_deg=45.0)])

    async def rebuilt() -> bool:
        return coverage_service.coverage is not before

    await wait_until(rebuilt, timeout_s=15)
    assert coverage_service.coverage is not None
    assert [
        e.azimuth.tolist() for e in coverage_service.coverage.engine.emitters if e.device_id == "V"
    ] == [[45.0]]


async def test_a_spoofed_birth_record_does_not_redraw_coverage(live: Live) -> None:
    """One device's credential cannot move a tower, raise its power or change its operator;
    a field change (a re-tuned azimuth) still goes through."""
    before = live.service.coverage
    m_at = offset(LAT0, LON0, 9000, 0)
    louder = [dict(s, tx_power_dbm=60.0) for s in SECTORS]
    spoofs = [
        bts_doc("M", "mobifone", *offset(LAT0, LON0, 16000, 0)),  # onto the village
        bts_doc("M", "mobifone", *m_at, sectors=louder),
        bts_doc("M", "viettel", *m_at),
    ]
    for doc in spoofs:
        await live.publish(Kind.BTS, "M", Channel.META, doc)

    def refused() -> list[str]:
        with psycopg.connect(live.database_url) as conn:
            rows = conn.execute(
                "SELECT detail FROM rejects WHERE device_id = 'M' AND reason = 'out_of_range'"
                " ORDER BY received_at"
            ).fetchall()
        return [r[0] for r in rows]

    async def all_refused() -> bool:
        return len(refused()) == len(spoofs)

    await wait_until(all_refused, timeout_s=15)
    details = refused()
    assert re.search(r"moved [\d,]+ m \(more than 500 m\)", details[0]), details[0]
    assert "transmit power raised to 60 dBm" in details[1]
    assert "operator changed from mobifone to viettel" in details[2]
    assert live.service.coverage is before
    retuned = [dict(s, azimuth_deg=(s["azimuth_deg"] + 10.0) % 360) for s in SECTORS]
    await live.publish(
        Kind.BTS, "M", Channel.META, bts_doc("M", "mobifone", *m_at, sectors=retuned)
    )

    async def rebuilt() -> bool:
        return live.service.coverage is not before

    await wait_until(rebuilt, timeout_s=15)


async def test_a_flapping_tower_ends_in_its_last_state_with_events_in_step(live: Live) -> None:
    """Thirty flaps as fast as the broker takes them: the service reads the state once per
    wake, so it may skip some, but it never ends anywhere but the last state, and the village's
    events alternate (never two losses in a row)."""
    status = live.topics.device(Kind.BTS, "M", Channel.STATUS)
    async with live.client() as c:
        for i in range(30):
            state = "offline" if i % 2 == 0 else "online"
            await c.publish(status, encode({"device_id": "M", "state": state}), qos=1)
        await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1)

    async def settled() -> bool:  # the last status stored, and the service idle after it
        with psycopg.connect(live.database_url) as conn:
            (state,) = conn.execute("SELECT state FROM devices WHERE device_id = 'M'").fetchone()  # type: ignore[misc]
        return (
            state == "offline"
            and live.service.idle.is_set()
            and live.service.verdicts["M"].why is (Why.OFFLINE)
        )

    await wait_until(settled, timeout_s=20)
    assert live.villages()["mbf"]["dead_spot"]
    kinds = [e["kind"] for e in live.events() if e["village_id"] == "mbf"]
    assert kinds and kinds[-1] == "lost"
    assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
    assert live.service.verdicts["M"].why is Why.OFFLINE
