"""The one way a test or a benchmark waits: poll a condition until it holds, with a deadline.

Tests never sleep a fixed time; they wait on what they expect to see, and a condition that
never comes fails with what was seen instead of hanging.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 60.0,
    *,
    every_s: float = 0.05,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll ``predicate`` (a plain function or a coroutine function) until it holds; fail
    after ``timeout_s``, saying what ``state`` returns then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await _holds(predicate):
        if loop.time() > deadline:
            seen = f"; state: {state()}" if state is not None else ""
            raise AssertionError(f"condition not met within {timeout_s}s{seen}")
        await asyncio.sleep(every_s)


async def _holds(predicate: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = predicate()
    return bool(await result) if inspect.isawaitable(result) else bool(result)
