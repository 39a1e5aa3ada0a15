"""The two streams on alpaca-py: trade_updates (TradingStream) and market data
(StockDataStream). Each runs alpaca-py's own coroutine on a loop thread of its
own; the runner wraps its connect, consume and dispatch steps to report
ConnectivityChanged (up, down, back up = reconnected), turns messages into venue
records through engine.broker.wire, and paces reconnects with the engine's one
back-off policy. Error messages of a stream (Alpaca's 405/406/409/...) become
StreamError events; a 406 (connection limit) is waited out for the venue's
connection hold instead of being retried; the market-data subscription's
confirmations become StreamSubscribed events, and which symbols' quotes stream
can change while connected (DataStreamRunner.set_quotes). `restart` closes a
silent connection so that alpaca-py reconnects it (the Engine's watchdogs).

A half-dead socket (no answer to websocket pings) is closed by the websocket
keepalive (market_data.stream_keepalive: a ping every third of it, the connection
given up when no pong comes within the rest) and reconnected like any lost
connection. The trade stream remembers when it last heard of each order
(TradeStreamRunner.heard), so the Engine can tell a quiet stream (nothing to say)
from a silent one (an update owed and not sent)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import websockets
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream

from engine.backoff import Backoff
from engine.broker.base import (
    BrokerEvent,
    Channel,
    ConnectivityChanged,
    LinkStatus,
    RequestFailed,
    StreamError,
    StreamSubscribed,
)
from engine.broker.wire import Scrubber, bar_from_raw, quote_from_raw, trade_update_from_raw

log = logging.getLogger(__name__)

# websockets logs every frame at DEBUG, the authentication frame included: the
# streams get a logger of their own that never goes below INFO.
_ws_log = logging.getLogger(__name__ + ".ws")
_ws_log.setLevel(logging.INFO)

WS_PARAMS: dict[str, Any] = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024}
#: Seconds within which a connected socket must answer a websocket ping (the default
#: of market_data.stream_keepalive: a ping every 10 s, 20 s for its pong).
KEEPALIVE_SECONDS = 30.0
#: The trade updates heard, per venue order id, that a trade stream remembers.
HEARD_KEPT = 20_000


def ws_params(keepalive: float = KEEPALIVE_SECONDS) -> dict[str, Any]:
    """The websocket options of a stream: a ping every third of `keepalive`, and the
    connection given up (then reconnected) when its pong has not come within the
    other two thirds: a half-dead socket is noticed within `keepalive` seconds."""
    return dict(WS_PARAMS, ping_interval=keepalive / 3, ping_timeout=keepalive * 2 / 3, logger=_ws_log)


# Waits between reconnect attempts (alpaca-py counts consecutive failures from 1):
# 1, 2, 4, ... 30 s, each drawn from its upper half, so a refused stream is not
# hammered and many clients do not come back in step (Alpaca holds a dropped
# connection for about 90 s and has answered reconnect storms with 429).
RECONNECT = Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=0.5)
# How long Alpaca holds a connection that died without a close (a 406 until then).
CONNECTION_HOLD_SECONDS = 90.0

# Alpaca's stream error words (the market-data stream's error table; the trade
# stream's authorization answer carries the same words): words -> code.
REFUSALS = {
    "not authenticated": 401,
    "auth failed": 402,
    "auth timeout": 404,
    "symbol limit exceeded": 405,
    "connection limit exceeded": 406,
    "insufficient subscription": 409,
}


def refusal_code(text: str) -> int | None:
    """The Alpaca stream error code that `text` (an error message) names, if any."""
    low = text.lower()
    return next((code for words, code in REFUSALS.items() if words in low), None)


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
        hold_seconds: float = CONNECTION_HOLD_SECONDS,
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
        self.refusals: dict[int, int] = {}  # stream error code -> times seen
        self.restarts = 0  # watchdog reconnects
        self.ended = ""  # why alpaca-py gave the stream up for good (a 409), else ""
        self.hold_seconds = float(hold_seconds)
        self._reconnect = reconnect
        self._lock = threading.Lock()
        self._last_frame = 0.0  # monotonic time of the last data frame (or of the connect)
        self.up_since: float | None = None  # wall time (epoch s) the current connection came up
        self._down_at: float | None = None  # when the connection was last lost
        self._hold_until = 0.0  # no attempt before this (monotonic): the venue holds our slot
        self._restart_reason = ""
        # alpaca-py asks _reconnect_delay(retries >= 1) before each new attempt
        stream._reconnect_delay = self._delay
        self._wrap()

    def _delay(self, retries: int) -> float:
        """The wait before reconnect attempt `retries` (>= 1): the back-off, but never
        before the end of a connection hold the venue told us about (406)."""
        return max(self._reconnect.delay(retries - 1), self._hold_until - time.monotonic())

    def silent_for(self) -> float | None:
        """Seconds since the last data frame (or since connecting) while up; None otherwise."""
        if self._status != "up":
            return None
        return time.monotonic() - self._last_frame

    def saw_data(self) -> None:
        self._last_frame = time.monotonic()

    def _refused(self, exc: BaseException) -> None:
        """A connect or authentication the venue refused with one of its error words."""
        text = self._scrub(str(exc))
        code = refusal_code(text)
        if code is None:
            return
        with self._lock:
            self.refusals[code] = self.refusals.get(code, 0) + 1
        if code == 406:
            # the venue still holds a connection of ours (or someone else's): wait the
            # hold out from when ours was lost, then a whole hold per further refusal
            now = time.monotonic()
            base = self._down_at if self._down_at is not None else now
            self._down_at = None
            self._hold_until = max(base + self.hold_seconds, now + self._reconnect.initial)
            action = f"waiting out the connection hold: next attempt in {self._hold_until - now:.0f} s"
        elif code == 409:
            action = "the plan does not include this feed: the stream is given up"
        else:
            action = "reconnecting with back-off"
        self._emit(StreamError(self.channel, code, text, action))

    # connectivity transitions (called on the stream's loop thread)

    def _up(self) -> None:
        with self._lock:
            if self._status == "up" or self._stopping:
                return
            reconnected = self._status == "down"
            self._status = "up"
            self.up_since = time.time()
        self.ready.set()
        self._emit(ConnectivityChanged(self.channel, LinkStatus.UP, "connected", reconnected=reconnected))

    def _down(self, detail: str) -> None:
        with self._lock:
            if self._status == "down" or self._stopping:
                return
            if self._status == "up":
                self._down_at = time.monotonic()
            self._status = "down"
            self.up_since = None
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
                self._refused(exc)
                if refusal_code(str(exc)) == 409:
                    self.ended = self._scrub(str(exc))
                self._down(f"connect failed: {type(exc).__name__}: {exc}")
                raise
            self.connects += 1
            self.saw_data()

        async def _consume() -> Any:
            try:
                result = await consume()
            except websockets.WebSocketException as exc:
                reason, self._restart_reason = self._restart_reason, ""
                self._down(reason or f"connection lost: {type(exc).__name__}: {exc}")
                raise
            if result is True:  # the data stream went stale and will reconnect
                self._down("no data: reconnecting")
            return result

        async def _dispatch(msg: dict) -> None:
            if self._status != "up" and self._is_ready_frame(msg):
                self._up()
            self.on_frame(msg)
            await dispatch(msg)

        s._start_ws, s._consume, s._dispatch = _start_ws, _consume, _dispatch

    def on_frame(self, msg: dict) -> None:
        """Every frame alpaca-py dispatches (after the connection checks)."""

    def restart(self, reason: str) -> bool:
        """Close the connection (with a close frame, so the venue frees the slot at
        once); alpaca-py then reconnects it with back-off. False when not connected."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._status != "up" or self._stopping:
            return False
        self._restart_reason = reason
        self.restarts += 1

        async def close() -> None:
            ws = getattr(self.stream, "_ws", None)
            if ws is not None:
                await ws.close()

        asyncio.run_coroutine_threadsafe(close(), loop)
        return True

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
            self.up_since = None
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


class TradeStreamRunner(StreamRunner):
    """The trade_updates stream: every update is data (the silence clock restarts)
    and is remembered per venue order id (wall time), at most HEARD_KEPT orders."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._heard: dict[str, float] = {}
        self.last_update: float | None = None  # wall time of the last trade update

    def on_frame(self, msg: dict) -> None:
        if msg.get("stream") != "trade_updates":
            return
        self.saw_data()
        now = time.time()
        self.last_update = now
        data = msg.get("data")
        order = data.get("order") if isinstance(data, dict) else None
        oid = order.get("id") if isinstance(order, dict) else None
        if oid is None:
            return
        heard = self._heard
        heard.pop(str(oid), None)  # re-inserted last: the oldest are dropped first
        heard[str(oid)] = now
        if len(heard) > HEARD_KEPT:
            del heard[next(iter(heard))]

    def heard(self, venue_order_id: str | None = None) -> float | None:
        """Wall time of the last update heard for this order (any order when None)."""
        if venue_order_id is None:
            return self.last_update
        return self._heard.get(venue_order_id)


class DataStreamRunner(StreamRunner):
    """The market-data stream: minute bars for every symbol (they do not count
    against a plan's symbol limit), quotes for the symbols the Engine chose
    (set_quotes), the venue's confirmations as StreamSubscribed and its error
    messages ({"T": "error"}: 405 symbol limit, 410 invalid subscribe, ...) as
    StreamError. alpaca-py itself only logs those."""

    def __init__(self, *args: Any, on_quote: Callable[[dict], Any], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._on_quote = on_quote

    def on_frame(self, msg: dict) -> None:
        kind = msg.get("T")
        if kind in ("q", "t", "b"):
            self.saw_data()
        elif kind == "subscription":
            self._emit(
                StreamSubscribed(
                    quotes=tuple(str(x) for x in msg.get("quotes") or ()),
                    bars=tuple(str(x) for x in msg.get("bars") or ()),
                )
            )
        elif kind == "error":
            code = msg.get("code")
            words = self._scrub(str(msg.get("msg", "")))
            code = int(code) if isinstance(code, int) else refusal_code(words)
            with self._lock:
                self.refusals[code or 0] = self.refusals.get(code or 0, 0) + 1
            self._emit(StreamError(self.channel, code, words, "the venue kept the subscription it had"))

    @property
    def quote_symbols(self) -> tuple[str, ...]:
        return tuple(self.stream._handlers["quotes"])

    async def set_quotes(self, symbols: Sequence[str], timeout: float = 10.0) -> None:
        """Stream quotes for exactly `symbols` from now on: the ones dropped are
        unsubscribed first (so a plan's limit is never crossed on the way), then the
        whole set subscribed. Not connected: the next connection subscribes them."""
        loop = self._loop
        wanted = list(dict.fromkeys(symbols))
        s = self.stream

        async def change() -> None:
            handlers = s._handlers["quotes"]
            removed = [x for x in handlers if x not in wanted]
            added = [x for x in wanted if x not in handlers]
            for x in removed:
                del handlers[x]
            for x in added:
                handlers[x] = self._on_quote
            if not (s._running and s._ws is not None):
                return
            try:
                if removed:
                    await s._send_unsubscribe_msg("quotes", removed)
                # the whole set, always: after a refusal (405) the venue may hold fewer
                # than our handlers say, and subscribing what it has already is a no-op
                await s._send_subscribe_msg()
            except websockets.WebSocketException as exc:  # the reconnect subscribes them
                log.debug("subscription change not sent: %s", self._scrub(exc))

        if loop is None or loop.is_closed():
            await change()  # not started: only the handlers change
            return
        await asyncio.wait_for(asyncio.wrap_future(asyncio.run_coroutine_threadsafe(change(), loop)), timeout)


async def _trade_auth(stream: TradingStream) -> None:
    """alpaca-py's TradingStream._auth, keeping the venue's words: alpaca-py raises a
    bare "failed to authenticate"; this raises with the error code and message the
    authorization answer carries (406 connection limit exceeded, ...)."""
    ws: Any = stream._ws
    await ws.send(
        json.dumps({"action": "authenticate", "data": {"key_id": stream._api_key, "secret_key": stream._secret_key}})
    )
    msg = json.loads(await ws.recv())
    data = msg.get("data") or {}
    if data.get("status") != "authorized":
        words = data.get("error_message") or data.get("status") or "unauthorized"
        code = data.get("error_code")
        raise ValueError(f"failed to authenticate: {words}" + (f" ({code})" if code else ""))


def trade_updates(
    key_id: str,
    secret_key: str,
    *,
    url: str,
    paper: bool,
    emit: Callable[[BrokerEvent], None],
    scrub: Scrubber,
    hold_seconds: float = CONNECTION_HOLD_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> TradeStreamRunner:
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
        websocket_params=ws_params(keepalive),
    )
    stream.subscribe_trade_updates(on_update)
    stream._auth = lambda: _trade_auth(stream)  # type: ignore[method-assign]
    return TradeStreamRunner(
        Channel.TRADE_STREAM,
        stream,
        emit,
        scrub,
        lambda m: m.get("stream") in ("listening", "trade_updates"),
        hold_seconds=hold_seconds,
    )


def market_data(
    key_id: str,
    secret_key: str,
    *,
    url: str,
    feed: str,
    symbols: Sequence[str],
    quote_symbols: Sequence[str] | None = None,
    emit: Callable[[BrokerEvent], None],
    scrub: Scrubber,
    hold_seconds: float = CONNECTION_HOLD_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> DataStreamRunner:
    """Minute bars for `symbols` and quotes for `quote_symbols` (default: all of
    them): VenueQuote and VenueBar events (unreadable ones are dropped, logged at
    DEBUG), StreamSubscribed and StreamError."""

    async def on_quote(msg: Any) -> None:
        try:
            emit(quote_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable quote: %s", scrub(exc))

    async def on_bar(msg: Any) -> None:
        try:
            emit(bar_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable bar: %s", scrub(exc))

    stream = StockDataStream(
        key_id,
        secret_key,
        raw_data=True,
        feed=DataFeed(feed),
        websocket_params=ws_params(keepalive),
        url_override=url,
    )
    quotes = list(symbols) if quote_symbols is None else list(quote_symbols)
    if quotes:
        stream.subscribe_quotes(on_quote, *quotes)
    stream.subscribe_bars(on_bar, *symbols)
    return DataStreamRunner(
        Channel.MARKET_DATA,
        stream,
        emit,
        scrub,
        lambda m: m.get("T") in ("subscription", "error", "q", "b", "t"),
        hold_seconds=hold_seconds,
        on_quote=on_quote,
    )
