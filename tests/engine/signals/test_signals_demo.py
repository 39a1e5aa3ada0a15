"""The demo model: a moving-average crossover over the venue's minute bars, squashed
into [-1, 1]. Deterministic (same bars, same signals) and lively enough on a random
walk that every bar brings orders."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import timedelta
from decimal import Decimal

from engine.config import Settings
from engine.signals import DEMO_LONG, DEMO_MIN_BARS, Bar, DemoSource, demo_signals, open_source
from tests.engine.signals.signal_fakes import NOW, UNIVERSE, FakeMarket, random_walk, take

THRESHOLD = 0.1  # position_sizing.signal_threshold default


def bars_of(closes: list[float]) -> tuple[Bar, ...]:
    return tuple(
        Bar(
            ts=NOW + timedelta(minutes=i),
            open=Decimal(str(c)),
            high=Decimal(str(c)),
            low=Decimal(str(c)),
            close=Decimal(str(c)),
            volume=Decimal(100),
        )
        for i, c in enumerate(closes)
    )


def test_the_formula_on_a_hand_worked_series():
    """Given 20 closes 1..20: short mean (last 5) = 18, long mean = 10.5,
    pstdev = 5.766; z = 1.3007; s = tanh(0.5 * z) = 0.5719."""
    closes = [float(i) for i in range(1, 21)]
    z = (18 - 10.5) / statistics.pstdev(closes)
    assert demo_signals({"AAPL": bars_of(closes)}) == {"AAPL": round(math.tanh(0.5 * z), 4)} == {"AAPL": 0.5719}
    assert demo_signals({"AAPL": bars_of(closes[::-1])}) == {"AAPL": -0.5719}


def test_warm_up_flat_and_broken_series():
    assert demo_signals({"AAPL": bars_of([100.0] * (DEMO_MIN_BARS - 1))}) == {}
    assert demo_signals({"AAPL": bars_of([100.0] * DEMO_LONG)}) == {"AAPL": 0.0}
    assert demo_signals({"AAPL": bars_of([100.0] * 15 + [0.0] * 5)}) == {}
    # only the last DEMO_LONG closes count
    tail = [float(i) for i in range(1, 21)]
    assert demo_signals({"AAPL": bars_of([1e6] * 30 + tail)}) == demo_signals({"AAPL": bars_of(tail)})


def test_same_bars_give_the_same_signals():
    series = random_walk(sorted(UNIVERSE), 40, seed=11)
    first = demo_signals(series)
    again = demo_signals({s: tuple(bars) for s, bars in reversed(list(series.items()))})
    assert first == again
    assert all(-1 <= v <= 1 for v in first.values())
    assert demo_signals(random_walk(sorted(UNIVERSE), 40, seed=12)) != first


async def test_on_a_random_walk_every_bar_brings_orders():
    """Given the 53-symbol universe on a random walk, then at every bar most symbols
    are past the 0.1 threshold, and several move by more than 0.1 from the previous
    bar (targets change, orders follow)."""
    n_bars = 60
    series = random_walk(sorted(UNIVERSE), DEMO_LONG + n_bars, seed=3, start=NOW - timedelta(minutes=DEMO_LONG))
    bar_times = [NOW + timedelta(minutes=i) for i in range(n_bars)]
    market = FakeMarket(series=series, bar_times=bar_times)
    source = DemoSource(known_symbols=UNIVERSE, max_age=120)
    batches = await take(source, market, n_bars)
    assert [b.ts for b in batches] == bar_times
    assert all(b.origin == "demo" and not b.dropped for b in batches)

    past_threshold = [sum(abs(v) >= THRESHOLD for v in b.signals.values()) for b in batches]
    moved = [
        sum(abs(b.signals[s] - a.signals[s]) > THRESHOLD for s in b.signals) for a, b in itertools.pairwise(batches)
    ]
    crossed = [
        sum(
            (abs(a.signals[s]) >= THRESHOLD) != (abs(b.signals[s]) >= THRESHOLD) or a.signals[s] * b.signals[s] < 0
            for s in b.signals
        )
        for a, b in itertools.pairwise(batches)
    ]
    assert all(len(b.signals) == len(UNIVERSE) for b in batches)
    assert min(past_threshold) >= 25, past_threshold
    assert min(moved) >= 3 and statistics.mean(moved) >= 8, moved
    assert statistics.mean(crossed) >= 2, crossed
    longs = sum(v > 0 for b in batches for v in b.signals.values())
    assert 0.3 < longs / (len(UNIVERSE) * n_bars) < 0.7  # both sides trade
    await source.aclose()


async def test_two_runs_over_the_same_venue_bars_are_identical():
    series = random_walk(sorted(UNIVERSE), 40, seed=5, start=NOW - timedelta(minutes=30))
    bar_times = [NOW + timedelta(minutes=i) for i in range(5)]
    runs = []
    for _ in range(2):
        source = DemoSource(known_symbols=UNIVERSE, max_age=120)
        runs.append(await take(source, FakeMarket(series=series, bar_times=bar_times), 5))
    assert runs[0] == runs[1]


async def test_the_demo_trades_only_the_tradable_known_universe():
    series = random_walk([*sorted(UNIVERSE), "ZZZZ"], 30, start=NOW - timedelta(minutes=29))
    market = FakeMarket(series=series, tradable=(UNIVERSE - {"XOM"}) | {"ZZZZ"}, bar_times=[NOW])
    [batch] = await take(open_source(Settings(), known_symbols=UNIVERSE), market, 1)
    assert set(batch.signals) == UNIVERSE - {"XOM"}
    assert not batch.dropped
