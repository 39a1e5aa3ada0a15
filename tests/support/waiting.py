"""Waiting in tests: poll a predicate until it holds, with a generous deadline (the
machine is shared and slow at times), and fail saying what was awaited. No test
asserts on how long anything took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: seconds; generous on purpose
DEFAULT_TIMEOUT = 45.0


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT, what: str = "", every: float = 0.05
) -> Any:
    """Poll until predicate() is truthy and return that value; AssertionError after
    timeout seconds, naming what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what or predicate}")
        time.sleep(every)


async def wait_for_async(
    predicate: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "",
    every: float = 0.02,
    pause: Callable[[float], Awaitable[Any]] | None = None,
) -> Any:
    """wait_for on an event loop: the loop runs between polls (through `pause`,
    asyncio.sleep by default; a Textual pilot's pause for console tests)."""
    deadline = time.monotonic() + timeout
    sleep = pause or asyncio.sleep
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what or predicate}")
        await sleep(every)
