"""The two streams on alpaca-py: trade_updates (TradingStream) and market data
(StockDataStream). Each runs alpaca-py's own coroutine on a loop thread of its
own; the runner wraps its connect, consume and dispatch steps to report
ConnectivityChanged (up, down, back up = reconnected), turns messages into venue
records through engine.broker.wire, and paces reconnects with the engine's one
back-off policy."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream

from engine.backoff import Backoff
from engine.broker.base import BrokerEvent, Channel, ConnectivityChanged, LinkStatus, RequestFailed
from engine.broker.wire import Scrubber, bar_from_raw, quote_from_raw, trade_update_from_raw

log = logging.getLogger(__name__)

# websockets logs every frame at DEBUG, the authentication frame included: the
# streams get a logger of their own that never goes below INFO.
_ws_log = logging.getLogger(__name__ + ".ws")
_ws_log.setLevel(logging.INFO)

WS_PARAMS: dict[str, Any] = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024}

# Waits between reconnect attempts (alpaca-py counts consecutive failures from 1):
# 1, 2, 4, ... 30 s, each drawn from its upper half, so a refused stream is not
# hammered and many clients do not come back in step (Alpaca holds a dropped
# connection for about 90 s and has answered reconnect storms with 429).
RECONNECT = Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=0.5)


class _QuietWhileStopping(logging.Filter):
    """Our stop closes the socket to wake alpaca-py at once; it then logs a
    "websocket error, restarting connection" warning that is not one."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = 0
        self._lock = threading.Lock()

    def hold(self, delta: int) -> None:
        with self._lock:
            self.stopping += delta

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.stopping and "restarting" in record.getMessage())


_quiet = _QuietWhileStopping()
for _name in ("alpaca.trading.stream", "alpaca.data.live.websocket"):
    logging.getLogger(_name).addFilter(_quiet)


class StreamRunner:
    """Runs one alpaca-py stream's own coroutine (`_run_forever`, which reconnects
    by itself) on a dedicated event-loop thread, and wraps its connect, dispatch
    and consume steps to know when the connection is up, lost and back."""

    def __init__(
        self,
        channel: Channel,
        stream: Any,
        emit: Callable[[BrokerEvent], None],
        scrub: Scrubber,
        is_ready_frame: Callable[[dict], bool],
        reconnect: Backoff = RECONNECT,
    ) -> None:
        self.channel = channel
        self.stream = stream
        self._emit = emit
        self._scrub = scrub
        self._is_ready_frame = is_ready_frame
        self._status = "new"  # new | up | down
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.connects = 0
        self._lock = threading.Lock()
        # alpaca-py asks _reconnect_delay(retries >= 1) before each new attempt
        stream._reconnect_delay = lambda retries: reconnect.delay(retries - 1)
        self._wrap()

    # connectivity transitions (called on the stream's loop thread)

    def _up(self) -> None:
        with self._lock:
            if self._status == "up" or self._stopping:
                return
            reconnected = self._status == "down"
            self._status = "up"
        self.ready.set()
        self._emit(ConnectivityChanged(self.channel, LinkStatus.UP, "connected", reconnected=reconnected))

    def _down(self, detail: str) -> None:
        with self._lock:
            if self._status == "down" or self._stopping:
                return
            self._status = "down"
        self.ready.clear()
        self._emit(ConnectivityChanged(self.channel, LinkStatus.DOWN, self._scrub(detail)))

    @property
    def status(self) -> str:
        return self._status

    def _wrap(self) -> None:
        s = self.stream
        start_ws, consume, dispatch = s._start_ws, s._consume, s._dispatch

        async def _start_ws() -> None:
            try:
                await start_ws()
            except Exception as exc:
                self._down(f"connect failed: {type(exc).__name__}: {exc}")
                raise
            self.connects += 1

        async def _consume() -> Any:
            try:
                result = await consume()
            except websockets.WebSocketException as exc:
                self._down(f"connection lost: {type(exc).__name__}: {exc}")
                raise
            if result is True:  # the data stream went stale and will reconnect
                self._down("no data: reconnecting")
            return result

        async def _dispatch(msg: dict) -> None:
            if self._status != "up" and self._is_ready_frame(msg):
                self._up()
            await dispatch(msg)

        s._start_ws, s._consume, s._dispatch = _start_ws, _consume, _dispatch

    # thread

    def start(self) -> None:
        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            started.set()
            try:
                loop.run_until_complete(self.stream._run_forever())
            except Exception as exc:  # pragma: no cover - alpaca-py catches its own
                log.error("%s stream ended: %s", self.channel, self._scrub(exc))
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=main, name=f"broker-{self.channel}", daemon=True)
        self._thread.start()
        started.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive() and not loop.is_closed():

            async def shutdown() -> None:
                await self.stream.stop_ws()
                await self.stream.close()  # wakes a pending recv instead of waiting for its 5 s poll

            _quiet.hold(1)
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
                thread.join(timeout)
            except Exception as exc:  # loop already gone, or shutdown failed
                log.debug("%s stream stop: %s", self.channel, self._scrub(exc))
            finally:
                _quiet.hold(-1)
        if thread is not None:
            thread.join(timeout)


def trade_updates(
    key_id: str,
    secret_key: str,
    *,
    url: str,
    paper: bool,
    emit: Callable[[BrokerEvent], None],
    scrub: Scrubber,
) -> StreamRunner:
    """The trade_updates stream: TradeUpdate events; an unreadable one is reported
    as RequestFailed("trade_stream") (reconciliation repairs what it carried)."""

    async def on_update(msg: dict) -> None:
        data = msg.get("data") if isinstance(msg, dict) else None
        try:
            update = trade_update_from_raw(data or {})
        except Exception as exc:
            emit(RequestFailed("trade_stream", scrub(f"unreadable trade update: {exc}"), ok=False))
            return
        emit(update)

    stream = TradingStream(
        key_id,
        secret_key,
        paper=paper,
        raw_data=True,
        url_override=url,
        websocket_params=dict(WS_PARAMS, logger=_ws_log),
    )
    stream.subscribe_trade_updates(on_update)
    return StreamRunner(
        Channel.TRADE_STREAM, stream, emit, scrub, lambda m: m.get("stream") in ("listening", "trade_updates")
    )


def market_data(
    key_id: str,
    secret_key: str,
    *,
    url: str,
    feed: str,
    symbols: Sequence[str],
    emit: Callable[[BrokerEvent], None],
    scrub: Scrubber,
) -> StreamRunner:
    """Quotes and minute bars for `symbols`: VenueQuote and VenueBar events
    (unreadable ones are dropped, logged at DEBUG)."""

    async def on_quote(msg: dict) -> None:
        try:
            emit(quote_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable quote: %s", scrub(exc))

    async def on_bar(msg: dict) -> None:
        try:
            emit(bar_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable bar: %s", scrub(exc))

    stream = StockDataStream(
        key_id,
        secret_key,
        raw_data=True,
        feed=DataFeed(feed),
        websocket_params=dict(WS_PARAMS, logger=_ws_log),
        url_override=url,
    )
    stream.subscribe_quotes(on_quote, *symbols)
    stream.subscribe_bars(on_bar, *symbols)
    return StreamRunner(
        Channel.MARKET_DATA, stream, emit, scrub, lambda m: m.get("T") in ("subscription", "q", "b", "t")
    )
