"""msgspec schemas derived from the metric declarations (never written by hand).

msgspec was chosen over pydantic after measuring both on the same payloads
(``bench/codec.py``): it validates types and ranges in C while decoding.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from devices.kinds import DeviceState, Kind
from devices.metrics import (
    MAX_SECTORS,
    META,
    META_COMMON,
    READINGS,
    SECTOR,
    SECTOR_OPTIONAL,
    MetricSpec,
    MetricType,
)

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def field_type(spec: MetricSpec) -> Any:
    bounds: dict[str, Any] = {}
    if spec.min is not None:
        bounds["ge"] = spec.min
    if spec.max is not None:
        bounds["le"] = spec.max
    match spec.type:
        case MetricType.FLOAT:
            return Annotated[float, msgspec.Meta(**bounds)]
        case MetricType.INT:
            return Annotated[int, msgspec.Meta(**bounds)]
        case MetricType.BOOL:
            return bool
        case MetricType.TEXT:
            if spec.choices:
                return Literal[spec.choices]
            return Annotated[str, msgspec.Meta(max_length=256)]
        case MetricType.BOOL_LIST:
            return Annotated[list[bool], msgspec.Meta(max_length=spec.max_items)]
        case MetricType.INT_LIST:
            return Annotated[list[int], msgspec.Meta(max_length=spec.max_items)]
    raise AssertionError(spec.type)


def _optional_fields(specs: tuple[MetricSpec, ...]) -> list[tuple[str, Any, Any]]:
    return [(s.name, field_type(s) | None, None) for s in specs]


def _reading_struct(kind: Kind) -> type[msgspec.Struct]:
    # A device sends the metrics it has; each one present is type- and range-checked.
    fields: list[Any] = [("device_id", DeviceId), ("ts", AwareDatetime), ("seq", Seq)]
    fields += _optional_fields(READINGS[kind])
    return msgspec.defstruct(f"{kind.value.title()}Reading", fields, kw_only=True)


Sector = msgspec.defstruct(
    "Sector",
    [*((s.name, field_type(s)) for s in SECTOR), *_optional_fields(SECTOR_OPTIONAL)],
    kw_only=True,
)


def _meta_struct(kind: Kind) -> type[msgspec.Struct]:
    fields: list[Any] = [
        ("device_id", DeviceId),
        ("ts", AwareDatetime | None, None),
        ("seq", Seq | None, None),
        ("lat", field_type(META_COMMON[1])),
        ("lon", field_type(META_COMMON[2])),
    ]
    fields += _optional_fields(tuple(s for s in META_COMMON if s.name not in ("lat", "lon")))
    fields += _optional_fields(META[kind])
    if kind is Kind.BTS:
        # Absent, not empty, when a birth leaves them out: the registry keeps what it has
        # (store.registry merges a birth over the registered record).
        sectors = Annotated[list[Sector], msgspec.Meta(min_length=1, max_length=MAX_SECTORS)]  # type: ignore[valid-type]
        fields.append(("sectors", sectors | None, None))
    return msgspec.defstruct(f"{kind.value.title()}Meta", fields, kw_only=True)


class StatusPayload(msgspec.Struct, kw_only=True):
    """A status with its own time: a replayed or late one cannot override a newer state. A bare
    ``online``/``offline`` (older devices, most wills) is accepted too (devices.codec)."""

    device_id: DeviceId
    state: DeviceState
    ts: AwareDatetime | None = None
    seq: Seq | None = None
    reason: Annotated[str, msgspec.Meta(max_length=64)] | None = None


READING_TYPES: dict[Kind, type[msgspec.Struct]] = {k: _reading_struct(k) for k in Kind}
META_TYPES: dict[Kind, type[msgspec.Struct]] = {k: _meta_struct(k) for k in Kind}
