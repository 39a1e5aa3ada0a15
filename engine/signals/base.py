"""What every signal source shares: its judge (validation) and aclose(), which wakes
any wait and lets the iteration finish what it already has."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from engine.signals.validation import _Judge

T = TypeVar("T")


class _Closed(Exception):
    pass


class _SourceBase:
    """aclose() for every source: wakes any wait, lets the iteration finish what it
    already has (a partial last line becomes TRUNCATED_LINE), then end."""

    def __init__(self, known_symbols: frozenset[str], max_age: float):
        self._judge = _Judge(frozenset(known_symbols), float(max_age))
        self._closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def aclose(self) -> None:
        self._closing.set()

    async def _unless_closed(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, or raise _Closed as soon as aclose() is called."""
        work = asyncio.ensure_future(awaitable)
        if self._closing.is_set():
            work.cancel()
            raise _Closed
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({work, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not work.done():
                work.cancel()
        if work.cancelled() or not work.done():
            raise _Closed
        return work.result()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on aclose()."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except TimeoutError:
            pass
