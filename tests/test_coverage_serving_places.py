"""Which towers serve which place (``place_towers``, 0019) against a real broker, ingester and
database: the coverage service stores the engine's ``covering`` exactly, a tower going offline
leaves it (and returns), and the device and village pages list it. The scene is
tests/support/coverage_scene.py: V (Viettel) covers "both", M (Mobifone) covers "both" and
"mbf", nothing covers "far"."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from devices import Channel, Kind, Topics, encode
from ingest import Ingester
from ioc.configs import coverage_config, coverage_service_config
from processing.coverage.service import CoverageService, serving_pairs
from store import coverage, users, villages
from store.coverage import ServingPair
from store.db import aconnect
from store.scope import NATIONAL
from tests.fixtures.dashboard import PASSWORDS
from tests.support.clients import mqtt_client
from tests.support.coverage_scene import running
from tests.support.polling import wait_until
from tests.test_dashboard import app, texts

DEVICE_PAGE = "../dashboard/pages/device.py"
VILLAGE_PAGE = "../dashboard/pages/village.py"


def stored(url: str) -> dict[ServingPair, datetime]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT place_kind, place_id, operator, device_id, since FROM place_towers"
        ).fetchall()
    return {(a, b, c, d): since for a, b, c, d, since in rows}


@contextlib.asynccontextmanager
async def serving_service(url: str) -> AsyncIterator[CoverageService]:
    """The service with N-1 (and so ``place_towers``) written a moment after each change."""
    svc = CoverageService(
        coverage_service_config(
            database_url=url,
            coverage=coverage_config(resolution_m=200.0),
            critical_every_s=0.2,
            metrics_port=None,
        )
    )
    async with running(svc):
        yield svc


def village_pairs(pairs: set[ServingPair] | dict[ServingPair, Any]) -> set[tuple[str, str]]:
    return {(place, tower) for kind, place, _, tower in pairs if kind == "village"}


async def test_the_stored_mapping_follows_the_engine_and_a_tower_going_offline(
    loaded: str, ingester: Ingester, mqtt_url: str, mqtt_protocol: int, topics: Topics
) -> None:
    async with serving_service(loaded) as svc:
        assert svc.coverage is not None
        first = stored(loaded)
        assert set(first) == serving_pairs(svc.coverage)
        assert village_pairs(first) == {("both", "V"), ("both", "M"), ("mbf", "M")}
        assert ("village", "mbf", "mobifone", "M") in first

        status = topics.device(Kind.BTS, "M", Channel.STATUS)
        async with mqtt_client(mqtt_url, mqtt_protocol) as c:
            await c.publish(status, encode({"device_id": "M", "state": "offline"}), qos=1)

            async def m_gone() -> bool:
                return not any(tower == "M" for *_, tower in stored(loaded))

            await wait_until(m_gone, timeout_s=15)
            now = stored(loaded)
            assert set(now) == serving_pairs(svc.coverage)
            assert village_pairs(now) == {("both", "V")}
            unchanged = ("village", "both", "viettel", "V")
            assert now[unchanged] == first[unchanged]  # a pair that stays keeps its since

            await c.publish(status, encode({"device_id": "M", "state": "online"}), qos=1)

            async def m_back() -> bool:
                return village_pairs(stored(loaded)) == village_pairs(first)

            await wait_until(m_back, timeout_s=15)
            again = stored(loaded)
            assert set(again) == serving_pairs(svc.coverage)
            back = ("village", "mbf", "mobifone", "M")
            assert again[back] > first[back]  # served again from its return


@pytest.fixture
async def served(loaded: str, ingester: Ingester) -> str:
    """The scene with its serving mapping written by the service, and dashboard users."""
    async with serving_service(loaded) as svc:
        assert svc.coverage is not None and stored(loaded)
    with psycopg.connect(loaded, autocommit=True) as conn:
        users.add_user(conn, "viewer", PASSWORDS["viewer"], "viewer")
    return loaded


def test_store_reads_both_ways(served: str) -> None:
    with psycopg.connect(served) as conn:
        m = {v["village_id"]: v for v in villages.tower_serves(conn, "M", scope=NATIONAL)}
        v = {v["village_id"]: v for v in villages.tower_serves(conn, "V", scope=NATIONAL)}
        both = villages.village_serving(conn, "both", scope=NATIONAL)
        far = villages.village_serving(conn, "far", scope=NATIONAL)
    assert list(m) == ["mbf", "both"]  # the village M alone serves first
    assert (m["mbf"]["towers_all"], m["mbf"]["towers_operator"]) == (1, 1)
    assert (m["both"]["towers_all"], m["both"]["towers_operator"]) == (2, 1)
    assert m["both"]["commune_name"] == "Thị trấn Phú Phong" and m["both"]["population"] == 700
    assert list(v) == ["both"]
    assert [(s["operator"], s["device_id"]) for s in both] == [("mobifone", "M"), ("viettel", "V")]
    assert both[1]["distance_km"] == pytest.approx(4.5, abs=0.1)
    assert far == []


def test_device_page_lists_the_villages_the_tower_serves(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app(served, monkeypatch, "viewer", lang="en")
    at.switch_page(DEVICE_PAGE)
    at.query_params["device"] = "M"
    at.run()
    assert not at.exception, at.exception
    assert "Villages this tower serves now (2)" in texts(at)
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    assert "mbf · Thị trấn Phú Phong · 400 people · the only tower with signal here" in links
    assert "both · Thị trấn Phú Phong · 700 people · the only mobifone tower" in links
    at.session_state["lang"] = "vi"
    at.run()
    assert not at.exception, at.exception
    assert "Thôn trạm này đang phục vụ (2)" in texts(at)


def test_village_page_lists_the_towers_serving_it_by_operator(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app(served, monkeypatch, "viewer", lang="en")
    at.switch_page(VILLAGE_PAGE)
    at.query_params["village"] = "both"
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "viettel · towers: 1" in shown and "mobifone · towers: 1" in shown
    assert "vinaphone: no tower" in shown
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    assert "↳ V · online · 4.5 km" in links
    assert any(label.startswith("↳ M · online · ") for label in links)


async def test_a_tower_sharing_a_village_with_its_operator_says_how_many(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await aconnect(served)
    try:  # a second Mobifone tower at "both", not (yet) in the registry
        pairs = set(stored(served)) | {("village", "both", "mobifone", "M2")}
        await coverage.write_place_towers(conn, pairs, datetime.now(UTC))
    finally:
        await conn.close()
    at = app(served, monkeypatch, "viewer", lang="en")
    at.switch_page(DEVICE_PAGE)
    at.query_params["device"] = "M"
    at.run()
    assert not at.exception, at.exception
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    assert "both · Thị trấn Phú Phong · 700 people · mobifone towers here: 2" in links
    at = app(served, monkeypatch, "viewer", lang="en")
    at.switch_page(VILLAGE_PAGE)
    at.query_params["village"] = "both"
    at.run()
    assert not at.exception, at.exception
    assert "mobifone · towers: 2" in texts(at)
    links = [getattr(link, "label", "") for link in at.get("page_link")]
    assert "↳ M2 · — · — km" in links
