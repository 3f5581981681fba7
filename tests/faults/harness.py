"""What every fault test reports: messages sent, readings stored, rejected, duplicated, lost.

The pass condition is the same for all: nothing lost, nothing duplicated. Figures are printed
as each test ends and again as one table at the end of the run (tests/faults/conftest.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import psycopg

from devices.kinds import Kind
from store.audit import reading_keys, reject_reasons

HEADER = (f"{'fault':<44} {'sent':>7} {'stored':>7} {'rejected':>8} {'cut':>5} "
          f"{'dup':>5} {'lost':>5}  note")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Figures:
    fault: str
    sent: int  # messages the publishers had acknowledged by the broker (or tried, for cut)
    stored: int  # distinct readings on disk
    rejected: int  # refused by the ingester, each a row in rejects with its reason
    duplicated: int  # readings on disk more than once
    lost: int  # published, accepted by the contract, and not on disk
    cut: int = 0  # refused by the broker before any subscriber saw them
    note: str = ""

    def line(self) -> str:
        return (f"{self.fault:<44} {self.sent:>7} {self.stored:>7} {self.rejected:>8} "
                f"{self.cut:>5} {self.duplicated:>5} {self.lost:>5}  {self.note}")  # fmt: skip


FIGURES: list[Figures] = []


def record(figures: Figures) -> Figures:
    FIGURES.append(figures)
    print(f"\n{HEADER}\n{figures.line()}")
    return figures


def audit(
    fault: str,
    database_url: str,
    published: set[tuple[str, int]],
    *,
    sent: int | None = None,
    expected_rejects: int = 0,
    cut: int = 0,
    note: str = "",
    kind: Kind = Kind.BTS,
) -> Figures:
    """Compare what is on disk with what was published, record and return the figures."""
    with psycopg.connect(database_url) as conn:
        keys = reading_keys(conn, kind)
        rejected = sum(reject_reasons(conn).values())
    counts = Counter(keys)
    stored = set(counts)
    figures = Figures(
        fault=fault,
        sent=len(published) + expected_rejects + cut if sent is None else sent,
        stored=len(stored),
        rejected=rejected,
        duplicated=sum(n - 1 for n in counts.values()),
        lost=len(published - stored),
        cut=cut,
        note=note,
    )
    return record(figures)
