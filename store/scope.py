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


def province_clause(province_column: str, placeholder: str = "%s") -> str:
    """:func:`clause` for a row that names its province itself (a province, a map feature,
    a raster) rather than a district."""
    return (
        f"({placeholder}::integer[] IS NULL OR {province_column} = ANY ({placeholder}::integer[]))"
    )


def params(scope: Scope) -> tuple[list[int] | None, list[int] | None]:
    """The two positional values of one :func:`clause`."""
    return scope.param, scope.param


def _through(table: str, key: str, column: str, placeholder: str) -> str:
    # Guarded by the NULL test first, so a national read never searches ``table``; the
    # placeholder appears twice, as in :func:`clause`.
    return (
        f"({placeholder}::integer[] IS NULL OR {column} IN (SELECT {key} FROM {table}"
        " WHERE district_code IN (SELECT code FROM districts"
        f" WHERE province_code = ANY ({placeholder}::integer[]))))"
    )


def device_clause(device_column: str, placeholder: str = "%s") -> str:
    """:func:`clause` for a row that names a device (readings, status events, rejects) rather
    than a district: the device lies in the scope. An id the registry does not know (a
    reject's) is the national role's alone."""
    return _through("devices", "device_id", device_column, placeholder)


def village_clause(village_column: str, placeholder: str = "%s") -> str:
    """:func:`clause` for a row that names a village (coverage history and events)."""
    return _through("villages", "village_id", village_column, placeholder)
