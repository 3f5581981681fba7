"""Which provinces a reader may see: the one home of a dashboard user's scope in SQL.

Every row the dashboard shows has a district (devices, places, coverage, alerts, incidents),
and GSO district codes are national, so a province is ``districts.province_code`` one join
away. Each store read the dashboard calls takes a ``scope`` and filters with :func:`clause`;
it is a required argument, so a page cannot forget it (mypy refuses the call), and a national
scope costs the database one constant test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    """``provinces``: GSO codes; None is the national role, which sees every province."""

    provinces: frozenset[int] | None

    @classmethod
    def of(cls, provinces: Iterable[int] | None) -> Scope:
        if provinces is None:
            return NATIONAL
        codes = frozenset(int(p) for p in provinces)
        if not codes:
            raise ValueError("a scope names at least one province (None: the whole country)")
        return cls(codes)

    @property
    def national(self) -> bool:
        return self.provinces is None

    @property
    def param(self) -> list[int] | None:
        """The value :func:`clause`'s placeholder takes."""
        return None if self.provinces is None else sorted(self.provinces)

    def allows(self, province: int | None) -> bool:
        return self.provinces is None or province in self.provinces


NATIONAL = Scope(None)


def clause(district_column: str, placeholder: str = "%s") -> str:
    """A SQL condition: ``district_column`` lies in the scope bound to ``placeholder`` (give
    it ``scope.param``; a named query passes ``%(scope)s``). The placeholder appears twice in
    the text, so a positional query binds ``scope.param`` twice: use :func:`params`."""
    return (
        f"({placeholder}::integer[] IS NULL OR {district_column} IN"
        f" (SELECT code FROM districts WHERE province_code = ANY ({placeholder}::integer[])))"
    )


def params(scope: Scope) -> tuple[list[int] | None, list[int] | None]:
    """The two positional values of one :func:`clause`."""
    return scope.param, scope.param
