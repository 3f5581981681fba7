"""What an alert says about its subject: names of places and devices, and summary rendering."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from babel.numbers import format_decimal

from store.alert_engine import SubjectDirectory


@dataclass(slots=True)
class Directory:
    """Names for subjects, loaded from the registry and the scenario's places."""

    data: SubjectDirectory
    bts_per_district: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.bts_per_district = Counter(
            d.district_code
            for d in self.data.devices.values()
            if d.kind == "bts" and d.district_code is not None
        )

    def knows(self, device_id: str) -> bool:
        return device_id in self.data.devices

    def district_of(self, subject_kind: str, subject: str) -> int | None:
        if subject_kind == "district":
            return int(subject)
        if subject_kind == "village":
            village = self.data.villages.get(subject)
            return village.district_code if village else None
        device = self.data.devices.get(subject)
        return device.district_code if device else None

    def device(self, device_id: str) -> dict[str, Any]:
        d = self.data.devices.get(device_id)
        if d is None:
            return {"name": device_id}
        out: dict[str, Any] = {
            "device_id": device_id,
            "name": d.name or device_id,
            "operator": d.operator,
            **self._place(d.district_code, d.commune_code),
        }
        if d.kind == "broadband":
            communes = self.data.communes
            out["communes_served"] = [communes[c].name for c in d.communes_served if c in communes]
            out["communes_served_codes"] = list(d.communes_served)
            out["households_passed"] = d.households_passed
        return out

    def village(self, village_id: str) -> dict[str, Any]:
        v = self.data.villages.get(village_id)
        if v is None:
            return {"village": village_id, "village_id": village_id}
        return {
            "village_id": village_id,
            "village": v.name,
            "population": v.population,
            **self._place(v.district_code, v.commune_code),
        }

    def district(self, code: int) -> dict[str, Any]:
        return {**self._place(code, None), "total": self.bts_per_district.get(code, 0)}

    def _place(self, district_code: int | None, commune_code: int | None) -> dict[str, Any]:
        commune = self.data.communes.get(commune_code) if commune_code is not None else None
        return {
            "district_code": district_code,
            "district": self.data.districts.get(district_code, "?")
            if district_code is not None
            else "?",
            "commune_code": commune_code,
            "commune": commune.name if commune else "?",
        }


class _Formatter(string.Formatter):
    """Fills a summary in one language: a count or a population gets that language's
    thousands separator (2.218 người, 2,218 people), as the dashboard shows numbers."""

    def __init__(self, locale: str) -> None:
        super().__init__()
        self.locale = locale

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        value = kwargs.get(str(key))
        if value is None:
            return "?"
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value) or "-"
        return value

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and not format_spec:
            return str(format_decimal(value, locale=self.locale))
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


# The summaries' two languages and the locale their numbers are written in.
LOCALES = {"vi": "vi_VN", "en": "en_GB"}
_FORMATTERS = {language: _Formatter(locale) for language, locale in LOCALES.items()}


def number(value: int, language: str) -> str:
    """A count in a summary, with ``language``'s thousands separator."""
    return str(format_decimal(value, locale=LOCALES[language]))


def render(template: str, facts: Mapping[str, Any], language: str = "en") -> str:
    """The template filled from the facts in ``language`` (vi or en); a missing fact reads '?',
    a list reads 'a, b'."""
    return str(_FORMATTERS[language].vformat(template, (), facts))


def bts_extras(reading: Mapping[str, Any]) -> dict[str, Any]:
    """Facts derived from a BTS reading that its summary names (which sectors are down)."""
    up = reading.get("sectors_up")
    if up is None:
        return {}
    return {"sectors_down": [i + 1 for i, on in enumerate(up) if not on]}
