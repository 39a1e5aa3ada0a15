"""The venue's aiohttp application, bound to 127.0.0.1 only: builds the exchange, the
price model and the clock, assembles the routes (trading_api, market_data_api,
streams, drill_api), and runs the middleware (keys, rate limit, injected faults) and
the ticker that lets venue time move."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from aiohttp import web

from . import calendar as cal
from .drill_api import DrillRoutes
from .errors import (
    CODE_GATEWAY_TIMEOUT,
    CODE_INTERNAL,
    CODE_METHOD_NOT_ALLOWED,
    CODE_NOT_FOUND,
    CODE_RATE_LIMIT,
    CODE_TOO_LARGE,
    CODE_UNAUTHORIZED,
    CODE_UNAVAILABLE,
    VenueError,
)
from .exchange import DEFAULT_MARGIN_MULTIPLIER, Exchange
from .faults import Faults, RequestBuckets
from .fmt import UTC
from .market_data_api import DATA_PREFIX, MarketDataRoutes
from .plan import (
    DEFAULT_CONNECTION_HOLD_SECONDS,
    DEFAULT_PLAN,
    ConnectionSlots,
    check_plan,
)
from .prices import PriceModel, from_ns
from .sim_clock import SimClock
from .streams import (
    DATA_STREAM_PATHS,
    TRADE_STREAM_PATH,
    DataClient,
    StreamClient,
)
from .trading_api import TradingRoutes
from .wire import MAX_BODY, error_response, json_response

log = logging.getLogger("engine.sim")


class SimServer(TradingRoutes, MarketDataRoutes, DrillRoutes):
    """Owns the exchange, the price model, the clock and the aiohttp application."""

    def __init__(
        self,
        *,
        key_id: str,
        secret_key: str,
        seed: int = 42,
        speed: float = 1.0,
        universe_path: str | None = None,
        bars_csv: str | None = None,
        partial_fill_prob: float = 0.10,
        margin_multiplier: Decimal = DEFAULT_MARGIN_MULTIPLIER,
        starting_cash: Decimal = Decimal(100000),
        rate_limit_per_minute: int | None = 200,
        start_at: datetime | None = None,
        frozen_clock: bool = False,
        plan: str = DEFAULT_PLAN,
        connection_hold_seconds: float = DEFAULT_CONNECTION_HOLD_SECONDS,
    ) -> None:
        from .assets import load_universe
        from .prices import load_bars_csv

        if not key_id or not secret_key:
            raise ValueError("key_id and secret_key are required")
        self.key_id = key_id
        self.secret_key = secret_key
        self.plan = check_plan(plan)
        self.slots = ConnectionSlots(connection_hold_seconds)
        assets = load_universe(universe_path)
        replay = load_bars_csv(bars_csv) if bars_csv else None
        if start_at is None:
            if replay:
                first = min(min(rows) for rows in replay.values())
                start_at = (
                    cal.last_open(from_ns(first))
                    if not cal.is_open(from_ns(first))
                    else cal.session(cal.ny_date(from_ns(first)))[0]
                )
                if start_at < from_ns(first) - timedelta(days=5):
                    start_at = cal.next_open(from_ns(first))
            else:
                start_at = cal.last_open(datetime.now(UTC))
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=UTC)
        start_at = start_at.astimezone(UTC)
        self.clock = SimClock(start_at, speed=speed, frozen=frozen_clock)
        self.model = PriceModel(assets, seed=seed, start=start_at, replay=replay)
        self.exchange = Exchange(
            assets=assets,
            model=self.model,
            start=start_at,
            seed=seed,
            key_id=key_id,
            partial_fill_prob=partial_fill_prob,
            margin_multiplier=margin_multiplier,
            starting_cash=starting_cash,
        )
        self.default_rate_limit = rate_limit_per_minute
        self.faults = Faults()
        self.faults.reset(rate_limit_per_minute)
        self.fault_rng = random.Random(seed ^ 0xFA17)
        self.limiter = RequestBuckets()
        self.trade_clients: set[StreamClient] = set()  # listening to trade_updates
        self.trade_sockets: set[StreamClient] = set()  # every open trade stream connection
        self.data_clients: set[DataClient] = set()  # subscribed to something
        self.data_sockets: set[DataClient] = set()  # every open data stream connection
        self.exchange.market_listeners.append(self._on_market)
        self.requests_served = 0
        self.internal_errors = 0  # unhandled exceptions (answered 500): a bug if ever non-zero
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self._ticker: asyncio.Task | None = None
        self.app = self._make_app()

    # ------------------------------------------------------------------ lifecycle
    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        r = app.router
        self.add_stream_routes(r)
        self.add_trading_routes(r)
        self.add_market_data_routes(r)
        self.add_drill_routes(r)
        return app

    async def start(self, port: int = 0) -> int:
        self.exchange.call_later = lambda delay, fn: asyncio.get_running_loop().call_later(delay, self._run_later, fn)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True, backlog=512)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self.port

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for c in list(self.trade_sockets) + list(self.data_sockets):
            await self._close_client(c, code=1001)
        if self.runner:
            await self.runner.cleanup()

    def _run_later(self, fn: Callable[[], None]) -> None:
        self.sync()
        fn()

    async def _tick(self) -> None:
        """Let venue time (and with it prices, fills, the session) move on its own."""
        while True:
            try:
                await asyncio.sleep(0.25)
                if not self.clock.frozen:
                    self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - a bug must not stop the market
                self.internal_errors += 1
                log.exception("venue tick failed")

    def sync(self) -> None:
        self.exchange.advance_to(self.clock.now())

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        path = request.path
        if path == TRADE_STREAM_PATH or path in DATA_STREAM_PATHS:
            return await handler(request)
        headers = request.headers
        if headers.get("APCA-API-KEY-ID") != self.key_id or headers.get("APCA-API-SECRET-KEY") != self.secret_key:
            return error_response(401, CODE_UNAUTHORIZED, "request is not authorized")
        self.requests_served += 1
        drill = path.startswith("/sim/")
        rl_headers: dict[str, str] | None = None
        lose = False
        f = self.faults
        if not drill:
            is_data = path.startswith(DATA_PREFIX)
            in_scope = f.scope == "all" or (f.scope == "data") == is_data
            if in_scope and (f.latency_ms or f.latency_jitter_ms):
                if request.body_exists:
                    # the venue has the whole request before it is slow: a client that
                    # gives up waiting does not undo it (the order still lands)
                    try:
                        await request.read()
                    except Exception:  # too large or cut off: the handler says so
                        pass
                await asyncio.sleep((f.latency_ms + self.fault_rng.uniform(0, f.latency_jitter_ms)) / 1000.0)
            limit = f.rate_limit_per_minute
            if limit is not None:
                ok, remaining, reset = self.limiter.hit(
                    "data" if is_data else "trading", limit, f.rate_limit_window_seconds
                )
                rl_headers = {
                    "X-Ratelimit-Limit": str(limit),
                    "X-Ratelimit-Remaining": str(remaining),
                    "X-Ratelimit-Reset": str(reset),
                }
                if not ok:
                    resp = error_response(429, CODE_RATE_LIMIT, "rate limit exceeded")
                    resp.headers.update(rl_headers)
                    return resp
            if in_scope and (f.http_500 or f.http_503 or f.http_504):
                r = self.fault_rng.random()
                if r < f.http_500:
                    return error_response(500, CODE_INTERNAL, "internal server error (injected)")
                if r < f.http_500 + f.http_503:
                    return error_response(503, CODE_UNAVAILABLE, "service unavailable (injected)")
                if r < f.http_500 + f.http_503 + f.http_504:
                    return error_response(504, CODE_GATEWAY_TIMEOUT, "gateway timeout (injected)")
            if (
                in_scope
                and f.lose_response
                and request.method in ("POST", "PATCH", "DELETE")
                and path.startswith("/v2/orders")
            ):
                lose = self.fault_rng.random() < f.lose_response
        try:
            self.sync()
            resp = await handler(request)
        except VenueError as exc:
            resp = json_response(exc.body(), status=exc.status)
        except web.HTTPRequestEntityTooLarge:
            resp = error_response(413, CODE_TOO_LARGE, f"request body is larger than {MAX_BODY} bytes")
        except web.HTTPMethodNotAllowed:
            resp = error_response(405, CODE_METHOD_NOT_ALLOWED, "method not allowed")
        except web.HTTPNotFound:
            resp = error_response(404, CODE_NOT_FOUND, "endpoint not found")
        except web.HTTPException as exc:
            resp = error_response(exc.status, exc.status * 100000, exc.reason or "error")
        except Exception:
            self.internal_errors += 1
            log.exception("unhandled error on %s %s", request.method, path)
            resp = error_response(500, CODE_INTERNAL, "internal server error")
        if lose:
            if f.lose_response_mode == "504":
                resp = error_response(504, CODE_GATEWAY_TIMEOUT, "gateway timeout (response lost after the effect)")
            else:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError()
        if rl_headers:
            resp.headers.update(rl_headers)
        return resp
