"""The fault suite's table of figures, printed at the end of every run that includes it."""

from __future__ import annotations

import pytest

from tests.faults.harness import FIGURES, HEADER


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault suite: messages sent / stored / rejected / duplicated")
        terminalreporter.write_line(HEADER)
        for figures in FIGURES:
            terminalreporter.write_line(figures.line())
