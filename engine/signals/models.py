"""Sources computed at every bar close of the venue clock: a Python callable given
the recent bars and quotes, and the built-in demo model."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import statistics
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from engine.signals.base import _Closed, _SourceBase
from engine.signals.decoding import _clip, _Entry, _iso, _shown, _utc
from engine.signals.types import DropReason, MarketView, SignalBatch, SignalSourceError

__all__ = ["CallableSource", "DemoSource", "demo_signals", "load_callable"]

CALLABLE_BARS = 60  # minute bars per symbol handed to a callable
DEMO_SHORT = 5  # demo model: short moving average, in bars
DEMO_LONG = 20  # demo model: long moving average and deviation window, in bars
DEMO_MIN_BARS = 10  # demo model: fewer closes than this -> no signal for the symbol yet
DEMO_GAIN = 0.5  # demo model: s = tanh(DEMO_GAIN * z)

T = TypeVar("T")


def load_callable(spec: str) -> Callable[..., Any]:
    """ "package.module:function" (or "package.module:Class.method") -> the callable.
    Raises SignalSourceError naming the spec when it cannot be imported."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise SignalSourceError(f'signals.callable {spec!r}: expected "package.module:function"', path=spec)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a startup error
        raise SignalSourceError(
            f"signals.callable {spec!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}", path=spec
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SignalSourceError(
                f"signals.callable {spec!r}: module {module_name!r} has no attribute {attr_path!r}", path=spec
            ) from None
    if not callable(target):
        raise SignalSourceError(
            f"signals.callable {spec!r}: {attr_path!r} is a {type(target).__name__}, not a function", path=spec
        )
    return target


class _EveryBar(_SourceBase):
    """A source that computes one batch at each bar close of the venue clock."""

    name = "bar"

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        while True:
            try:
                ts = _utc(await self._unless_closed(market.next_bar()))
            except _Closed:
                return
            try:
                batch = await self._unless_closed(self._compute(market, ts))
            except _Closed:
                return
            yield batch

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:  # pragma: no cover
        raise NotImplementedError


class CallableSource(_EveryBar):
    """Calls `function(bars, quotes)` at every bar: bars is {symbol: the last
    CALLABLE_BARS minute bars, oldest first} for the tradable universe, quotes is
    {symbol: Quote}. It returns {symbol: signal}. A plain function runs in a worker
    thread (the engine stays responsive); an async one is awaited. Raising or returning
    something that is not a mapping drops the bar (CALLABLE_ERROR / BAD_RETURN)."""

    def __init__(
        self, function: Callable[..., Any], *, known_symbols: frozenset[str], max_age: float, name: str | None = None
    ):
        super().__init__(known_symbols, max_age)
        self._function = function
        self.name = (
            name
            or f"callable:{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"
        )

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:
        where = f"{self.name}@{_iso(ts)}"
        symbols = sorted(market.symbols() & self._judge.known_symbols)
        bars = {s: tuple(market.bars(s, CALLABLE_BARS)) for s in symbols}
        quotes = dict(market.quotes())
        try:
            if inspect.iscoroutinefunction(self._function):
                result = await self._function(bars, quotes)
            else:
                result = await _in_daemon_thread(self._function, bars, quotes)
                if inspect.isawaitable(result):
                    result = await result
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing model drops its bar, never the engine
            return self._judge.reject(
                market,
                DropReason.CALLABLE_ERROR,
                f"{where}: raised {type(exc).__name__}: {_clip(str(exc), 200)}",
                origin=self.name,
                ts=ts,
            )
        if not isinstance(result, Mapping):
            return self._judge.reject(
                market,
                DropReason.BAD_RETURN,
                f"{where}: returned {_shown(result)} ({type(result).__name__}), expected a mapping {{symbol: signal}}",
                origin=self.name,
                ts=ts,
            )
        try:
            entries = [_Entry(k, v, None) for k, v in result.items()]
        except Exception as exc:  # noqa: BLE001 - a junk mapping
            return self._judge.reject(
                market,
                DropReason.BAD_RETURN,
                f"{where}: its mapping cannot be read: {type(exc).__name__}: {_clip(str(exc))}",
                origin=self.name,
                ts=ts,
            )
        return self._judge.judge(market, ts, entries, origin=self.name, where=where)


async def _in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in its own daemon thread: unlike the default executor, a call
    that never returns cannot hold up the process at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # loop closed meanwhile
            pass

    threading.Thread(target=run, name="signals-callable", daemon=True).start()
    return await future


def demo_signals(bars: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """The demo model: a moving-average crossover per symbol, in units of the recent
    price spread, squashed into [-1, 1]. Pure and deterministic (same bars -> same
    signals). With c = the last min(DEMO_LONG, n) closes (n >= DEMO_MIN_BARS):

        z = (mean(last DEMO_SHORT of c) - mean(c)) / pstdev(c)
        s = round(tanh(DEMO_GAIN * z), 4)        (s = 0 when pstdev(c) = 0)
    """
    out: dict[str, float] = {}
    for symbol in sorted(bars):
        closes = [float(b.close) for b in bars[symbol]][-DEMO_LONG:]
        if len(closes) < DEMO_MIN_BARS or not all(math.isfinite(c) and c > 0 for c in closes):
            continue
        spread = statistics.pstdev(closes)
        if spread <= 0:
            out[symbol] = 0.0
            continue
        z = (math.fsum(closes[-DEMO_SHORT:]) / DEMO_SHORT - math.fsum(closes) / len(closes)) / spread
        out[symbol] = round(math.tanh(DEMO_GAIN * z), 4) + 0.0  # + 0.0: no -0.0
    return out


class DemoSource(_EveryBar):
    """The built-in demo model (see demo_signals) over the venue's minute bars of the
    tradable universe, one batch per bar."""

    name = "demo"

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:
        symbols = sorted(market.symbols() & self._judge.known_symbols)
        signals = demo_signals({s: market.bars(s, DEMO_LONG) for s in symbols})
        entries = [_Entry(s, v, None) for s, v in signals.items()]
        return self._judge.judge(market, ts, entries, origin="demo", where=f"demo@{_iso(ts)}")
