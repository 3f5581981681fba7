"""Vietnam's one clock: the zone operators read times in, and a time typed without an offset.

Vietnam keeps one time zone (Indochina Time, UTC+7, no daylight saving), so a deployment in
any province shows and reads times in it; stored times stay UTC.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
EXAMPLE = "2026-11-30T21:00+07:00"


def parse_local(text: str) -> datetime:
    """An ISO 8601 date or time (``2026-11-30``, ``2026-11-30T21:00``, ``…+07:00``); one
    without an offset is local time. ValueError names what was given and what is expected."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time like 2026-11-30, 2026-11-30T21:00 or {EXAMPLE}"
            f" (without an offset: {LOCAL_ZONE.key})"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_ZONE)


def local(moment: datetime) -> datetime:
    return moment.astimezone(LOCAL_ZONE)
