"""What every browser test shares: a dashboard on the scenario database, and a skip where no
chromium is installed (.ci/run installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.browser import CHROMIUM, running_dashboard


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.access(CHROMIUM, os.X_OK):
        return
    skip = pytest.mark.skip(reason=f"no chromium at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(skip)


@pytest.fixture
def dashboard_url(scenario_url: str) -> Iterator[str]:
    with running_dashboard(scenario_url) as url:
        yield url
