"""A source the program running the session pushes batches into (engine.Desk): each
batch is judged by the same rules as a JSONL line, and refused whole, with an error
naming every bad symbol and value, before anything reaches the Engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from engine.errors import ExecdeskError
from engine.signals.base import _Closed, _SourceBase
from engine.signals.decoding import _Entry, _iso, _parse_ts, _shown
from engine.signals.types import DroppedSignal, DropReason, MarketView, SignalBatch, SignalKind

__all__ = ["PushSource", "SignalInputError"]


class SignalInputError(ExecdeskError, ValueError):
    """A pushed batch that was refused whole: `problems` holds one DroppedSignal per
    bad entry (or one for a bad timestamp); nothing of the batch was acted on."""

    def __init__(self, problems: tuple[DroppedSignal, ...]):
        self.problems = problems
        lines = "; ".join(f"{p.reason}: {p.detail}" for p in problems)
        super().__init__(f"batch refused, no order sent: {lines}")


class PushSource(_SourceBase):
    """Batches handed in by `push()` (from the Engine's own loop), yielded in order to
    the session's signal pump — the same path as every other source."""

    name = "api"

    def __init__(self, *, known_symbols: frozenset[str], max_age: float, name: str = "api"):
        super().__init__(known_symbols, max_age)
        self.name = name  # the batches' origin: "api" (a Desk in process) or "socket" (attached Desks)
        self._queue: asyncio.Queue[SignalBatch] = asyncio.Queue()

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        while True:
            try:
                batch = await self._unless_closed(self._queue.get())
            except _Closed:
                break
            yield batch
        while not self._queue.empty():  # what was pushed before aclose() still goes in
            yield self._queue.get_nowait()

    def judge(
        self,
        market: MarketView,
        ts: datetime | str,
        values: Mapping[Any, Any],
        kind: SignalKind,
        after: datetime | None = None,
    ) -> SignalBatch:
        """The batch as the Engine would take it; raises SignalInputError (and moves no
        "last batch" mark) when any entry or the timestamp is refused. `after`: the last
        bar the Engine took from any source (the session's own source next to this one):
        a batch not after it is OUT_OF_ORDER or DUPLICATE_BATCH as after one of ours."""
        when = _timestamp(ts)
        where = f"{self.name}@{_iso(when)}"
        if not isinstance(values, Mapping):
            problem = DroppedSignal(
                DropReason.BAD_RETURN.value, f"{where}: expected a mapping {{symbol: value}}, found {_shown(values)}"
            )
            raise SignalInputError((problem,))
        entries = [_Entry(symbol, value, None) for symbol, value in values.items()]
        last = self._judge.last_ts
        if after is not None and (last is None or after > last):
            self._judge.last_ts = after
        batch = self._judge.judge(market, when, entries, origin=self.name, where=where, kind=kind)
        if batch.rejected or batch.dropped:
            self._judge.last_ts = last
            raise SignalInputError(batch.dropped)
        return batch

    def push(
        self,
        market: MarketView,
        ts: datetime | str,
        values: Mapping[Any, Any],
        kind: SignalKind,
        after: datetime | None = None,
    ) -> SignalBatch:
        """Judge and queue one batch (call on the Engine's loop). Raises SignalInputError."""
        if self.closed:
            raise SignalInputError(
                (DroppedSignal(DropReason.READ_ERROR.value, f"{self.name}: the session is closing"),)
            )
        batch = self.judge(market, ts, values, kind, after)
        self._queue.put_nowait(batch)
        return batch


def _timestamp(ts: datetime | str) -> datetime:
    """A tz-aware datetime (or an ISO 8601 string with a timezone) -> UTC."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise SignalInputError(
                (DroppedSignal(DropReason.BAD_TIMESTAMP.value, f"ts {ts.isoformat()} has no timezone (use UTC)"),)
            )
        raw = ts.isoformat()
    else:
        raw = ts
    parsed, why = _parse_ts(raw)
    if parsed is None:
        raise SignalInputError((DroppedSignal(DropReason.BAD_TIMESTAMP.value, why),))
    return parsed
