"""Every label in the chosen language, and a language choice that stays (issue 17, part 7):
the map page switched to English by its radio, and the language kept through a run that does
not draw the radio (the wall screen), with Streamlit's AppTest against the scenario database."""

from __future__ import annotations

import re
from typing import Any

from streamlit.testing.v1 import AppTest

from dashboard.i18n import num, pct, when
from tests.test_dashboard import app

# Letters only Vietnamese uses (tone marks, đ, ơ, ư): none may show in an English label.
VIETNAMESE = re.compile(
    "[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", re.IGNORECASE
)


def shown(widget: Any, before: list[str]) -> list[str]:
    """The labels a choice widget's chips or box show: what the server sent, or, when it
    sent no value, what the browser kept from the run before (``before``)."""
    proto = widget.proto
    if not proto.set_value:
        return before
    if hasattr(proto, "raw_values"):
        return list(proto.raw_values)
    return [proto.raw_value]


def labels(at: AppTest, kept: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every label of the page's widgets and metrics, by where it shows."""
    found: dict[str, list[str]] = {"metrics": [m.label for m in at.metric]}
    for kind in ("radio", "multiselect", "selectbox", "toggle"):
        for widget in getattr(at, kind):
            key = widget.key or widget.label
            found[f"{kind} {key} label"] = [widget.label]
            if kind != "toggle":
                found[f"{kind} {key} options"] = list(widget.options)
            if kind in ("multiselect", "selectbox"):
                found[f"{kind} {key} shown"] = shown(widget, kept.get(f"{kind} {key} shown", []))
    return found


def test_map_page_in_english_shows_no_vietnamese_label(scenario_url, monkeypatch):
    """Switched by its radio, as a user does: Streamlit holds a choice by its label, so the
    selections made in Vietnamese must come back drawn in English, not dropped or left as
    "Trạm BTS" / "tắt"."""
    at = app(scenario_url, monkeypatch, "viewer", lang="vi").run()
    assert not at.exception, at.exception
    before = labels(at, {})
    assert "Trạm BTS" in before["multiselect map_kinds shown"]  # the test sees Vietnamese
    at.radio(key="lang").set_value("en").run()
    assert not at.exception, at.exception
    after = labels(at, before)
    # The radio offers "Tiếng Việt" by its own name in either language.
    after.pop("radio lang options")
    vietnamese = {
        where: words for where, words in after.items() if VIETNAMESE.search(" ".join(words))
    }
    assert not vietnamese, vietnamese
    # The selections themselves survive the switch (Streamlit resets what it cannot decode).
    assert at.multiselect(key="map_kinds").value == ["bts", "camera", "broadband"]
    assert after["multiselect map_kinds shown"] == ["BTS", "Cameras", "Broadband nodes (OLT)"]
    assert after["selectbox map_coverage shown"] == ["off"]


def test_a_choice_made_in_one_language_is_kept_in_the_other(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="vi").run()
    at.multiselect(key="map_kinds").unselect("camera")
    at.selectbox(key="map_coverage").set_value("viettel")
    at.run()
    at.radio(key="lang").set_value("en").run()
    assert not at.exception, at.exception
    assert at.multiselect(key="map_kinds").value == ["bts", "broadband"]
    assert list(at.multiselect(key="map_kinds").proto.raw_values) == [
        "BTS",
        "Broadband nodes (OLT)",
    ]
    assert at.selectbox(key="map_coverage").value == "viettel"


def test_language_outlives_a_run_without_the_radio(scenario_url, monkeypatch):
    """The wall screen draws no sidebar and so no radio: Streamlit drops the radio's state
    after such a run. The language chosen before must hold on the wall and after it."""
    at = app(scenario_url, monkeypatch, "viewer", lang="vi").run()
    at.radio(key="lang").set_value("en").run()
    at.query_params["wall"] = "1"
    at.run()
    assert not at.exception, at.exception
    assert not at.radio, "the wall has no language radio"
    at.run()  # a second wall run: the radio's widget state is gone by now
    assert any(m.label == "Open alerts" for m in at.metric), [m.label for m in at.metric]
    del at.query_params["wall"]
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="lang").value == "en"
    assert any(m.label.startswith("BTS online") for m in at.metric)


def test_numbers_and_dates_follow_the_language(monkeypatch):
    """babel's separators and date order per language (what num/pct/when give every page)."""
    from datetime import UTC, datetime

    import streamlit as st

    moment = datetime(2026, 3, 1, 2, 5, tzinfo=UTC)  # 09:05 in the province (UTC+7)
    monkeypatch.setattr(st, "session_state", {"lang": "vi"})
    assert (num(1234567), num(1234.5, 1), pct(0.564)) == ("1.234.567", "1.234,5", "56,4%")
    assert when(moment) == "09:05 1/3/26"  # Vietnamese: time first, day before month
    monkeypatch.setattr(st, "session_state", {"lang": "en"})
    assert (num(1234567), num(1234.5, 1), pct(0.564)) == ("1,234,567", "1,234.5", "56.4%")
    assert when(moment) == "01/03/2026, 09:05"


def shown_table(element: Any) -> Any:
    """What the browser shows of a dataframe: the Styler's display values Streamlit sends."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    return convert_arrow_bytes_to_pandas_df(element.proto.arrow_data.styler.display_values)


def test_report_tables_group_thousands_in_each_language_and_stay_numeric(scenario_url, monkeypatch):
    for language, column, sample in (("vi", "Dân số", "."), ("en", "Population", ",")):
        at = app(scenario_url, monkeypatch, "viewer", lang=language)
        at.switch_page("../dashboard/pages/coverage.py").run()
        assert not at.exception, at.exception
        by_district = at.dataframe[0]
        data = by_district.value
        assert data[column].dtype.kind == "i", "numbers stay numbers: the table sorts by value"
        position = list(data.columns).index(column)
        shown = list(shown_table(by_district).iloc[:, position])
        biggest = int(data[column].max())
        assert biggest >= 1000
        assert num_in(language, biggest) in shown, shown
        assert all(sample in s for s, v in zip(shown, data[column], strict=True) if v >= 1000)


def num_in(language: str, value: int) -> str:
    return f"{value:,}".replace(",", "." if language == "vi" else ",")


def test_alert_filters_follow_the_language_and_keep_their_choice(scenario_url, monkeypatch):
    at = app(scenario_url, monkeypatch, "viewer", lang="vi")
    at.switch_page("../dashboard/pages/alerts.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="alerts_severities").select("critical").run()
    at.radio(key="lang").set_value("en").run()
    assert not at.exception, at.exception
    states, severities = (
        at.multiselect(key="alerts_states"),
        at.multiselect(key="alerts_severities"),
    )
    assert states.value == ["open", "acknowledged"] and severities.value == ["critical"]
    assert list(states.proto.raw_values) == ["open", "acknowledged"]
    assert list(severities.proto.raw_values) == ["critical"]


def _fragment_guard_script() -> None:
    import streamlit as st

    from dashboard.i18n import follow_language, mark_drawn

    st.session_state["runs"] = st.session_state.get("runs", 0) + 1
    follow_language()  # as the map's and the wall's fragments begin
    mark_drawn()  # as a full run's picker does


def test_a_language_switch_seen_by_a_fragment_redraws_the_whole_page():
    """A switch that reached the session in a fragment-only run: the page outside the fragment
    was drawn in the old language, so the fragment asks for a full rerun (once)."""
    at = AppTest.from_function(_fragment_guard_script)
    at.session_state["lang_drawn"] = "vi"
    at.session_state["lang_chosen"] = "en"
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["runs"] == 2, "one rerun of the whole page"
    assert at.session_state["lang_drawn"] == "en"
    at.run()
    assert at.session_state["runs"] == 3, "and no more once the page is in that language"
