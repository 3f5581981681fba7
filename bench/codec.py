"""Decode rate of the device codec against json.loads and a pydantic model of the same schema.

    python -m bench.codec [--quick]

Prints, as its last line, a JSON object: decodes per second for each, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import pydantic

from devices import Channel, Codec, Kind, MetricType, Topics, encode
from devices.metrics import READINGS
from devices.schemas import READING_TYPES

NOW = datetime.now(UTC)


def payload() -> bytes:
    """A typical ~200-byte BTS telemetry reading."""
    return encode(
        {
            "device_id": "BTS-VTL-0001",
            "ts": NOW.isoformat(),
            "seq": 123456,
            "power_source": "mains",
            "battery_pct": 100.0,
            "cabinet_temp_c": 31.5,
            "sectors_up": [True, True, True],
            "active_users": 412,
            "prb_util_pct": 47.2,
            "backhaul_up": True,
        }
    )


def pydantic_model() -> type[pydantic.BaseModel]:
    fields: dict[str, Any] = {
        "device_id": (str, ...),
        "ts": (pydantic.AwareDatetime, ...),
        "seq": (Annotated[int, pydantic.Field(ge=0)], ...),
    }
    for spec in READINGS[Kind.BTS]:
        bounds = pydantic.Field(ge=spec.min, le=spec.max)
        kind: Any = {
            MetricType.FLOAT: Annotated[float, bounds],
            MetricType.INT: Annotated[int, bounds],
            MetricType.BOOL: bool,
            MetricType.TEXT: Literal[spec.choices] if spec.choices else str,
            MetricType.BOOL_LIST: list[bool],
            MetricType.INT_LIST: list[int],
        }[spec.type]
        fields[spec.name] = (kind | None, None)
    return pydantic.create_model("BtsReading", **fields)


def rate(fn: Callable[[], object], n: int) -> float:
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run (seconds)")
    n = 20_000 if parser.parse_args().quick else 200_000
    body = payload()
    topic = Topics().device(Kind.BTS, "BTS-VTL-0001", Channel.TELEMETRY)
    codec = Codec()
    model = pydantic_model()
    decoder = msgspec.json.Decoder(READING_TYPES[Kind.BTS])
    results = {
        "json_loads_per_s": rate(lambda: json.loads(body), n),
        "msgspec_decode_per_s": rate(lambda: decoder.decode(body), n),
        "msgspec_codec_per_s": rate(lambda: codec.decode(topic, body, NOW), n),
        "pydantic_per_s": rate(lambda: model.model_validate_json(body), n),
    }
    results["codec_vs_json_loads"] = results["msgspec_codec_per_s"] / results["json_loads_per_s"]
    results["msgspec_vs_pydantic"] = results["msgspec_decode_per_s"] / results["pydantic_per_s"]
    results["payload_bytes"] = len(body)
    print(json.dumps({k: round(v, 2) for k, v in results.items()}))


if __name__ == "__main__":
    main()
