"""What signal sources see of the market (engine.signals.MarketView): the
tradable symbols, minute bars, quotes, and the clock of the next bar's close."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from engine.signals import Bar, Quote

if TYPE_CHECKING:
    from engine.core.engine import Engine

_QUIET_STREAM_GRACE = timedelta(seconds=2)


class EngineMarketView:
    """What signal sources see of the market (engine.signals.MarketView)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._last: datetime | None = None  # the close returned last

    def now(self) -> datetime:
        return self._engine.clock.now()

    def symbols(self) -> frozenset[str]:
        e = self._engine
        return frozenset(s for s in e.symbols if e.asset_flags.get(s) is None or e.asset_flags[s].tradable)

    def bars(self, symbol: str, n: int) -> Sequence[Bar]:
        dq = self._engine.bars.get(symbol)
        if not dq:
            return []
        return [
            Bar(ts=b.ts, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume) for b in list(dq)[-n:]
        ]

    def quotes(self) -> Mapping[str, Quote]:
        """The usable quotes (docs/risk.md, "Prices"): a one-sided, zero, crossed or
        implausibly wide quote is not shown to signal models as a price."""
        out = {}
        for sym, b in self._engine.portfolio.books.items():
            if b.quote_ok and b.quote_ts is not None and b.bid is not None and b.ask is not None:
                out[sym] = Quote(bid=b.bid, ask=b.ask, ts=b.quote_ts)
        return out

    async def next_bar(self) -> datetime:
        """The close of the next bar (session.bar_interval) on the venue clock. It
        returns once the venue's minute bars up to that close have arrived on the
        data stream or, when the stream is quiet, once a running venue clock has
        passed it. The first call returns at once with the last close when the clock
        runs and bar history is there, so signal models trade from the first seconds
        of a session instead of after its first bar."""
        e = self._engine
        interval = timedelta(seconds=e.settings.session.bar_interval)
        now = e.clock.now()
        if self._last is None and e.clock.speed > 0 and any(e.bars.values()):
            self._last = _floor(now, interval)
            return self._last
        ref = now if self._last is None else max(now, self._last)
        boundary = _floor(ref, interval) + interval
        loop = asyncio.get_running_loop()
        while e.latest_bar_close is None or e.latest_bar_close < boundary:
            if e.clock.speed > 0 and e.clock.now() >= boundary + _QUIET_STREAM_GRACE:
                break  # the stream is quiet: the venue clock says the bar closed
            fut = loop.create_future()
            e.bar_waiters.append(fut)
            remaining = max((boundary + _QUIET_STREAM_GRACE - e.clock.now()).total_seconds(), 0.0)
            try:
                await asyncio.wait_for(fut, timeout=e.clock.wall_seconds(remaining) + 0.5)
            except TimeoutError:
                pass
        await asyncio.sleep(0.05)  # the rest of that minute's bars arrive together
        self._last = boundary
        return boundary


def _floor(ts: datetime, interval: timedelta) -> datetime:
    step = interval.total_seconds()
    return datetime.fromtimestamp((ts.timestamp() // step) * step, tz=UTC)
