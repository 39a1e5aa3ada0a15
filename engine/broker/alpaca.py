"""AlpacaBroker: the Broker protocol on alpaca-py alone (TradingClient, TradingStream,
StockHistoricalDataClient, StockDataStream), for Alpaca and for the local venue.

REST calls block, so they run in a bounded worker pool, each behind the priority
rate limiter (cancels, then submits, then queries) and with a timeout on every
socket operation. Submits are never re-sent: alpaca-py's own retry is switched off
and every outcome that is not a clear answer is `unknown`, resolved by `lookup`.
The two streams run alpaca-py's own coroutines on dedicated loop threads; their
connects, drops and reconnects are reported as ConnectivityChanged events.

For the Engine:
- emit is called from several threads: the Engine's own loop (RequestFailed and
  ConnectivityChanged("rest") right after each REST call), the trade-stream thread
  (TradeUpdate, ConnectivityChanged("trade_stream")), the market-data thread
  (VenueQuote, VenueBar, ConnectivityChanged("market_data")), and worker or timer
  threads (RateLimitChanged). Hand events to the Engine's loop with
  loop.call_soon_threadsafe. TradeUpdates of one stream arrive in stream order.
- submit -> acked | rejected | unknown. For unknown, call lookup(client_order_id)
  (or resolve_unknown, which asks again on 404 for a while, since the venue may
  still be working on a request we gave up on); never submit again. A submit
  cancelled by the caller is unknown too (unless it had not left yet).
- ConnectivityChanged(channel, "up", reconnected=True) means the channel came back
  after being down: the trade stream does not replay, so reconcile then.
  RequestFailed(op, detail, ok) comes for every REST call; ok=False for timeouts,
  lost connections, 5xx, 429, unreadable answers and refused orders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import requests
import websockets
from requests.adapters import HTTPAdapter

from alpaca.common.enums import BaseURL, Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)
from alpaca.trading.stream import TradingStream

from engine.broker.base import (
    BrokerEvent,
    BrokerUnavailable,
    CancelAllOutcome,
    CancelOutcome,
    ClosePositionOutcome,
    ConnectivityChanged,
    EmitFn,
    RateLimitChanged,
    RequestFailed,
    SubmitOutcome,
    SubmitRequest,
    TradeUpdate,
    VenueAccount,
    VenueAsset,
    VenueBar,
    VenueClock,
    VenueOrder,
    VenuePosition,
    VenueQuote,
)
from engine.broker.ratelimit import Priority, OutboundLimiter, parse_ratelimit_headers
from engine.config import Credentials, Settings

log = logging.getLogger(__name__)

# websockets logs every frame at DEBUG, the authentication frame included: the
# streams get a logger of their own that never goes below INFO.
_ws_log = logging.getLogger(__name__ + ".ws")
_ws_log.setLevel(logging.INFO)

TRADING = "trading"
DATA = "data"
MAX_PAGE = 500  # GET /v2/orders limit
DOWN_AFTER = 3  # consecutive unanswered REST calls before "rest" is down

_DUPLICATE_MARKERS = ("client_order_id must be unique", "client order id must be unique")


# ---- URLs ---------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerUrls:
    trading: str
    data: str
    trading_stream: str
    data_stream: str


def resolve_urls(
    settings: Settings,
    *,
    trading_url: str | None = None,
    data_url: str | None = None,
    trading_stream_url: str | None = None,
    data_stream_url: str | None = None,
) -> BrokerUrls:
    """Explicit arguments first (the session passes the local venue's), then the
    configuration, then Alpaca's own endpoints (paper unless the session is live)."""
    b = settings.broker
    trading = (trading_url or b.trading_url or "").rstrip("/")
    data = (data_url or b.data_url or "").rstrip("/")
    if not trading or not data:
        if b.kind != "alpaca":
            raise ValueError(
                'broker.kind = "sim" needs the local venue\'s URLs (trading_url, data_url): '
                "start the venue first and pass its URLs"
            )
        trading = trading or (BaseURL.TRADING_LIVE.value if settings.is_live else BaseURL.TRADING_PAPER.value)
        data = data or BaseURL.DATA.value
    if trading_stream_url is None:
        trading_stream_url = _ws_url(trading) + "/stream"
    if data_stream_url is None:
        if data == BaseURL.DATA.value:
            # Alpaca serves market-data streams from their own host
            data_stream_url = BaseURL.MARKET_DATA_STREAM.value + "/v2/" + b.feed
        else:
            data_stream_url = _ws_url(data) + "/v2/" + b.feed
    return BrokerUrls(trading, data, trading_stream_url, data_stream_url)


def _ws_url(http_url: str) -> str:
    parts = urlsplit(http_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


# ---- parsing venue JSON into engine records -------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


def _ts(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    to_datetime = getattr(value, "to_datetime", None)  # msgpack Timestamp
    if to_datetime is not None:
        return to_datetime()
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _word(value: Any) -> str:
    """Enum or string -> the wire word."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def order_from_raw(d: Mapping[str, Any]) -> VenueOrder:
    created = _ts(d.get("created_at"))
    if created is None:
        raise ValueError("order without created_at")
    return VenueOrder(
        id=str(d["id"]),
        client_order_id=str(d.get("client_order_id") or ""),
        symbol=str(d.get("symbol") or ""),
        side=_word(d.get("side")),
        qty=_dec(d.get("qty")),
        notional=_dec(d.get("notional")),
        filled_qty=_dec(d.get("filled_qty")) or Decimal(0),
        filled_avg_price=_dec(d.get("filled_avg_price")),
        status=_word(d["status"]),
        order_type=_word(d.get("order_type") or d.get("type")),
        time_in_force=_word(d.get("time_in_force")),
        limit_price=_dec(d.get("limit_price")),
        stop_price=_dec(d.get("stop_price")),
        created_at=created,
        updated_at=_ts(d.get("updated_at")),
        submitted_at=_ts(d.get("submitted_at")),
        filled_at=_ts(d.get("filled_at")),
        replaced_by=str(d["replaced_by"]) if d.get("replaced_by") else None,
    )


def trade_update_from_raw(d: Mapping[str, Any]) -> TradeUpdate:
    timestamp = _ts(d.get("timestamp"))
    if timestamp is None:
        raise ValueError("trade update without timestamp")
    execution_id = d.get("execution_id")
    return TradeUpdate(
        event=_word(d.get("event")),
        order=order_from_raw(d["order"]),
        timestamp=timestamp,
        execution_id=str(execution_id) if execution_id else None,
        price=_dec(d.get("price")),
        qty=_dec(d.get("qty")),
        position_qty=_dec(d.get("position_qty")),
    )


def position_from_raw(d: Mapping[str, Any]) -> VenuePosition:
    return VenuePosition(
        symbol=str(d["symbol"]),
        qty=_dec(d["qty"]) or Decimal(0),
        avg_entry_price=_dec(d.get("avg_entry_price")) or Decimal(0),
        current_price=_dec(d.get("current_price")),
        market_value=_dec(d.get("market_value")),
        lastday_price=_dec(d.get("lastday_price")),
    )


def account_from_raw(d: Mapping[str, Any]) -> VenueAccount:
    zero = Decimal(0)
    return VenueAccount(
        account_number=str(d.get("account_number") or ""),
        status=_word(d.get("status")),
        cash=_dec(d.get("cash")) or zero,
        equity=_dec(d.get("equity")) or zero,
        last_equity=_dec(d.get("last_equity")) or zero,
        buying_power=_dec(d.get("buying_power")) or zero,
        long_market_value=_dec(d.get("long_market_value")) or zero,
        short_market_value=_dec(d.get("short_market_value")) or zero,
        trading_blocked=bool(d.get("trading_blocked")),
        shorting_enabled=bool(d.get("shorting_enabled")),
    )


def clock_from_raw(d: Mapping[str, Any]) -> VenueClock:
    ts, nxt_open, nxt_close = _ts(d["timestamp"]), _ts(d["next_open"]), _ts(d["next_close"])
    assert ts and nxt_open and nxt_close
    return VenueClock(timestamp=ts, is_open=bool(d["is_open"]), next_open=nxt_open, next_close=nxt_close)


def asset_from_raw(d: Mapping[str, Any]) -> VenueAsset:
    return VenueAsset(
        symbol=str(d["symbol"]),
        tradable=bool(d.get("tradable")),
        shortable=bool(d.get("shortable")),
        easy_to_borrow=bool(d.get("easy_to_borrow")),
        fractionable=bool(d.get("fractionable")),
        exchange=_word(d.get("exchange")),
        status=_word(d.get("status")),
    )


def quote_from_raw(symbol: str, d: Mapping[str, Any]) -> VenueQuote:
    ts = _ts(d.get("t"))
    assert ts is not None
    return VenueQuote(
        symbol=symbol, bid=_dec(d.get("bp")) or Decimal(0), ask=_dec(d.get("ap")) or Decimal(0), ts=ts
    )


def bar_from_raw(symbol: str, d: Mapping[str, Any]) -> VenueBar:
    ts = _ts(d.get("t"))
    assert ts is not None
    zero = Decimal(0)
    return VenueBar(
        symbol=symbol,
        ts=ts,
        open=_dec(d.get("o")) or zero,
        high=_dec(d.get("h")) or zero,
        low=_dec(d.get("l")) or zero,
        close=_dec(d.get("c")) or zero,
        volume=_dec(d.get("v")) or zero,
    )


# ---- failures -------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    """What went wrong with one REST call, already scrubbed of secrets."""

    kind: str  # "http" (the venue answered an error) | "timeout" | "connection" | "unreadable" | "other"
    status: int | None = None
    code: int | None = None
    message: str = ""
    json_body: bool = False

    @property
    def unanswered(self) -> bool:
        """The venue could not answer (counts against REST health)."""
        if self.kind == "http":
            return self.status is None or self.status >= 500
        return self.kind in ("timeout", "connection")

    @property
    def detail(self) -> str:
        if self.kind == "http":
            code = f" {self.code}" if self.code is not None else ""
            return f"HTTP {self.status}{code}: {self.message}".strip()
        return f"{self.kind}: {self.message}"


class _Scrubber:
    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = [s for s in secrets if s]

    def __call__(self, text: Any, limit: int = 300) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "****")
        out = " ".join(out.split())
        return out if len(out) <= limit else out[: limit - 1] + "…"


def _failure(exc: BaseException, scrub: _Scrubber) -> _Failure:
    if isinstance(exc, APIError):
        status = exc.status_code
        text = str(getattr(exc, "_error", "") or "")
        try:
            body = json.loads(text)
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict) and ("code" in body or "message" in body):
            code = body.get("code")
            try:
                code = int(code) if code is not None else None
            except (TypeError, ValueError):
                code = None
            return _Failure("http", status, code, scrub(body.get("message", "")), json_body=True)
        return _Failure("http", status, None, scrub(text or f"HTTP {status}"))
    if isinstance(exc, requests.Timeout):
        return _Failure("timeout", message=scrub(type(exc).__name__))
    if isinstance(exc, requests.ConnectionError):
        return _Failure("connection", message=scrub(_root_cause(exc)))
    if isinstance(exc, (ValueError, KeyError, TypeError, AssertionError)):
        # a 2xx whose body could not be read, or a response the models refuse
        return _Failure("unreadable", message=scrub(f"{type(exc).__name__}: {exc}"))
    return _Failure("other", message=scrub(f"{type(exc).__name__}: {exc}"))


def _root_cause(exc: BaseException) -> str:
    inner: BaseException = exc
    while inner.__cause__ is not None or (inner.__context__ is not None and not inner.__suppress_context__):
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    name = type(inner).__name__
    return name if inner is exc else f"{type(exc).__name__} ({name})"


def _is_uuid(value: str) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def _is_duplicate_client_order_id(f: _Failure) -> bool:
    text = f.message.lower()
    return any(marker in text for marker in _DUPLICATE_MARKERS) or (
        "client_order_id" in text and "unique" in text
    )


# ---- requests session plumbing ------------------------------------------------------


class _Permit(threading.local):
    """Per worker thread: the permit granted before the call (for its first HTTP
    request) and the priority of the call (for extra pages)."""

    permits: int = 0
    priority: int = Priority.QUERY


class _VenueAdapter(HTTPAdapter):
    """Every request gets a timeout, and every HTTP request beyond the first of a
    call (pagination inside alpaca-py) waits for its own rate-limit permit."""

    def __init__(self, timeout: float, limiter: OutboundLimiter, host: str, permit: _Permit, pool: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=max(pool, 1), max_retries=0)
        self._timeout = timeout
        self._limiter = limiter
        self._host = host
        self._permit = permit

    def send(self, request, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        if self._permit.permits > 0:
            self._permit.permits -= 1
        else:
            self._limiter.acquire_blocking(self._permit.priority, self._host, slot=False)
        return super().send(request, **kwargs)


# ---- streams ---------------------------------------------------------------------


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


class _StreamRunner:
    """Runs one alpaca-py stream's own coroutine (`_run_forever`, which reconnects
    by itself) on a dedicated event-loop thread, and wraps its connect, dispatch
    and consume steps to know when the connection is up, lost and back."""

    def __init__(
        self,
        channel: str,
        stream: Any,
        emit: Callable[[BrokerEvent], None],
        scrub: _Scrubber,
        is_ready_frame: Callable[[dict], bool],
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
        self._wrap()

    # connectivity transitions (called on the stream's loop thread)

    def _up(self) -> None:
        with self._lock:
            if self._status == "up" or self._stopping:
                return
            reconnected = self._status == "down"
            self._status = "up"
        self.ready.set()
        self._emit(ConnectivityChanged(self.channel, "up", "connected", reconnected=reconnected))

    def _down(self, detail: str) -> None:
        with self._lock:
            if self._status == "down" or self._stopping:
                return
            self._status = "down"
        self.ready.clear()
        self._emit(ConnectivityChanged(self.channel, "down", self._scrub(detail)))

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

    def drop(self) -> None:
        """Close the current connection from our side (alpaca-py reconnects)."""
        loop = self._loop
        ws = getattr(self.stream, "_ws", None)
        if loop is not None and ws is not None:
            asyncio.run_coroutine_threadsafe(ws.close(), loop)


# ---- the broker ---------------------------------------------------------------------


class AlpacaBroker:
    """The Broker protocol over alpaca-py. See the module docstring for threading."""

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials,
        *,
        trading_url: str | None = None,
        data_url: str | None = None,
        trading_stream_url: str | None = None,
        data_stream_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.urls = resolve_urls(
            settings,
            trading_url=trading_url,
            data_url=data_url,
            trading_stream_url=trading_stream_url,
            data_stream_url=data_stream_url,
        )
        self._creds = credentials
        self._scrub = _Scrubber([credentials.key_id, credentials.secret_key])
        b = settings.broker
        self.feed = b.feed
        self.request_timeout = float(b.request_timeout)
        # Backstop for a venue that trickles bytes (requests' timeout is per read).
        self.call_timeout = self.request_timeout * 3 + 1
        self._emit_fn: EmitFn | None = None
        self._pool = ThreadPoolExecutor(max_workers=b.workers, thread_name_prefix="broker-rest")
        self.limiter = OutboundLimiter(
            b.rate_limit_per_minute, max_in_flight=b.workers, on_change=self._on_rate_change
        )
        self._permit = _Permit()
        paper = not settings.is_live
        self._trading = TradingClient(
            credentials.key_id, credentials.secret_key, paper=paper, raw_data=True, url_override=self.urls.trading
        )
        self._data = StockHistoricalDataClient(
            credentials.key_id, credentials.secret_key, raw_data=True, url_override=self.urls.data
        )
        self._configure(self._trading, TRADING)
        self._configure(self._data, DATA)
        self._rest_status = "new"
        self._rest_failures = 0
        self._health_lock = threading.Lock()
        self._trade_stream: _StreamRunner | None = None
        self._data_stream: _StreamRunner | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"AlpacaBroker(trading={self.urls.trading!r}, key={self._creds.masked_key_id!r})"

    # ---- plumbing ------------------------------------------------------------

    def _configure(self, client: Any, host: str) -> None:
        # No resend by alpaca-py: with _retry = 0 RESTClient._one_request raises
        # APIError on the first 429/504 instead of RetryException (see rest.py).
        client._retry = 0
        client._retry_codes = []
        adapter = _VenueAdapter(self.request_timeout, self.limiter, host, self._permit, self.settings.broker.workers)
        client._session.mount("http://", adapter)
        client._session.mount("https://", adapter)
        client._session.hooks["response"].append(self._response_hook(host))

    def _response_hook(self, host: str) -> Callable[..., None]:
        limiter = self.limiter

        def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            limit, remaining, reset = parse_ratelimit_headers(response.headers)
            limiter.observe(host, response.status_code, limit, remaining, reset)

        return hook

    def _emit(self, event: BrokerEvent) -> None:
        fn = self._emit_fn
        if fn is None:
            return
        try:
            fn(event)
        except Exception:  # the Engine's inbox must not break the broker's threads
            log.exception("emit failed for %s", type(event).__name__)

    def _on_rate_change(self, limited: bool, remaining: int | None, reset_at: float | None) -> None:
        self._emit(RateLimitChanged(limited=limited, remaining=remaining, reset_at=reset_at))

    def _in_worker(self, priority: int, fn: Callable[..., Any], args: tuple) -> Any:
        permit = self._permit
        permit.permits, permit.priority = 1, priority
        try:
            return fn(*args)
        finally:
            permit.permits, permit.priority = 0, Priority.QUERY
            self.limiter.release()

    async def _call(self, priority: int, host: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One alpaca-py call: wait for a permit and a worker, run it, bounded in time.
        A call cancelled (or timed out) before its worker picked it up is never sent;
        one already running finishes in its thread and its answer is dropped."""
        await self.limiter.acquire(priority, host)
        try:
            cf = self._pool.submit(self._in_worker, priority, fn, args)
        except RuntimeError:  # pool shut down
            self.limiter.release()
            raise BrokerUnavailable("broker stopped") from None
        try:
            async with asyncio.timeout(self.call_timeout):
                return await asyncio.wrap_future(cf)
        except TimeoutError:
            if cf.cancel():  # never started: its slot is ours to give back
                self.limiter.release()
            raise requests.Timeout(f"no answer within {self.call_timeout:.0f} s") from None
        except asyncio.CancelledError:
            if cf.cancel():
                self.limiter.release()
            raise

    def _note(self, operation: str, failure: _Failure | None, *, ok: bool | None = None) -> None:
        """Report one REST call: RequestFailed (ok or not) and REST health changes."""
        if ok is None:
            ok = failure is None
        self._emit(RequestFailed(operation, "" if failure is None else failure.detail, ok=ok))
        unanswered = failure is not None and failure.unanswered
        event = None
        with self._health_lock:
            if unanswered:
                self._rest_failures += 1
                new = "down" if self._rest_failures >= DOWN_AFTER else "degraded"
                if new != self._rest_status and not (self._rest_status == "down" and new == "degraded"):
                    self._rest_status = new
                    event = ConnectivityChanged("rest", new, failure.detail if failure else "")
            else:
                was = self._rest_status
                self._rest_failures = 0
                if was != "up":
                    self._rest_status = "up"
                    event = ConnectivityChanged("rest", "up", "", reconnected=was in ("down", "degraded"))
        if event is not None:
            self._emit(event)

    async def _query(self, operation: str, fn: Callable[..., Any], *args: Any, host: str = TRADING,
                     priority: int = Priority.QUERY, not_found_ok: bool = False) -> Any:
        """A read: the raw answer, None on 404 when not_found_ok, else BrokerUnavailable."""
        try:
            raw = await self._call(priority, host, fn, *args)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable:
            raise
        except Exception as exc:
            f = _failure(exc, self._scrub)
            if not_found_ok and f.kind == "http" and f.status == 404:
                self._note(operation, None)
                return None
            self._note(operation, f)
            raise BrokerUnavailable(f"{operation}: {f.detail}") from None
        self._note(operation, None)
        return raw

    def _parse(self, operation: str, parse: Callable[[Any], Any], raw: Any) -> Any:
        try:
            return parse(raw)
        except Exception as exc:
            f = _failure(exc, self._scrub)
            self._note(operation + ".parse", f)
            raise BrokerUnavailable(f"{operation}: unreadable answer: {f.message}") from None

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self, emit: EmitFn, symbols: Sequence[str]) -> None:
        """Start the trade stream (and the market-data stream for `symbols`) and wait
        up to request_timeout for the trade stream to listen. Never raises for a
        venue that is down: that shows as ConnectivityChanged(..., "down")."""
        self._emit_fn = emit
        if self._started:
            return
        self._started = True
        ws_params = {"ping_interval": 10, "ping_timeout": 20, "max_queue": 1024, "logger": _ws_log}
        key, secret = self._creds.key_id, self._creds.secret_key

        trade = TradingStream(key, secret, paper=not self.settings.is_live, raw_data=True,
                              url_override=self.urls.trading_stream, websocket_params=dict(ws_params))
        trade.subscribe_trade_updates(self._on_trade_update)
        self._trade_stream = _StreamRunner(
            "trade_stream", trade, self._emit, self._scrub,
            lambda m: m.get("stream") in ("listening", "trade_updates"),
        )
        self._trade_stream.start()

        symbols = [s for s in dict.fromkeys(symbols) if s]
        if symbols:
            data = StockDataStream(key, secret, raw_data=True, feed=DataFeed(self.feed),
                                   websocket_params=dict(ws_params), url_override=self.urls.data_stream)
            data.subscribe_quotes(self._on_quote, *symbols)
            data.subscribe_bars(self._on_bar, *symbols)
            self._data_stream = _StreamRunner(
                "market_data", data, self._emit, self._scrub,
                lambda m: m.get("T") in ("subscription", "q", "b", "t"),
            )
            self._data_stream.start()

        await self.wait_trade_stream(self.request_timeout)

    async def wait_trade_stream(self, timeout: float) -> bool:
        """True once the trade stream listens (False when timeout passed first)."""
        runner = self._trade_stream
        if runner is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not runner.ready.is_set():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        runners = [r for r in (self._trade_stream, self._data_stream) if r is not None]
        if runners:
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in runners))
        self.limiter.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in (self._trading, self._data):
            client._session.close()

    # ---- stream handlers (on the streams' loop threads) -----------------------------------

    async def _on_trade_update(self, msg: dict) -> None:
        data = msg.get("data") if isinstance(msg, dict) else None
        try:
            update = trade_update_from_raw(data or {})
        except Exception as exc:
            self._emit(RequestFailed("trade_stream", self._scrub(f"unreadable trade update: {exc}"), ok=False))
            return
        self._emit(update)

    async def _on_quote(self, msg: dict) -> None:
        try:
            self._emit(quote_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable quote: %s", self._scrub(exc))

    async def _on_bar(self, msg: dict) -> None:
        try:
            self._emit(bar_from_raw(str(msg["S"]), msg))
        except Exception as exc:
            log.debug("unreadable bar: %s", self._scrub(exc))

    # ---- orders ----------------------------------------------------------------------

    def _order_request(self, r: SubmitRequest) -> LimitOrderRequest | MarketOrderRequest:
        """Build alpaca-py's request model. Raises ValueError (nothing sent) when the
        request cannot be expressed."""
        common = dict(
            symbol=r.symbol,
            qty=float(r.qty),
            side=OrderSide(r.side),
            time_in_force=TimeInForce(r.time_in_force),
            client_order_id=r.client_order_id,
            extended_hours=True if r.extended_hours else None,
        )
        if r.order_type == "limit":
            if r.limit_price is None:
                raise ValueError("a limit order needs limit_price")
            return LimitOrderRequest(limit_price=float(r.limit_price), **common)
        if r.order_type == "market":
            return MarketOrderRequest(**common)
        raise ValueError(f"unsupported order type {r.order_type!r}")

    async def submit(self, request: SubmitRequest) -> SubmitOutcome:
        """Send the order once. acked: the venue has it. rejected: a 4xx with an
        Alpaca error body (nothing at the venue). unknown: anything else (timeout,
        connection lost, 5xx, 429, unreadable 2xx, duplicate client_order_id) —
        resolve with lookup(client_order_id), never by sending again.
        Raises ValueError before sending when the request is malformed."""
        order_request = self._order_request(request)
        try:
            raw = await self._call(Priority.SUBMIT, TRADING, self._trading.submit_order, order_request)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("submit", _Failure("other", message=str(exc)))
            return SubmitOutcome("unknown", message=str(exc))
        except Exception as exc:
            f = _failure(exc, self._scrub)
            outcome = self._submit_outcome(f)
            self._note("submit", f)
            return outcome
        try:
            order = order_from_raw(raw)
        except Exception as exc:
            f = _failure(exc, self._scrub)
            self._note("submit", f)
            return SubmitOutcome("unknown", http_status=200, message=f"acknowledged but unreadable: {f.message}")
        self._note("submit", None)
        return SubmitOutcome("acked", order=order, http_status=200)

    @staticmethod
    def _submit_outcome(f: _Failure) -> SubmitOutcome:
        if (
            f.kind == "http"
            and f.status is not None
            and 400 <= f.status < 500
            and f.status not in (408, 429)
            and f.json_body
            and not _is_duplicate_client_order_id(f)
        ):
            return SubmitOutcome("rejected", http_status=f.status, code=f.code, message=f.message)
        return SubmitOutcome("unknown", http_status=f.status, code=f.code, message=f.detail)

    async def lookup(self, client_order_id: str, *, priority: int = Priority.SUBMIT) -> VenueOrder | None:
        """GET /v2/orders:by_client_order_id. None on 404; BrokerUnavailable when the
        venue cannot say (timeout, 5xx, 429, connection)."""
        raw = await self._query("lookup", self._trading.get_order_by_client_id, client_order_id,
                                priority=priority, not_found_ok=True)
        if raw is None:
            return None
        return self._parse("lookup", order_from_raw, raw)

    async def resolve_unknown(
        self, client_order_id: str, attempts: int = 3, backoff: float = 0.5
    ) -> VenueOrder | None:
        """Settle an unknown submit by lookup, never by re-sending. A 404 is asked
        again (the venue may still be processing a request we gave up on) until
        `attempts` answers said so; then None: the venue does not have it.
        Raises BrokerUnavailable when no attempt got an answer."""
        answered_404 = 0
        last_error: BrokerUnavailable | None = None
        for attempt in range(max(1, attempts)):
            if attempt:
                await asyncio.sleep(backoff * (2 ** (attempt - 1)))
            try:
                order = await self.lookup(client_order_id)
            except BrokerUnavailable as exc:
                last_error = exc
                continue
            if order is not None:
                return order
            answered_404 += 1
        if answered_404:
            return None
        raise last_error or BrokerUnavailable(f"lookup {client_order_id}: no answer")

    async def cancel(self, venue_order_id: str, *, attempts: int = 1, backoff: float = 0.5) -> CancelOutcome:
        """DELETE /v2/orders/{id}: sent (204) | not_cancelable (422: already final or
        pending) | not_found (404) | unknown. Unlike a submit, a cancel may be sent
        again: with attempts > 1 an unknown outcome is retried after backoff, 2x backoff..."""
        outcome = await self._cancel_once(venue_order_id)
        for attempt in range(1, max(1, attempts)):
            if outcome.kind != "unknown":
                break
            await asyncio.sleep(backoff * (2 ** (attempt - 1)))
            outcome = await self._cancel_once(venue_order_id)
        return outcome

    async def _cancel_once(self, venue_order_id: str) -> CancelOutcome:
        if not _is_uuid(venue_order_id):
            return CancelOutcome("not_found", "not a venue order id (UUID)")
        try:
            await self._call(Priority.CANCEL, TRADING, self._trading.cancel_order_by_id, venue_order_id)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("cancel", _Failure("other", message=str(exc)))
            return CancelOutcome("unknown", str(exc))
        except Exception as exc:
            f = _failure(exc, self._scrub)
            if f.kind == "http" and f.status == 404:
                self._note("cancel", None)
                return CancelOutcome("not_found", f.message)
            if f.kind == "http" and f.status == 422:
                self._note("cancel", None)
                return CancelOutcome("not_cancelable", f.message)
            self._note("cancel", f)
            return CancelOutcome("unknown", f.detail)
        self._note("cancel", None)
        return CancelOutcome("sent")

    async def cancel_all(self) -> CancelAllOutcome:
        try:
            raw = await self._call(Priority.CANCEL, TRADING, self._trading.cancel_orders)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("cancel_all", _Failure("other", message=str(exc)))
            return CancelAllOutcome(False, message=str(exc))
        except Exception as exc:
            f = _failure(exc, self._scrub)
            self._note("cancel_all", f)
            return CancelAllOutcome(False, message=f.detail)
        results = tuple((str(item.get("id")), int(item.get("status") or 0)) for item in (raw or []))
        self._note("cancel_all", None)
        return CancelAllOutcome(True, results=results)

    async def close_position(self, symbol: str, qty: Decimal | None = None) -> ClosePositionOutcome:
        options = ClosePositionRequest(qty=format(qty, "f")) if qty is not None else None
        try:
            raw = await self._call(Priority.SUBMIT, TRADING, self._trading.close_position, symbol, options)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("close_position", _Failure("other", message=str(exc)))
            return ClosePositionOutcome(symbol, False, message=f"unknown: {exc}")
        except Exception as exc:
            f = _failure(exc, self._scrub)
            if f.kind == "http" and f.status == 404:
                self._note("close_position", None)
                return ClosePositionOutcome(symbol, False, message=f"no position: {f.message}")
            self._note("close_position", f)
            prefix = "refused" if (f.kind == "http" and f.status and f.status < 500 and f.status != 429) else "unknown"
            return ClosePositionOutcome(symbol, False, message=f"{prefix}: {f.detail}")
        try:
            order = order_from_raw(raw)
        except Exception as exc:
            f = _failure(exc, self._scrub)
            self._note("close_position", f)
            return ClosePositionOutcome(symbol, True, message=f"sent; unreadable answer: {f.message}")
        self._note("close_position", None)
        return ClosePositionOutcome(symbol, True, order=order)

    async def list_orders(
        self, status: str = "all", after: datetime | None = None, limit: int = MAX_PAGE
    ) -> list[VenueOrder]:
        """Every order matching, oldest first. Pages of `limit` (<= 500) walk forward
        by submission time; each page is its own rate-limited request, so a cancel
        can go between pages."""
        page_size = max(1, min(int(limit), MAX_PAGE))
        query_status = QueryOrderStatus(status)
        seen: set[str] = set()
        out: list[VenueOrder] = []
        cursor = after
        while True:
            req = GetOrdersRequest(status=query_status, limit=page_size, after=cursor, direction=Sort.ASC)
            raw = await self._query("list_orders", self._trading.get_orders, req)
            page = self._parse("list_orders", lambda rows: [order_from_raw(d) for d in rows], raw or [])
            fresh = [o for o in page if o.id not in seen]
            for o in fresh:
                seen.add(o.id)
            out.extend(fresh)
            if len(page) < page_size:
                break
            if not fresh:
                raise BrokerUnavailable(
                    f"list_orders: more than {page_size} orders share one submission time; cannot page past it"
                )
            # `after` is exclusive: step back a microsecond and drop the repeats, so
            # orders that share the boundary timestamp are not skipped.
            boundary = max(o.submitted_at or o.created_at for o in page)
            cursor = boundary - timedelta(microseconds=1)
        out.sort(key=lambda o: (o.submitted_at or o.created_at, o.created_at))
        return out

    async def get_order(self, venue_order_id: str) -> VenueOrder | None:
        if not _is_uuid(venue_order_id):
            return None
        raw = await self._query("get_order", self._trading.get_order_by_id, venue_order_id, not_found_ok=True)
        if raw is None:
            return None
        return self._parse("get_order", order_from_raw, raw)

    # ---- account, positions, market -------------------------------------------------------

    async def positions(self) -> list[VenuePosition]:
        raw = await self._query("positions", self._trading.get_all_positions)
        return self._parse("positions", lambda rows: [position_from_raw(d) for d in rows], raw or [])

    async def account(self) -> VenueAccount:
        raw = await self._query("account", self._trading.get_account)
        return self._parse("account", account_from_raw, raw)

    async def clock(self) -> VenueClock:
        raw = await self._query("clock", self._trading.get_clock)
        return self._parse("clock", clock_from_raw, raw)

    async def assets(self, symbols: Sequence[str]) -> dict[str, VenueAsset]:
        """Assets by symbol (one request each); symbols the venue does not know are left out."""

        async def one(symbol: str) -> VenueAsset | None:
            raw = await self._query("asset", self._trading.get_asset, symbol, not_found_ok=True)
            return None if raw is None else self._parse("asset", asset_from_raw, raw)

        unique = list(dict.fromkeys(symbols))
        found = await asyncio.gather(*(one(s) for s in unique))
        return {a.symbol: a for a in found if a is not None}

    async def latest_quotes(self, symbols: Sequence[str]) -> dict[str, VenueQuote]:
        unique = list(dict.fromkeys(symbols))
        if not unique:
            return {}
        req = StockLatestQuoteRequest(symbol_or_symbols=unique, feed=DataFeed(self.feed))
        raw = await self._query("latest_quotes", self._data.get_stock_latest_quote, req, host=DATA)
        return self._parse(
            "latest_quotes", lambda d: {s: quote_from_raw(s, q) for s, q in (d or {}).items()}, raw
        )

    async def bars(
        self,
        symbols: Sequence[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: TimeFrame | None = None,
    ) -> dict[str, list[VenueBar]]:
        """Historical bars (1-minute unless timeframe says otherwise); alpaca-py
        follows next_page_token, each page behind its own rate-limit permit."""
        unique = list(dict.fromkeys(symbols))
        if not unique:
            return {}
        req = StockBarsRequest(
            symbol_or_symbols=unique,
            timeframe=timeframe or TimeFrame(1, TimeFrameUnit.Minute),
            start=start,
            end=end,
            feed=DataFeed(self.feed),
        )
        raw = await self._query("bars", self._data.get_stock_bars, req, host=DATA)
        return self._parse(
            "bars", lambda d: {s: [bar_from_raw(s, b) for b in rows] for s, rows in (d or {}).items()}, raw
        )

    # ---- drills / diagnostics ------------------------------------------------------------

    @property
    def connectivity(self) -> dict[str, str]:
        return {
            "rest": self._rest_status,
            "trade_stream": self._trade_stream.status if self._trade_stream else "stopped",
            "market_data": self._data_stream.status if self._data_stream else "stopped",
        }

    def drop_streams(self) -> None:
        """Close the stream connections from the client side (they reconnect)."""
        for runner in (self._trade_stream, self._data_stream):
            if runner is not None:
                runner.drop()
