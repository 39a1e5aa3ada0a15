"""A small stand-in for the Engine's MarketView, and helpers to drive signal sources
in tests. It is not the engine: a clock you set, a symbol set, bars you generate."""

from __future__ import annotations

import asyncio
import math
import random
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.signals import Bar, Quote, SignalBatch, SignalSource
from tests.support import ROOT as REPO

FIXTURES = REPO / "tests" / "fixtures" / "signals"
UNIVERSE = frozenset(tomllib.loads((REPO / "config" / "universe.toml").read_text())["symbols"])
NOW = datetime(2026, 11, 25, 14, 40, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class FakeMarket:
    """MarketView with a settable clock. `bar_times` are handed out by next_bar() one by
    one (the clock moves to each bar's close); when they run out next_bar() waits forever."""

    def __init__(
        self,
        *,
        now: datetime = NOW,
        tradable: frozenset[str] = UNIVERSE,
        series: Mapping[str, Sequence[Bar]] | None = None,
        bar_times: Sequence[datetime] = (),
    ):
        self.clock = now
        self.tradable = frozenset(tradable)
        self.series = dict(series or {})
        self.bar_times = list(bar_times)
        self.cursor = 0  # bar_times handed out so far
        self.last_bar: datetime | None = None  # bars up to this ts are visible (all when None)
        self.next_bar_calls = 0

    def now(self) -> datetime:
        return self.clock

    def symbols(self) -> frozenset[str]:
        return self.tradable

    def bars(self, symbol: str, n: int) -> Sequence[Bar]:
        visible = self.series.get(symbol, ())
        if self.last_bar is not None:
            visible = [b for b in visible if b.ts <= self.last_bar]
        return tuple(visible[-n:]) if n > 0 else ()

    def quotes(self) -> Mapping[str, Quote]:
        out = {}
        for s in sorted(self.tradable):
            bars = self.bars(s, 1)
            if bars:
                c = bars[-1].close
                out[s] = Quote(bid=c - Decimal("0.01"), ask=c + Decimal("0.01"), ts=bars[-1].ts)
        return out

    async def next_bar(self) -> datetime:
        self.next_bar_calls += 1
        if self.cursor >= len(self.bar_times):
            await asyncio.Event().wait()
        ts = self.bar_times[self.cursor]
        self.cursor += 1
        self.last_bar = ts
        self.clock = ts + timedelta(seconds=1)
        await asyncio.sleep(0)
        return ts


def random_walk(
    symbols: Sequence[str], n: int, *, seed: int = 7, start: datetime | None = None
) -> dict[str, tuple[Bar, ...]]:
    """Minute bars of a geometric random walk (25-45% annual volatility), one series per symbol."""
    rnd = random.Random(seed)
    start = start or NOW - timedelta(minutes=n)
    out = {}
    for symbol in symbols:
        price = rnd.uniform(20, 500)
        sigma = rnd.uniform(0.25, 0.45) / math.sqrt(252 * 390)
        bars = []
        for i in range(n):
            open_ = price
            price *= math.exp(rnd.gauss(0, sigma))
            hi, lo = max(open_, price), min(open_, price)
            q = lambda x: Decimal(str(round(x, 2)))  # noqa: E731
            bars.append(
                Bar(
                    ts=start + timedelta(minutes=i),
                    open=q(open_),
                    high=q(hi),
                    low=q(lo),
                    close=q(price),
                    volume=Decimal(rnd.randint(100, 5000)),
                )
            )
        out[symbol] = tuple(bars)
    return out


async def take(source: SignalSource, market: FakeMarket, n: int, *, timeout: float = 5.0) -> list[SignalBatch]:
    """The first n batches (fails if they do not come within `timeout` seconds)."""
    out: list[SignalBatch] = []
    it = source.batches(market)

    async def collect() -> None:
        async for batch in it:
            out.append(batch)
            if len(out) >= n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def drain(it: AsyncIterator[SignalBatch], *, timeout: float = 5.0) -> list[SignalBatch]:
    """Every remaining batch until the iterator ends."""
    out: list[SignalBatch] = []

    async def collect() -> None:
        async for batch in it:
            out.append(batch)

    await asyncio.wait_for(collect(), timeout)
    return out


def reasons(batch: SignalBatch) -> list[str]:
    return sorted(d.reason for d in batch.dropped)
