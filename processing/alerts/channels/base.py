"""What every channel shares: the failure a dispatcher retries (or gives up), and one HTTP
exchange under a single deadline whose answer is judged the same way for every HTTP channel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

# A 4xx says the request itself is refused (gone, not found, malformed): the same request
# can never succeed, except for these two, which ask the sender to come back later.
RETRIED_4XX = frozenset({408, 429})
# A server asking for more than this is not waited for longer (the row's attempts still count).
RETRY_AFTER_MAX_S = 3600.0


class DeliveryError(Exception):
    """This attempt failed; the row is retried later (not before ``retry_after_s`` when the
    receiver said so), or is dead when ``permanent``."""

    def __init__(
        self, reason: str, *, permanent: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


class Channel(Protocol):
    name: str
    concurrency: int

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(RETRY_AFTER_MAX_S, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = (when - (now or datetime.now(UTC))).total_seconds()
    return min(RETRY_AFTER_MAX_S, max(0.0, wait))


def failure(answer: httpx.Response, reason: str | None = None) -> DeliveryError:
    """The error for an answer that is not 2xx: permanent for a 4xx other than 408/429, with
    the receiver's ``Retry-After`` on 429 and 503."""
    code = answer.status_code
    after = retry_after_s(answer.headers.get("Retry-After")) if code in (429, 503) else None
    return DeliveryError(
        reason or f"HTTP {code}",
        permanent=400 <= code < 500 and code not in RETRIED_4XX,
        retry_after_s=after,
    )


async def exchange(
    http: httpx.AsyncClient, timeout_s: float, method: str, url: str, **request: Any
) -> httpx.Response:
    """One request and its whole answer within ``timeout_s``: httpx's timeout bounds each
    phase (connect, each read), so a server that drips its answer a byte at a time never trips
    it; this bounds the whole exchange."""
    try:
        async with asyncio.timeout(timeout_s):
            return await http.request(method, url, **request)
    except TimeoutError as err:
        raise DeliveryError(f"no whole answer within {timeout_s:g} s") from err
    except httpx.HTTPError as err:
        raise DeliveryError(f"{type(err).__name__}: {err}") from err
