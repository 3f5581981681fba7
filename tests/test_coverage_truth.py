"""Coverage truth on small scenes: what "serving" means, measurements that cannot mask an
outage, and towers never heard from reported as such rather than as coverage."""

from __future__ import annotations

from datetime import timedelta

from devices.kinds import Operator
from processing.coverage import Coverage
from processing.coverage.measured import ProbeSample, bin_samples
from processing.coverage.places import Place
from processing.coverage.serving import (
    NodeReport,
    SiteReport,
    SiteState,
    Why,
    judge,
    judge_all,
)
from tests.test_coverage_engine import T0, two_operator_scene

HOUR = 3600.0


def _samples(place: Place, operator: str, *, rsrp: float | None, hours_ago: float,
             probes: tuple[str, ...] = ("P1", "P2"), n: int = 6) -> list[ProbeSample]:  # fmt: skip
    ts = T0 - timedelta(hours=hours_ago)
    return [
        ProbeSample(ts, place.lat, place.lon, operator, tech, rsrp, rsrp is None, probe)
        for tech in ("4G", "3G")
        for probe in (probes * n)[:n]
    ]


def _scene() -> tuple[Coverage, list[Place]]:
    eng, places = two_operator_scene()
    cov = Coverage(eng, places)
    cov.refresh_covering()
    cov.plan()
    cov.current = cov.evaluate()
    return cov, places


def test_a_drive_test_before_the_outage_does_not_mask_it() -> None:
    cov, places = _scene()
    eng = cov.engine
    mbf = places[1]
    # Good signal measured there an hour ago, by two probes: the measurement stands.
    cov.measured = bin_samples(
        _samples(mbf, "mobifone", rsrp=-85.0, hours_ago=1), eng.grid, eng.layers, eng.config, T0
    )
    assert cov.update(T0) == []
    assert cov.current[("village", "mbf")].measured == (Operator.MOBIFONE,)
    # Its only tower goes down now: the older samples no longer count, the village is lost.
    changed = eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp())
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert (events["mbf"].kind, events["mbf"].towers) == ("lost", ("M",))
    after = cov.current[("village", "mbf")]
    assert after.dead_spot and after.measured == ()


def test_a_new_tower_on_air_clears_a_measured_dead_spot_at_once() -> None:
    cov, places = _scene()
    eng = cov.engine
    eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp() - 2 * HOUR)
    cov.refresh_covering()
    mbf = places[1]
    cov.measured = bin_samples(
        _samples(mbf, "mobifone", rsrp=None, hours_ago=1), eng.grid, eng.layers, eng.config, T0
    )
    cov.update(T0)
    assert cov.current[("village", "mbf")].dead_spot  # measured: no service
    changed = eng.apply({"M": SiteState(serving=True)}, at=T0.timestamp())
    events = {e.village_id: e for e in cov.update(T0, changed=changed)}
    assert (events["mbf"].kind, events["mbf"].towers) == ("restored", ("M",))
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)


def test_one_probe_alone_does_not_make_a_measurement() -> None:
    cov, places = _scene()
    eng = cov.engine
    one = _samples(places[1], "mobifone", rsrp=None, hours_ago=1, probes=("P1",), n=20)
    cov.measured = bin_samples(one, eng.grid, eng.layers, eng.config, T0)
    assert cov.update(T0) == []
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)
    assert cov.current[("village", "mbf")].measured == ()


def test_serving_needs_life_backhaul_and_the_feeding_uplink() -> None:
    up = NodeReport(uplink_up=True)
    down = NodeReport(uplink_up=False)
    online = SiteReport("online", commune_code=1)
    assert judge(online, [up], in_grace=False).why is Why.SERVING
    assert judge(SiteReport("offline"), [], in_grace=True).why is Why.OFFLINE
    no_backhaul = SiteReport("online", backhaul_up=False)
    assert judge(no_backhaul, [up], in_grace=False).state == SiteState(serving=False)
    cut = judge(online, [down], in_grace=False)
    assert (cut.why, cut.state.serving) == (Why.UPLINK_DOWN, False)
    # Two nodes listed for one commune: one uplink left still carries the site.
    assert judge(online, [down, up], in_grace=False).why is Why.SERVING
    never = SiteReport("unknown")
    assert judge(never, [], in_grace=True).state.serving
    assert not judge(never, [], in_grace=False).state.serving
    assert judge(never, [], in_grace=False).why is Why.UNKNOWN
    # The feed is found through the registry's communes_served.
    verdicts = judge_all(
        {"A": SiteReport("online", commune_code=7), "B": SiteReport("online", commune_code=8)},
        {"OLT-7": down},
        {7: ["OLT-7"]},
        in_grace=False,
    )
    assert (verdicts["A"].why, verdicts["B"].why) == (Why.UPLINK_DOWN, Why.SERVING)


def test_a_village_resting_on_a_tower_never_heard_from_is_unknown_not_covered() -> None:
    cov, _ = _scene()
    eng = cov.engine
    # M never reported; the grace is over, so it does not serve.
    cov.unknown_sites = frozenset({"M"})
    changed = eng.apply({"M": SiteState(serving=False)}, at=T0.timestamp())
    events = cov.update(T0, changed=changed)
    mbf = cov.current[("village", "mbf")]
    assert (mbf.operators, mbf.unknown, mbf.dead_spot) == ((), (Operator.MOBIFONE,), False)
    both = cov.current[("village", "both")]
    assert (both.operators, both.unknown) == ((Operator.VIETTEL,), (Operator.MOBIFONE,))
    # Moving between covered and "unknown" is no event either way: the grace running out
    # raises no "lost" storm, and a fleet coming up no "restored" one.
    assert events == []
    cov.unknown_sites = frozenset()
    changed = eng.apply({"M": SiteState(serving=True)}, at=T0.timestamp())
    assert cov.update(T0, changed=changed) == []
    assert cov.current[("village", "mbf")].operators == (Operator.MOBIFONE,)
