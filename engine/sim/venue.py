"""SimVenue: the embedding API. The venue runs its own asyncio loop in a daemon thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from .exchange import DEFAULT_MARGIN_MULTIPLIER
from .plan import DEFAULT_CONNECTION_HOLD_SECONDS, DEFAULT_PLAN
from .server import SimServer

T = TypeVar("T")


def _mute(fault: str, muted: bool, answer_pings: bool | None) -> dict[str, bool]:
    values = {fault: bool(muted)}
    if answer_pings is not None:
        values["muted_answer_pings"] = bool(answer_pings)
    return values


class SimVenue:
    """A local Alpaca-compatible paper venue.

    >>> venue = SimVenue(key_id="k", secret_key="s", seed=42, port=0)
    >>> venue.start()
    >>> TradingClient("k", "s", url_override=venue.trading_url)
    """

    def __init__(
        self,
        key_id: str = "sim-key",
        secret_key: str = "sim-secret",
        seed: int = 42,
        speed: float = 1.0,
        port: int = 0,
        universe_path: str | None = None,
        bars_csv: str | None = None,
        partial_fill_prob: float = 0.10,
        margin_multiplier: Decimal | float | int = DEFAULT_MARGIN_MULTIPLIER,
        starting_cash: Decimal | float | int = Decimal(100000),
        rate_limit_per_minute: int | None = 200,
        start_at: datetime | None = None,
        frozen_clock: bool = False,
        plan: str = DEFAULT_PLAN,
        connection_hold_seconds: float = DEFAULT_CONNECTION_HOLD_SECONDS,
    ) -> None:
        if not 0.0 <= partial_fill_prob <= 1.0:
            raise ValueError("partial_fill_prob must be between 0 and 1")
        if Decimal(str(margin_multiplier)) not in (1, 2, 3, 4):
            raise ValueError("margin_multiplier must be 1, 2, 3 or 4")
        self.key_id = key_id
        self.secret_key = secret_key
        self._port = port
        self._kwargs: dict[str, Any] = {
            "key_id": key_id,
            "secret_key": secret_key,
            "seed": seed,
            "speed": speed,
            "universe_path": universe_path,
            "bars_csv": bars_csv,
            "partial_fill_prob": partial_fill_prob,
            "margin_multiplier": Decimal(str(margin_multiplier)),
            "starting_cash": Decimal(str(starting_cash)),
            "rate_limit_per_minute": rate_limit_per_minute,
            "start_at": start_at,
            "frozen_clock": frozen_clock,
            "plan": plan,
            "connection_hold_seconds": connection_hold_seconds,
        }
        # build the state now so that bad arguments fail in the caller's thread
        self.server = SimServer(**self._kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0, *, thread_name: str = "execdesk-sim") -> SimVenue:
        """Serve in a thread of this process (named ``thread_name``, so that per-thread
        CPU figures can tell two venues in one process apart)."""
        if self._thread is not None:
            raise RuntimeError("venue already started")
        if self._stopped:
            raise RuntimeError("a stopped venue cannot be restarted: make a new SimVenue")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.port = loop.run_until_complete(self.server.start(self._port))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self.server.stop())
                    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    for t in pending:
                        t.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("venue did not start in time")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
        self._stopped = True

    def __enter__(self) -> SimVenue:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs
    @property
    def trading_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def trading_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def data_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/iex"

    # ------------------------------------------------------------------ drills (thread-safe)
    def _call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        if self._loop is None or self._thread is None:
            raise RuntimeError("venue is not running")

        async def run() -> T:
            self.server.sync()
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def shock(self, symbols: list[str] | None, pct: float) -> dict:
        """Move the prices of ``symbols`` (None: all) by ``pct`` percent at once."""
        return self._call(lambda: self.server.shock(symbols, pct))

    def set_price(self, symbol: str, price: float) -> dict:
        return self._call(lambda: self.server.set_price(symbol, price=price))

    def set_quote(self, symbol: str, bid: Decimal | str | float, ask: Decimal | str | float) -> dict:
        """Pin an exact quote (the random walk continues from its mid)."""
        return self._call(lambda: self.server.set_price(symbol, bid=bid, ask=ask))

    def quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        def get() -> tuple[Decimal, Decimal]:
            q = self.server.model.markets[symbol].quote
            return q.bp, q.ap

        return self._call(get)

    def set_faults(self, **kw: Any) -> dict:
        """See engine.sim.faults.Faults; also reset=True, drop_trade_stream=True, drop_data_stream=True."""
        return self._call(lambda: self.server.set_faults(kw))

    def drop_trade_stream(self) -> int:
        return self._call(lambda: self.server.drop_streams(trade=True, data=False))

    def drop_streams(self, trade: bool = True, data: bool = False, unclean: bool = False) -> int:
        """Close stream connections now; ``unclean`` cuts them like a network failure (no
        close frame), so reconnecting within the connection hold time is refused (406)."""
        return self._call(lambda: self.server.drop_streams(trade=trade, data=data, unclean=unclean))

    def mute_data_stream(self, muted: bool = True, answer_pings: bool | None = None) -> dict:
        """Data stream connections stay open and send no market data (until unmuted).
        ``answer_pings=False``: websocket pings go unanswered too (a half-dead socket)."""
        return self._call(lambda: self.server.set_faults(_mute("data_stream_muted", muted, answer_pings)))

    def mute_trade_stream(self, muted: bool = True, answer_pings: bool | None = None) -> dict:
        """Trade stream connections stay open (authentication and listen answered) and
        send no trade updates until unmuted: the updates of that time are lost, as on a
        silent socket (no replay). ``answer_pings=False``: websocket pings go unanswered
        too (a half-dead socket; its slot is then held after it closes, 406 meanwhile)."""
        return self._call(lambda: self.server.set_faults(_mute("trade_stream_muted", muted, answer_pings)))

    def shape_quotes(self, symbol: str, shape: str, width_pct: float | None = None) -> dict:
        """Publish poor quotes for ``symbol``: "no_bid", "no_ask", "crossed", "wide"; "normal" ends it."""
        return self._call(lambda: self.server.shape_quotes(symbol, shape, width_pct))

    def published_quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The quote market data shows (differs from ``quote`` while the symbol is shaped)."""

        def get() -> tuple[Decimal, Decimal]:
            q = self.server.model.markets[symbol].published
            return q.bp, q.ap

        return self._call(get)

    def advance(self, seconds: float) -> dict:
        """Move venue time forward (works with a frozen clock too): prices, fills, session events."""
        return self._call(lambda: self.server.clock_control({"advance_seconds": seconds}))

    def clock_to(self, to: str) -> dict:
        """``"next_open"``, ``"next_close"`` or an RFC 3339 time in the future."""
        return self._call(lambda: self.server.clock_control({"to": to}))

    def set_clock(self, **kw: Any) -> dict:
        return self._call(lambda: self.server.clock_control(kw))

    def now(self) -> datetime:
        return self._call(lambda: self.server.exchange.t)

    def state(self) -> dict:
        return self._call(self.server.state)

    def reset(self) -> dict:
        """Forget orders, positions and cash; prices and the clock carry on."""

        def do() -> dict:
            self.server.exchange.reset()
            return self.server.state()["venue"]

        return self._call(do)

    def set_partial_fill_prob(self, p: float) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError("partial_fill_prob must be between 0 and 1")

        def do() -> None:
            self.server.exchange.partial_fill_prob = float(p)

        self._call(do)
