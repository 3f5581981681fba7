"""All 63 provinces (pre-2025 divisions): the shipped ``seeds/data/vietnam_divisions.json`` and
finding a province by whatever name a user types.

Names, GSO codes and types: vietnam-provinces 0.6.0; positions and boxes: vietnamadminunits
1.0.4 (geocoded); district seats: GeoNames. See ``seeds/data/README.md``.
"""

from __future__ import annotations

import difflib
import functools
import json
import unicodedata
from pathlib import Path
from typing import Any

NATIONAL = Path(__file__).parent / "data" / "vietnam_divisions.json"
BINH_DINH = 52  # GSO code of the province whose scenario is the published one


class UnknownProvince(ValueError):
    """No province by that name or code (the message lists close matches)."""


def fold(name: str) -> str:
    """ASCII, lower case, no division prefix: "Thị trấn Đồi Ngô" → "doi ngo"."""
    plain = unicodedata.normalize("NFKD", name.replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower().strip()
    text = text.replace("_", " ")
    for prefix in ("thi tran ", "thanh pho ", "thi xa ", "phuong ", "huyen ", "quan ", "xa "):
        text = text.removeprefix(prefix)
    return " ".join(text.split())


@functools.cache
def national() -> dict[str, Any]:
    """The whole extract, read once per process."""
    doc: dict[str, Any] = json.loads(NATIONAL.read_text(encoding="utf-8"))
    return doc


@functools.cache
def _by_key() -> dict[str, int]:
    keys: dict[str, int] = {}
    for p in national()["provinces"]:
        for name in (p["name"], p["codename"]):
            keys[fold(name).removeprefix("tinh ")] = p["code"]
    return keys


def province_code(query: str | int) -> int:
    """GSO code of a province given as a code (24, "24"), a name ("Bắc Giang", "Tỉnh Bắc
    Giang"), its ASCII spelling ("Bac Giang") or codename ("bac_giang", "tinh_bac_giang")."""
    codes = {p["code"] for p in national()["provinces"]}
    text = str(query).strip()
    if text.isdigit() and int(text) in codes:
        return int(text)
    key = fold(text).removeprefix("tinh ")  # "Tỉnh Bắc Giang", "tinh_bac_giang"
    if key in _by_key():
        return _by_key()[key]
    names = {fold(p["name"]): p["name"] for p in national()["provinces"]}
    close = difflib.get_close_matches(key, list(names), n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(names[c] for c in close)}?" if close else ""
    raise UnknownProvince(f"no province {str(query)!r} among the 63 (GSO codes 1–96){hint}")


def province_codes(spec: str | int) -> list[int]:
    """The provinces of one deployment: one province as :func:`province_code` reads it, or
    several separated by commas ("Bắc Giang, Thái Nguyên, 52"), in the order given, once each."""
    parts = [p for p in str(spec).split(",") if p.strip()]
    if not parts:
        raise UnknownProvince("no province named (IOC_PROVINCE: a name or GSO code, or several)")
    return list(dict.fromkeys(province_code(p) for p in parts))


def province(code: int) -> dict[str, Any]:
    """One province's record, with its districts and communes (the extract's records)."""
    doc = national()
    record = next(p for p in doc["provinces"] if p["code"] == code)
    districts = [d for d in doc["districts"] if d["province_code"] == code]
    mine = {d["code"] for d in districts}
    communes = [c for c in doc["communes"] if c["district_code"] in mine]
    return {**record, "districts": districts, "communes": communes}


def all_codes() -> list[int]:
    return [int(p["code"]) for p in national()["provinces"]]
