"""Binary COPY of one-dimensional ``bool[]`` and ``int4[]`` columns, without psycopg's generic
array dumper.

psycopg dumps arrays in Python, element by element, whatever their shape: on the ingest path
that was a third of the writer's time (``sectors_up`` is in every BTS reading). Our list
columns are flat and short, and a tower's ``sectors_up`` takes a handful of values, so a
``bool[]`` is built once per distinct value and reused.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

BOOL_OID, INT4_OID = 16, 23
BOOL_ARRAY_OID, INT4_ARRAY_OID = 1000, 1007
_HEAD = struct.Struct("!iiiii")  # ndim, has-null flag, element oid, length, lower bound
_NULL = b"\xff\xff\xff\xff"
_EMPTY = {oid: struct.pack("!iii", 0, 0, oid) for oid in (BOOL_OID, INT4_OID)}


@lru_cache(maxsize=4096)
def _bool_array(values: tuple[bool | None, ...]) -> bytes:
    if not values:
        return _EMPTY[BOOL_OID]
    parts = [_HEAD.pack(1, None in values, BOOL_OID, len(values), 1)]
    parts += [_NULL if v is None else b"\x00\x00\x00\x01\x01" if v else b"\x00\x00\x00\x01\x00"
              for v in values]  # fmt: skip
    return b"".join(parts)


def _int4_array(values: list[int | None]) -> bytes:
    if not values:
        return _EMPTY[INT4_OID]
    if None in values:
        body = b"".join(_NULL if v is None else struct.pack("!ii", 4, v) for v in values)
    else:
        n = len(values)
        body = struct.pack(f"!{2 * n}i", *[x for v in values for x in (4, v)])
    return _HEAD.pack(1, None in values, INT4_OID, len(values), 1) + body


class BoolArrayBinaryDumper(Dumper):
    format = Format.BINARY
    oid = BOOL_ARRAY_OID

    def dump(self, obj: Any) -> bytes:
        return _bool_array(tuple(obj))


class Int4ArrayBinaryDumper(Dumper):
    format = Format.BINARY
    oid = INT4_ARRAY_OID

    def dump(self, obj: Any) -> bytes:
        return _int4_array(obj)


def register_array_dumpers(context: AdaptContext) -> None:
    """Use these dumpers where a COPY of this connection (or cursor) names ``bool[]``/``int4[]``."""
    for dumper in (BoolArrayBinaryDumper, Int4ArrayBinaryDumper):
        context.adapters.register_dumper(None, dumper)
