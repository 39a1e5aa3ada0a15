"""AlpacaBroker: the Broker protocol on alpaca-py alone (TradingClient, TradingStream,
StockHistoricalDataClient, StockDataStream), for Alpaca and for the local venue.
This module is the REST client; the venue's words are translated in
engine.broker.wire, the streams run in engine.broker.streams, and requests are
paced by engine.broker.ratelimit.

REST calls block, so they run in a bounded worker pool, each behind the priority
outbound limiter (cancels, then submits, then queries) and with a timeout on every
socket operation. Submits are never re-sent: alpaca-py's own retry is switched off
and every outcome that is not a clear answer is `unknown`, resolved by `lookup`.

For the Engine:
- emit is called from several threads: the Engine's own loop (RequestFailed and
  ConnectivityChanged(REST) right after each REST call), the trade-stream thread
  (TradeUpdate, ConnectivityChanged(TRADE_STREAM)), the market-data thread
  (VenueQuote, VenueBar, ConnectivityChanged(MARKET_DATA)), and worker or timer
  threads (RateLimitChanged). Hand events to the Engine's loop with
  loop.call_soon_threadsafe. TradeUpdates of one stream arrive in stream order.
- submit -> acked | rejected | unknown. For unknown, call lookup(client_order_id)
  (the engine asks again on 404 for a while, since the venue may still be working
  on a request we gave up on); never submit again. A submit cancelled by the
  caller is unknown too (unless it had not left yet).
- cancel -> sent | not_cancelable | not_found | unknown, asked once: a cancel may
  be sent again, and the engine decides when.
- ConnectivityChanged(channel, UP, reconnected=True) means the channel came back
  after being down: the trade stream does not replay, so reconcile then.
  RequestFailed(op, detail, ok, count) comes for every REST call; ok=False for
  timeouts, lost connections, 5xx, 429, unreadable answers and refused orders.
  Successes are counted, not sent one by one: those noted in one turn of the loop
  go out as one RequestFailed(op, ok=True, count=n) per operation at the turn's
  end (call_soon), and always before a failure noted after them (the error
  window sees the outcomes in order).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from alpaca.common.enums import BaseURL, Sort
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from requests.adapters import HTTPAdapter

from engine.broker import streams
from engine.broker.base import (
    MARKET_DATA_OPERATIONS,
    BrokerEvent,
    BrokerUnavailable,
    CancelAllOutcome,
    CancelOutcome,
    CancelOutcomeKind,
    Channel,
    ConnectivityChanged,
    EmitFn,
    LinkStatus,
    OrderQuery,
    RateLimitChanged,
    RequestFailed,
    SubmitOutcome,
    SubmitOutcomeKind,
    SubmitRequest,
    VenueAccount,
    VenueAsset,
    VenueBar,
    VenueClock,
    VenueOrder,
    VenuePosition,
    VenueQuote,
)
from engine.broker.ratelimit import OutboundLimiter, Priority, parse_ratelimit_headers
from engine.broker.wire import (
    Failure,
    Scrubber,
    account_from_raw,
    asset_from_raw,
    bar_from_raw,
    cancel_outcome,
    check_request,
    clock_from_raw,
    failure_of,
    is_uuid,
    order_from_raw,
    order_request,
    position_from_raw,
    quote_from_raw,
    submit_outcome,
)
from engine.config import Credentials, Settings

log = logging.getLogger(__name__)

TRADING = "trading"
DATA = "data"
MAX_PAGE = 500  # GET /v2/orders limit
DOWN_AFTER = 3  # consecutive unanswered REST calls before "rest" is down
# Beyond broker.workers (submits and queries on the wire at once), a worker, an
# HTTP connection and a limiter slot kept for cancels: the kill switch's
# cancel-all leaves at once even while a whole batch of submits is in flight.
CANCEL_SLOTS = 1


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


# ---- requests session plumbing ------------------------------------------------------


class _Withheld(Exception):
    """A submit withdrawn by its caller in the worker, right before it would leave."""


class _Unreadable:
    """A 2xx answer to a submit that could not be parsed (in the worker): what it raised."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class _Malformed(Exception):
    """alpaca-py's request model refused a submit (in the worker, before anything was sent)."""

    def __init__(self, error: ValueError) -> None:
        super().__init__(str(error))
        self.error = error


class _Permit(threading.local):
    """Per worker thread: the permit granted before the call (for its first HTTP
    request) and the priority of the call (for extra pages)."""

    permits: int = 0
    priority: int = Priority.QUERY


def _expire(fut: asyncio.Future) -> None:
    """A call's time is up: its caller stops waiting (a late answer is dropped)."""
    if not fut.done():
        fut.set_exception(TimeoutError())


class _Completions:
    """Answers of the worker threads handed to the loop in batches: a worker appends
    its call's outcome and wakes the loop only when no wake-up is pending, so a
    burst of 53 answers costs a few self-pipe writes and loop wake-ups, not one per
    order (what asyncio.wrap_future does)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future, BaseException | None, Any]] = []

    def put(self, fut: asyncio.Future, exc: BaseException | None, result: Any) -> None:
        with self._lock:
            self._done.append((fut, exc, result))
            if len(self._done) > 1:
                return  # a drain is already on its way
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            pass  # the loop closed: nobody waits for the answer any more

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for fut, exc, result in done:
            if fut.done():
                continue  # the caller gave up (timeout, cancelled)
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)


class _Job:
    """One call for a worker; `state` (under _Workers' lock): queued, running or cancelled."""

    __slots__ = ("args", "fn", "pool", "state")

    QUEUED, RUNNING, CANCELLED = 0, 1, 2

    def __init__(self, pool: _Workers, fn: Callable[..., Any], args: tuple) -> None:
        self.pool, self.fn, self.args, self.state = pool, fn, args, _Job.QUEUED

    def cancel(self) -> bool:
        """True when the call never started and now never will (a cancelled one: True again)."""
        with self.pool.lock:
            if self.state == _Job.RUNNING:
                return False
            self.state = _Job.CANCELLED
            return True


class _Workers:
    """The broker's worker threads: a queue and up to `size` threads, started as calls
    need them (one more whenever more calls wait than idle workers). What the broker
    needs of ThreadPoolExecutor and no more: no concurrent Future (a lock, a condition)
    per call, no idle-semaphore round per submit (~8 us less per call, on the loop
    and in the worker); a call not started yet can be cancelled; shutdown cancels
    what waits and lets the threads end."""

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self.lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # jobs queued and not taken yet
        self._idle = 0  # workers waiting for a job
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Job:
        job = _Job(self, fn, args)
        with self.lock:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._waiting += 1
            start = self._waiting > self._idle and len(self._threads) < self.size
            if start:
                if not self._threads:
                    _at_exit(self)
                t = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}")
                self._threads.append(t)
        if start:
            t.start()
        self._queue.put(job)
        return job

    def _work(self) -> None:
        q, lock = self._queue, self.lock
        while True:
            with lock:
                self._idle += 1
            job = q.get()
            with lock:
                self._idle -= 1
                if job is None:
                    return
                self._waiting -= 1
                if job.state != _Job.QUEUED:
                    continue  # cancelled before a worker took it: never sent
                job.state = _Job.RUNNING
            try:
                job.fn(*job.args)
            except BaseException:  # noqa: BLE001 - the broker's calls report their own outcome
                log.exception("broker worker call failed")
            del job

    def shutdown(self) -> None:
        """Cancel the calls still waiting; each worker ends after its current call."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            threads = len(self._threads)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
                with self.lock:
                    self._waiting -= 1
        for _ in range(threads):
            self._queue.put(None)

    def join(self) -> None:
        for t in list(self._threads):
            if t.is_alive() and t is not threading.current_thread():
                t.join()


def _at_exit(pool: _Workers) -> None:
    """At interpreter exit, as ThreadPoolExecutor does: the waiting calls are cancelled
    and the running ones finish (threading's exit hook runs before the threads are
    joined; a pool already gone is skipped)."""
    ref = weakref.ref(pool)

    def stop() -> None:
        p = ref()
        if p is not None:
            p.shutdown()
            p.join()

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(stop)
        except RuntimeError:  # the interpreter is already exiting
            pass


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


def _environment_once(session: requests.Session, base_url: str) -> None:
    """Read the environment's proxies and CA bundle for base_url once, then stop requests
    reading it per request: with trust_env it scans os.environ (proxies, no_proxy) and
    looks for ~/.netrc on every call (about 0.25 ms of CPU per submit_order on the
    benchmark machine). The values are the same as requests would find (the environment
    of a running desk does not change); .netrc is not consulted (alpaca-py authenticates
    by headers)."""
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"] or {})
    if found["verify"] is not True and found["verify"] is not None:
        session.verify = found["verify"]
    session.trust_env = False


def lean_session(session: requests.Session, base_url: str) -> None:
    """The per-request work requests can do once, for a session of alpaca-py's REST
    client: the environment read once (_environment_once), and the session-wide
    settings alpaca-py never uses (params; proxies when the environment names none)
    set to None, so requests returns the request's own instead of merging two empty
    mappings per call (each merge is a typing.Protocol isinstance check in requests
    2.3x: ~25 us per submit_order). What goes on the wire does not change: alpaca-py
    sends its query as the request's params, and a proxy from the environment stays
    on the session."""
    _environment_once(session, base_url)
    if not session.params:
        session.params = None  # type: ignore[assignment]
    if not session.proxies:
        session.proxies = None  # type: ignore[assignment]


def rest_session(client: Any) -> requests.Session | None:
    """The requests.Session inside an alpaca-py REST client (RESTClient._session: a
    private attribute of alpaca-py, pinned in pyproject.toml), or None when this
    alpaca-py keeps it elsewhere: then the client runs as alpaca-py built it."""
    session = getattr(client, "_session", None)
    return session if isinstance(session, requests.Session) else None


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
        self._scrub = Scrubber([credentials.key_id, credentials.secret_key])
        b = settings.broker
        self.feed = b.feed
        self.request_timeout = float(b.request_timeout)
        # Backstop for a venue that trickles bytes (requests' timeout is per read).
        self.call_timeout = self.request_timeout * 3 + 1
        self._emit_fn: EmitFn | None = None
        # one worker per request on the wire: the pool, the limiter's slots and each
        # client's HTTP connection pool are the same size
        self.in_flight = b.workers + CANCEL_SLOTS
        self._pool = _Workers(self.in_flight, "broker-rest")
        self.limiter = OutboundLimiter(
            b.rate_limit_per_minute,
            max_in_flight=self.in_flight,
            cancel_slots=CANCEL_SLOTS,
            on_change=self._on_rate_change,
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
        self._ok_lock = threading.Lock()
        self._ok_pending: dict[str, int] = {}  # operation -> successes not yet emitted
        self._ok_scheduled = False  # a flush of _ok_pending is on the loop (call_soon)
        self._trade_stream: streams.TradeStreamRunner | None = None
        self._data_stream: streams.DataStreamRunner | None = None
        self._started = False
        self._request_observers: list[Callable[[str], None]] = []
        self._completions: _Completions | None = None  # workers' answers to the loop (batched)

    def observe_requests(self, fn: Callable[[str], None]) -> None:
        """fn(name) is called in the broker's worker right before each alpaca-py call
        leaves (name: the alpaca-py method, e.g. "submit_order", "cancel_orders"):
        for instruments (benchmarks), never for trading logic; it must be quick."""
        self._request_observers.append(fn)

    def __repr__(self) -> str:
        return f"AlpacaBroker(trading={self.urls.trading!r}, key={self._creds.masked_key_id!r})"

    # ---- plumbing ------------------------------------------------------------

    def _configure(self, client: Any, host: str) -> None:
        # No resend by alpaca-py: with _retry = 0 RESTClient._one_request raises
        # APIError on the first 429/504 instead of RetryException (see rest.py).
        client._retry = 0
        client._retry_codes = []
        session = rest_session(client)
        if session is None:
            # an alpaca-py without RESTClient._session: no per-socket timeout (the
            # call's own time limit remains), no rate-limit headers, env read per call
            log.warning("alpaca-py's REST client has no requests session to configure (%s)", host)
            return
        adapter = _VenueAdapter(self.request_timeout, self.limiter, host, self._permit, self.in_flight)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(self._response_hook(host))
        lean_session(session, str(getattr(client._base_url, "value", client._base_url)))

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

    def _run_for(
        self,
        completions: _Completions,
        fut: asyncio.Future,
        priority: int,
        fn: Callable[..., Any],
        args: tuple,
        withhold: Callable[[], bool] | None,
    ) -> None:
        """In a worker: run the call and hand its outcome to the loop (batched)."""
        try:
            result = self._in_worker(priority, fn, args, withhold)
        except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller
            completions.put(fut, exc, None)
        else:
            completions.put(fut, None, result)

    def _completions_for(self, loop: asyncio.AbstractEventLoop) -> _Completions:
        c = self._completions
        if c is None or c.loop is not loop:
            c = self._completions = _Completions(loop)
        return c

    def _in_worker(
        self, priority: int, fn: Callable[..., Any], args: tuple, withhold: Callable[[], bool] | None = None
    ) -> Any:
        permit = self._permit
        permit.permits, permit.priority = 1, priority
        try:
            if withhold is not None and withhold():
                raise _Withheld  # the last moment before the request would leave
            for observer in self._request_observers:
                observer(getattr(fn, "__name__", "call"))
            return fn(*args)
        finally:
            permit.permits, permit.priority = 0, Priority.QUERY
            self.limiter.release()

    async def _call(
        self, priority: int, host: str, fn: Callable[..., Any], *args: Any, withhold: Callable[[], bool] | None = None
    ) -> Any:
        """One alpaca-py call: wait for a permit and a worker, run it, bounded in time.
        A call cancelled (or timed out) before its worker picked it up is never sent;
        one already running finishes in its thread and its answer is dropped."""
        await self.limiter.acquire(priority, host)
        return await self._answer(*self._hand_over(priority, fn, args, withhold))

    def _hand_over(
        self,
        priority: int,
        fn: Callable[..., Any],
        args: tuple,
        withhold: Callable[[], bool] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> tuple[asyncio.Future, _Job]:
        """Give a call whose permit and slot are held to a worker (on the loop's thread,
        or from another one with the loop given: the answer is set on the loop)."""
        loop = loop or asyncio.get_running_loop()
        fut = loop.create_future()
        try:
            cf = self._pool.submit(self._run_for, self._completions_for(loop), fut, priority, fn, args, withhold)
        except RuntimeError:  # pool shut down
            self.limiter.release()
            raise BrokerUnavailable("broker stopped") from None
        return fut, cf

    async def _answer(self, fut: asyncio.Future, cf: _Job) -> Any:
        """The answer of a call handed to a worker, bounded in time."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.call_timeout, _expire, fut)  # lighter than asyncio.timeout per call
        try:
            return await fut
        except TimeoutError:
            if cf.cancel():  # never started: its slot is ours to give back
                self.limiter.release()
            raise requests.Timeout(f"no answer within {self.call_timeout:.0f} s") from None
        except asyncio.CancelledError:
            if cf.cancel():
                self.limiter.release()
            raise
        finally:
            timer.cancel()

    def _flush_ok(self) -> None:
        """Emit the successes counted since the last flush: one RequestFailed per operation."""
        with self._ok_lock:
            pending, self._ok_pending = self._ok_pending, {}
            self._ok_scheduled = False
        for operation, n in pending.items():
            self._emit(RequestFailed(operation, "", ok=True, count=n))

    def _count_ok(self, operation: str) -> None:
        """A success, emitted with the others of this turn of the loop (one message,
        not one per order); at once when not called on a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._emit(RequestFailed(operation, "", ok=True))
            return
        with self._ok_lock:
            self._ok_pending[operation] = self._ok_pending.get(operation, 0) + 1
            if self._ok_scheduled:
                return
            self._ok_scheduled = True
        loop.call_soon(self._flush_ok)

    def _note(self, operation: str, failure: Failure | None) -> None:
        """Report one REST call: RequestFailed (ok or not; successes counted, see the
        module's docstring) and REST health changes. REST health is the trading
        API's: a market-data request's failure is market data's own (its event and
        fallback), never a venue outage."""
        if failure is None:
            self._count_ok(operation)
        else:
            self._flush_ok()  # the successes before it first: the window keeps the order
            self._emit(RequestFailed(operation, failure.detail, ok=False))
        if operation.split(".", 1)[0] in MARKET_DATA_OPERATIONS:
            return
        unanswered = failure is not None and failure.unanswered
        event = None
        with self._health_lock:
            if unanswered:
                self._rest_failures += 1
                new = LinkStatus.DOWN if self._rest_failures >= DOWN_AFTER else LinkStatus.DEGRADED
                if new != self._rest_status and not (self._rest_status == "down" and new == "degraded"):
                    self._rest_status = new
                    event = ConnectivityChanged(Channel.REST, new, failure.detail if failure else "")
            else:
                was = self._rest_status
                self._rest_failures = 0
                if was != "up":
                    self._rest_status = LinkStatus.UP
                    event = ConnectivityChanged(
                        Channel.REST, LinkStatus.UP, "", reconnected=was in ("down", "degraded")
                    )
        if event is not None:
            self._emit(event)

    async def _query(
        self,
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        host: str = TRADING,
        priority: int = Priority.QUERY,
        not_found_ok: bool = False,
    ) -> Any:
        """A read: the raw answer, None on 404 when not_found_ok, else BrokerUnavailable."""
        try:
            raw = await self._call(priority, host, fn, *args)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable:
            raise
        except Exception as exc:
            f = failure_of(exc, self._scrub)
            if not_found_ok and f.is_http(404):
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
            f = failure_of(exc, self._scrub)
            self._note(operation + ".parse", f)
            raise BrokerUnavailable(f"{operation}: unreadable answer: {f.message}") from None

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self, emit: EmitFn, symbols: Sequence[str]) -> None:
        """Start the trade stream (and the market-data stream: minute bars for
        `symbols`, quotes for the first market_data.stream_symbol_limit of them, in
        the order given) and wait up to request_timeout for the trade stream to
        listen. Never raises for a venue that is down: that shows as
        ConnectivityChanged(..., DOWN)."""
        self._emit_fn = emit
        if self._started:
            return
        self._started = True
        key, secret = self._creds.key_id, self._creds.secret_key
        self._trade_stream = streams.trade_updates(
            key,
            secret,
            url=self.urls.trading_stream,
            paper=not self.settings.is_live,
            emit=self._emit,
            scrub=self._scrub,
            hold_seconds=self.settings.market_data.connection_hold,
            keepalive=self.settings.market_data.stream_keepalive,
        )
        self._trade_stream.start()
        symbols = [s for s in dict.fromkeys(symbols) if s]
        if symbols:
            limit = self.settings.market_data.stream_limit(self.feed)
            self._data_stream = streams.market_data(
                key,
                secret,
                url=self.urls.data_stream,
                feed=self.feed,
                symbols=symbols,
                quote_symbols=symbols if limit is None else symbols[:limit],
                emit=self._emit,
                scrub=self._scrub,
                hold_seconds=self.settings.market_data.connection_hold,
                keepalive=self.settings.market_data.stream_keepalive,
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
        self._flush_ok()
        runners = [r for r in (self._trade_stream, self._data_stream) if r is not None]
        if runners:
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in runners))
        self.limiter.close()
        self._pool.shutdown()
        for client in (self._trading, self._data):
            session = rest_session(client)
            if session is not None:
                session.close()

    # ---- orders ----------------------------------------------------------------------

    async def submit(self, request: SubmitRequest, withhold: Callable[[], bool] | None = None) -> SubmitOutcome:
        """Send the order once. acked: the venue has it. rejected: a 4xx with an
        Alpaca error body (nothing at the venue). unknown: anything else (timeout,
        connection lost, 5xx, 429, unreadable 2xx, duplicate client_order_id) —
        resolve with lookup(client_order_id), never by sending again. withheld:
        `withhold()` said True when the request was about to leave (not sent).
        Raises ValueError before sending when the request is malformed."""
        check_request(request)  # what order_request refuses by itself: raised here, before a permit
        trading = self._trading

        def submit_order() -> VenueOrder | _Unreadable:
            # alpaca-py's request model (pydantic, ~10 us) is built and the answer parsed
            # (~7 us) in the worker, not on the engine's loop: the loop's CPU per order is
            # what the batch's last request waits for
            try:
                model = order_request(request)
            except ValueError as exc:
                raise _Malformed(exc) from exc
            raw: Any = trading.submit_order(model)  # a dict: raw_data
            try:
                return order_from_raw(raw)
            except Exception as exc:  # noqa: BLE001 - an answer we cannot read: unknown, looked up
                return _Unreadable(exc)

        try:
            answer = await self._call(Priority.SUBMIT, TRADING, submit_order, withhold=withhold)
        except asyncio.CancelledError:
            raise
        except _Malformed as exc:
            raise exc.error from None  # as if refused before sending: nothing left
        except _Withheld:
            return SubmitOutcome(SubmitOutcomeKind.WITHHELD, message="withheld before it was sent")
        except BrokerUnavailable as exc:
            self._note("submit", Failure("other", message=str(exc)))
            return SubmitOutcome(SubmitOutcomeKind.UNKNOWN, message=str(exc))
        except Exception as exc:
            f = failure_of(exc, self._scrub)
            self._note("submit", f)
            return submit_outcome(f)
        if isinstance(answer, _Unreadable):
            f = failure_of(answer.error, self._scrub)
            self._note("submit", f)
            return SubmitOutcome(
                SubmitOutcomeKind.UNKNOWN, http_status=200, message=f"acknowledged but unreadable: {f.message}"
            )
        self._note("submit", None)
        return SubmitOutcome(SubmitOutcomeKind.ACKED, order=answer, http_status=200)

    async def lookup(self, client_order_id: str) -> VenueOrder | None:
        """GET /v2/orders:by_client_order_id (at a submit's priority). None on 404;
        BrokerUnavailable when the venue cannot say (timeout, 5xx, 429, connection)."""
        raw = await self._query(
            "lookup", self._trading.get_order_by_client_id, client_order_id, priority=Priority.SUBMIT, not_found_ok=True
        )
        if raw is None:
            return None
        return self._parse("lookup", order_from_raw, raw)

    async def cancel(self, venue_order_id: str) -> CancelOutcome:
        """DELETE /v2/orders/{id}, once: sent (204) | not_cancelable (422: already
        final or pending) | not_found (404) | unknown. A cancel may be sent again;
        when to is the caller's decision."""
        if not is_uuid(venue_order_id):
            return CancelOutcome(CancelOutcomeKind.NOT_FOUND, "not a venue order id (UUID)")
        try:
            await self._call(Priority.CANCEL, TRADING, self._trading.cancel_order_by_id, venue_order_id)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("cancel", Failure("other", message=str(exc)))
            return CancelOutcome(CancelOutcomeKind.UNKNOWN, str(exc))
        except Exception as exc:
            f = failure_of(exc, self._scrub)
            outcome = cancel_outcome(f)
            self._note("cancel", f if outcome.kind is CancelOutcomeKind.UNKNOWN else None)
            return outcome
        self._note("cancel", None)
        return CancelOutcome(CancelOutcomeKind.SENT)

    def cancel_all_from_thread(self, loop: asyncio.AbstractEventLoop) -> Coroutine[Any, Any, CancelAllOutcome] | None:
        """The kill switch's cancel-all handed to the cancel worker from the thread its
        command comes from, without waiting for the loop (busy with a batch's answers);
        its outcome is awaited on `loop`. None when the limiter does not grant the
        cancel's permit and slot at once (then cancel_all on the loop, as usual)."""
        if not self.limiter.try_acquire(Priority.CANCEL, TRADING, overtake=True):
            return None
        try:
            handed = self._hand_over(Priority.CANCEL, self._trading.cancel_orders, (), loop=loop)
        except BrokerUnavailable:
            return None
        return self._cancel_all(handed)

    def cancel_all(self) -> Coroutine[Any, Any, CancelAllOutcome]:
        """DELETE /v2/orders. Handed to a worker when this is called, if the limiter
        grants the cancel's permit and slot at once (the kill switch: the request
        leaves before the caller's next step, e.g. the durable write of HALTED, and
        without waiting for a turn of the loop); otherwise when the returned
        coroutine first runs, behind the limiter as any call."""
        handed = None
        if self.limiter.try_acquire(Priority.CANCEL, TRADING, overtake=True):
            try:
                handed = self._hand_over(Priority.CANCEL, self._trading.cancel_orders, ())
            except BrokerUnavailable:
                pass  # stopped: the awaitable's own call says so
        return self._cancel_all(handed)

    async def _cancel_all(self, handed: tuple[asyncio.Future, _Job] | None) -> CancelAllOutcome:
        try:
            if handed is not None:
                raw = await self._answer(*handed)
            else:
                raw = await self._call(Priority.CANCEL, TRADING, self._trading.cancel_orders)
        except asyncio.CancelledError:
            raise
        except BrokerUnavailable as exc:
            self._note("cancel_all", Failure("other", message=str(exc)))
            return CancelAllOutcome(False, message=str(exc))
        except Exception as exc:
            f = failure_of(exc, self._scrub)
            self._note("cancel_all", f)
            return CancelAllOutcome(False, message=f.detail)
        results = tuple((str(item.get("id")), int(item.get("status") or 0)) for item in (raw or []))
        self._note("cancel_all", None)
        return CancelAllOutcome(True, results=results)

    async def list_orders(
        self, status: OrderQuery = "all", after: datetime | None = None, *, limit: int = MAX_PAGE
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
        return self._parse("latest_quotes", lambda d: {s: quote_from_raw(s, q) for s, q in (d or {}).items()}, raw)

    async def bars(
        self, symbols: Sequence[str], start: datetime, end: datetime | None = None
    ) -> dict[str, list[VenueBar]]:
        """Historical 1-minute bars; alpaca-py follows next_page_token, each page
        behind its own rate-limit permit."""
        unique = list(dict.fromkeys(symbols))
        if not unique:
            return {}
        req = StockBarsRequest(
            symbol_or_symbols=unique,
            timeframe=TimeFrame(1, TimeFrameUnit.Minute),
            start=start,
            end=end,
            feed=DataFeed(self.feed),
        )
        raw = await self._query("bars", self._data.get_stock_bars, req, host=DATA)
        return self._parse(
            "bars", lambda d: {s: [bar_from_raw(s, b) for b in rows] for s, rows in (d or {}).items()}, raw
        )

    # ---- streams ------------------------------------------------------------------------------

    def _runner(self, channel: Channel) -> streams.StreamRunner | None:
        return self._trade_stream if channel is Channel.TRADE_STREAM else self._data_stream

    async def stream_quotes(self, symbols: Sequence[str]) -> None:
        """Stream quotes for exactly `symbols` from now on (minute bars stay for all)."""
        if self._data_stream is not None:
            await self._data_stream.set_quotes(symbols)

    def stream_silence(self, channel: Channel) -> float | None:
        runner = self._runner(channel)
        return None if runner is None else runner.silent_for()

    def restart_stream(self, channel: Channel, reason: str) -> bool:
        runner = self._runner(channel)
        return runner is not None and runner.restart(reason)

    def stream_up_since(self, channel: Channel) -> float | None:
        runner = self._runner(channel)
        return None if runner is None else runner.up_since

    def trade_update_heard(self, venue_order_id: str | None = None) -> float | None:
        runner = self._trade_stream
        return None if runner is None else runner.heard(venue_order_id)

    # ---- diagnostics ------------------------------------------------------------------------

    @property
    def connectivity(self) -> dict[str, str]:
        return {
            "rest": self._rest_status,
            "trade_stream": self._trade_stream.status if self._trade_stream else "stopped",
            "market_data": self._data_stream.status if self._data_stream else "stopped",
        }
