"""The video wall (``?wall=1``, issue 17 part 6) with Streamlit's AppTest against the scenario
database: the headline, the map and the open alerts, read-only, for a viewer, in either
language, with no sidebar."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.test_dashboard import app


def wall(at: AppTest, **params: str) -> AppTest:
    at.query_params["wall"] = "1"
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def html(at: AppTest) -> str:
    return "\n".join(e.proto.body for e in at.get("html"))


def test_wall_is_read_only_with_headline_map_and_open_alerts(scenario_url, alert_ids, monkeypatch):
    at = wall(app(scenario_url, monkeypatch, "viewer"))
    assert not at.exception, at.exception
    assert not at.sidebar.children, "no sidebar on the wall"
    assert not at.button and not at.radio and not at.selectbox and not at.text_input
    labels = [m.label for m in at.metric]
    assert "Trạm BTS hoạt động (trên 1.723)" in labels
    assert any(m.label == "Cảnh báo đang mở" and m.value == str(len(alert_ids)) for m in at.metric)
    assert at.get("deck_gl_json_chart"), "the live map"
    table = html(at)
    assert "BTS-VTL-0001" in table and "mất kết nối (vi)" in table  # the fixture's alerts
    assert "nghiêm trọng" in table  # severities in words, most urgent first
    assert table.index("540") < table.index("BTS-VTL-0001")
    assert f"Cảnh báo đang mở ({len(alert_ids)})" in [s.value for s in at.subheader]


def test_wall_language_from_its_address(scenario_url, alert_ids, monkeypatch):
    """A wall PC pins its language in the bookmark; the numbers follow it."""
    at = wall(app(scenario_url, monkeypatch, "viewer"), lang="en")
    assert not at.exception, at.exception
    assert "BTS online (of 1,723)" in [m.label for m in at.metric]
    table = html(at)
    assert "is down (en)" in table and "critical" in table
    assert f"Open alerts ({len(alert_ids)})" in [s.value for s in at.subheader]


def test_wall_asks_for_a_login_first(scenario_url, monkeypatch):
    at = wall(app(scenario_url, monkeypatch, None))
    assert not at.exception, at.exception
    assert not at.metric and at.text_input(key="login_username")
