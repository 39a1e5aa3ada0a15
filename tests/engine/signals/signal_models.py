"""Signal functions for the callable source tests, imported by "tests.engine.signals.signal_models:<name>"."""

from __future__ import annotations

import asyncio
import math
import time

CALLS: list[tuple[int, int]] = []  # (symbols with bars, quotes) seen per call


def momentum(bars, quotes):
    """Sign of the last bar's move, scaled: a tiny model over the bars it is given."""
    CALLS.append((sum(1 for b in bars.values() if b), len(quotes)))
    out = {}
    for symbol, series in bars.items():
        if len(series) >= 2:
            move = float(series[-1].close) / float(series[-2].close) - 1
            out[symbol] = math.tanh(move * 1000)
    return out


async def async_constant(bars, quotes):
    await asyncio.sleep(0)
    return {"AAPL": 0.5}


def raising(bars, quotes):
    raise ZeroDivisionError("model blew up")


def exiting(bars, quotes):
    raise SystemExit(3)


def returns_none(bars, quotes):
    return None


def returns_list(bars, quotes):
    return [("AAPL", 0.5)]


def returns_junk_values(bars, quotes):
    return {"AAPL": float("nan"), "MSFT": "0.3", "NVDA": True, "AMZN": 2.0, "ZZZZ": 0.1, 7: 0.1, "TSLA": 0.25}


class _BrokenMapping(dict):
    def items(self):
        raise RuntimeError("cannot iterate")


def returns_broken_mapping(bars, quotes):
    return _BrokenMapping(AAPL=0.1)


def sleeps_forever(bars, quotes):
    time.sleep(3600)


not_a_function = 42
