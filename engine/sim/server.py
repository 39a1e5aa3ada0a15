"""The venue's HTTP + WebSocket server (aiohttp), bound to 127.0.0.1 only.

Routes: Alpaca's Trading API v2 (``/v2/...``), the Market Data API v2
(``/v2/stocks/...``), the trade_updates stream (``/stream``), the msgpack market
data stream (``/v2/iex``, also ``/v2/sip``), and the drill API (``/sim/v1/...``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
from collections import deque
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

import msgpack
from aiohttp import WSMsgType, web

from . import calendar as cal
from .clock import VenueClock
from .core import Venue
from .errors import (CODE_GATEWAY_TIMEOUT, CODE_INTERNAL, CODE_METHOD_NOT_ALLOWED, CODE_NOT_FOUND,
                     CODE_RATE_LIMIT, CODE_TOO_LARGE, CODE_UNAUTHORIZED, CODE_UNAVAILABLE, VenueError,
                     bad_request, unprocessable)
from .faults import Faults, RateLimiter
from .fmt import NY, UTC, dec_str, parse_time, ts, ts_ny
from .prices import Bar, PriceModel, Quote, aggregate, from_ns, to_ns

log = logging.getLogger("engine.sim")

MAX_BODY = 64 * 1024
TRADE_STREAM_PATH = "/stream"
DATA_STREAM_PATHS = ("/v2/iex", "/v2/sip", "/v2/test")
DATA_PREFIX = "/v2/stocks/"
TAPE = {"NASDAQ": "C", "NYSE": "A", "ARCA": "B", "NYSEARCA": "B", "AMEX": "A", "BATS": "B", "OTC": "C"}
DATA_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds",
                 "corrections", "cancelErrors")


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def _error(status: int, code: int, message: str, **extra: Any) -> web.Response:
    return _json_response({"code": code, "message": message, **extra}, status=status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _qbool(value: str | None, field: str) -> bool | None:
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise unprocessable(f"invalid {field}")


def _qtime(value: str | None, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        raise unprocessable(f"invalid {field}") from None


class _Event:
    """A trade update, serialized once however many clients receive it."""

    __slots__ = ("payload", "data")

    def __init__(self, payload: dict) -> None:
        self.payload = payload
        self.data: bytes | None = None

    def bytes(self) -> bytes:
        if self.data is None:
            self.data = json.dumps({"stream": "trade_updates", "data": self.payload},
                                   separators=(",", ":")).encode()
        return self.data


class _StreamClient:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: deque = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closed = False

    def push(self, item: Any) -> None:
        self.queue.append(item)
        self.wake.set()


class _DataClient(_StreamClient):
    def __init__(self, ws: web.WebSocketResponse) -> None:
        super().__init__(ws)
        self.subs: dict[str, set[str]] = {c: set() for c in DATA_CHANNELS}


class SimServer:
    """Owns the venue state, the clock and the aiohttp application."""

    def __init__(self, *, key_id: str, secret_key: str, seed: int = 42, speed: float = 1.0,
                 universe_path: str | None = None, bars_csv: str | None = None,
                 partial_fill_prob: float = 0.10, margin_multiplier: Decimal = Decimal(2),
                 starting_cash: Decimal = Decimal(100000), rate_limit_per_minute: int | None = 200,
                 start_at: datetime | None = None, frozen_clock: bool = False) -> None:
        from .prices import load_bars_csv
        from .universe import load_universe

        if not key_id or not secret_key:
            raise ValueError("key_id and secret_key are required")
        self.key_id = key_id
        self.secret_key = secret_key
        assets = load_universe(universe_path)
        replay = load_bars_csv(bars_csv) if bars_csv else None
        if start_at is None:
            if replay:
                first = min(min(rows) for rows in replay.values())
                start_at = cal.last_open(from_ns(first)) if not cal.is_open(from_ns(first)) \
                    else cal.session(cal.ny_date(from_ns(first)))[0]
                if start_at < from_ns(first) - timedelta(days=5):
                    start_at = cal.next_open(from_ns(first))
            else:
                start_at = cal.last_open(datetime.now(UTC))
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=UTC)
        start_at = start_at.astimezone(UTC)
        self.clock = VenueClock(start_at, speed=speed, frozen=frozen_clock)
        self.model = PriceModel(assets, seed=seed, start=start_at, replay=replay)
        self.venue = Venue(assets=assets, model=self.model, start=start_at, seed=seed, key_id=key_id,
                           partial_fill_prob=partial_fill_prob, margin_multiplier=margin_multiplier,
                           starting_cash=starting_cash)
        self.default_rate_limit = rate_limit_per_minute
        self.faults = Faults()
        self.faults.reset(rate_limit_per_minute)
        self.fault_rng = random.Random(seed ^ 0xFA17)
        self.limiter = RateLimiter()
        self.trade_clients: set[_StreamClient] = set()  # listening to trade_updates
        self.trade_sockets: set[_StreamClient] = set()  # every open trade stream connection
        self.data_clients: set[_DataClient] = set()  # subscribed to something
        self.data_sockets: set[_DataClient] = set()  # every open data stream connection
        self.venue.market_listeners.append(self._on_market)
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
        r.add_get(TRADE_STREAM_PATH, self.trade_stream)
        for p in DATA_STREAM_PATHS:
            r.add_get(p, self.data_stream)
        # trading
        r.add_get("/v2/account", self.get_account)
        r.add_get("/v2/account/configurations", self.get_config)
        r.add_patch("/v2/account/configurations", self.patch_config)
        r.add_post("/v2/orders", self.post_order)
        r.add_get("/v2/orders", self.list_orders)
        r.add_delete("/v2/orders", self.cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self.get_order_by_cid)
        r.add_get("/v2/orders/{order_id}", self.get_order)
        r.add_patch("/v2/orders/{order_id}", self.replace_order)
        r.add_delete("/v2/orders/{order_id}", self.cancel_order)
        r.add_get("/v2/positions", self.list_positions)
        r.add_delete("/v2/positions", self.close_all)
        r.add_get("/v2/positions/{symbol}", self.get_position)
        r.add_delete("/v2/positions/{symbol}", self.close_position)
        r.add_get("/v2/clock", self.get_clock)
        r.add_get("/v2/calendar", self.get_calendar)
        r.add_get("/v2/assets", self.list_assets)
        r.add_get("/v2/assets/{symbol}", self.get_asset)
        # market data
        for kind in ("bars", "quotes", "trades"):
            r.add_get(f"/v2/stocks/{kind}", self._history_handler(kind))
            r.add_get(f"/v2/stocks/{kind}/latest", self._latest_handler(kind))
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}", self._history_handler(kind, single=True))
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}/latest", self._latest_handler(kind, single=True))
        r.add_get("/v2/stocks/snapshots", self.snapshots)
        r.add_get("/v2/stocks/{symbol}/snapshot", self.snapshot_single)
        # drills
        r.add_get("/sim/v1/state", self.drill_state)
        r.add_get("/sim/v1/faults", self.drill_get_faults)
        r.add_post("/sim/v1/faults", self.drill_set_faults)
        r.add_post("/sim/v1/prices/shock", self.drill_shock)
        r.add_post("/sim/v1/prices/set", self.drill_set_price)
        r.add_post("/sim/v1/clock", self.drill_clock)
        r.add_post("/sim/v1/streams/drop", self.drill_drop_streams)
        r.add_post("/sim/v1/reset", self.drill_reset)
        return app

    async def start(self, port: int = 0) -> int:
        self.venue.call_later = lambda delay, fn: asyncio.get_running_loop().call_later(delay, self._run_later, fn)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                    shutdown_timeout=0.5)
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
        self.venue.advance_to(self.clock.now())

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        path = request.path
        if path == TRADE_STREAM_PATH or path in DATA_STREAM_PATHS:
            return await handler(request)
        headers = request.headers
        if headers.get("APCA-API-KEY-ID") != self.key_id or headers.get("APCA-API-SECRET-KEY") != self.secret_key:
            return _error(401, CODE_UNAUTHORIZED, "request is not authorized")
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
                ok, remaining, reset = self.limiter.hit("data" if is_data else "trading", limit)
                rl_headers = {"X-Ratelimit-Limit": str(limit), "X-Ratelimit-Remaining": str(remaining),
                              "X-Ratelimit-Reset": str(reset)}
                if not ok:
                    resp = _error(429, CODE_RATE_LIMIT, "rate limit exceeded")
                    resp.headers.update(rl_headers)
                    return resp
            if in_scope and (f.http_500 or f.http_503 or f.http_504):
                r = self.fault_rng.random()
                if r < f.http_500:
                    return _error(500, CODE_INTERNAL, "internal server error (injected)")
                if r < f.http_500 + f.http_503:
                    return _error(503, CODE_UNAVAILABLE, "service unavailable (injected)")
                if r < f.http_500 + f.http_503 + f.http_504:
                    return _error(504, CODE_GATEWAY_TIMEOUT, "gateway timeout (injected)")
            if in_scope and f.lose_response and request.method in ("POST", "PATCH", "DELETE") \
                    and path.startswith("/v2/orders"):
                lose = self.fault_rng.random() < f.lose_response
        try:
            self.sync()
            resp = await handler(request)
        except VenueError as exc:
            resp = _json_response(exc.body(), status=exc.status)
        except web.HTTPRequestEntityTooLarge:
            resp = _error(413, CODE_TOO_LARGE, f"request body is larger than {MAX_BODY} bytes")
        except web.HTTPMethodNotAllowed:
            resp = _error(405, CODE_METHOD_NOT_ALLOWED, "method not allowed")
        except web.HTTPNotFound:
            resp = _error(404, CODE_NOT_FOUND, "endpoint not found")
        except web.HTTPException as exc:
            resp = _error(exc.status, exc.status * 100000, exc.reason or "error")
        except Exception:
            self.internal_errors += 1
            log.exception("unhandled error on %s %s", request.method, path)
            resp = _error(500, CODE_INTERNAL, "internal server error")
        if lose:
            if f.lose_response_mode == "504":
                resp = _error(504, CODE_GATEWAY_TIMEOUT, "gateway timeout (response lost after the effect)")
            else:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError()
        if rl_headers:
            resp.headers.update(rl_headers)
        return resp

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past MAX_BODY
        if not raw.strip():
            raise bad_request("request body format is invalid")
        try:
            return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise bad_request("request body format is invalid") from None

    # ------------------------------------------------------------------ trading REST
    async def get_account(self, request: web.Request) -> web.Response:
        return _json_response(self.venue.account_json())

    async def get_config(self, request: web.Request) -> web.Response:
        return _json_response(self.venue.config)

    async def patch_config(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        staged = {}
        for key, value in body.items():
            if key in ("fractional_trading", "no_shorting", "suspend_trade", "ptp_no_exception_entry",
                       "disable_overnight_trading"):
                if not isinstance(value, bool):
                    raise unprocessable(f"invalid {key}")
            elif key == "max_margin_multiplier":
                if str(value) not in ("1", "2", "3", "4"):
                    raise unprocessable("max_margin_multiplier must be 1, 2, 3 or 4")
                value = str(value)
            elif key == "trade_confirm_email":
                if value not in ("all", "none"):
                    raise unprocessable("invalid trade_confirm_email")
            elif key in ("dtbp_check", "pdt_check"):
                if value not in ("both", "entry", "exit"):
                    raise unprocessable(f"invalid {key}")
            elif key == "max_options_trading_level":
                if isinstance(value, bool) or value not in (0, 1, 2, 3):
                    raise unprocessable("invalid max_options_trading_level")
                value = int(value)
            else:
                continue  # unknown settings are ignored, as Alpaca does
            staged[key] = value
        self.venue.config.update(staged)
        return _json_response(self.venue.config)

    async def post_order(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return _json_response(self.venue.submit(body))

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status") or "open"
        if status not in ("open", "closed", "all"):
            raise unprocessable("invalid status")
        limit_raw = q.get("limit")
        limit = 50
        if limit_raw:
            try:
                limit = int(limit_raw)
            except ValueError:
                raise unprocessable("invalid limit") from None
            if not 1 <= limit <= 500:
                raise unprocessable("limit must be between 1 and 500")
        direction = (q.get("direction") or "desc").lower()
        if direction not in ("asc", "desc"):
            raise unprocessable("invalid direction")
        side = q.get("side") or None
        if side is not None and side not in ("buy", "sell"):
            raise unprocessable("invalid side")
        _qbool(q.get("nested"), "nested")
        symbols = None
        if q.get("symbols"):
            symbols = {s.strip().upper() for s in q["symbols"].split(",") if s.strip()}
        out = self.venue.list_orders(status=status, limit=limit, after=_qtime(q.get("after"), "after"),
                                     until=_qtime(q.get("until"), "until"), direction=direction,
                                     side=side, symbols=symbols)
        return _json_response(out)

    async def get_order(self, request: web.Request) -> web.Response:
        _qbool(request.query.get("nested"), "nested")
        return _json_response(self.venue.get_order(request.match_info["order_id"]).to_json())

    async def get_order_by_cid(self, request: web.Request) -> web.Response:
        cid = request.query.get("client_order_id")
        if not cid:
            raise unprocessable("client_order_id is required")
        return _json_response(self.venue.get_by_client_id(cid).to_json())

    async def replace_order(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return _json_response(self.venue.replace(request.match_info["order_id"], body))

    async def cancel_order(self, request: web.Request) -> web.Response:
        self.venue.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        return _json_response(self.venue.cancel_all(), status=207)

    async def list_positions(self, request: web.Request) -> web.Response:
        v = self.venue
        return _json_response([v.position_json(v.positions[s]) for s in sorted(v.positions)])

    async def get_position(self, request: web.Request) -> web.Response:
        return _json_response(self.venue.position_json(self.venue.get_position(request.match_info["symbol"])))

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        return _json_response(self.venue.close_position(request.match_info["symbol"], qty=q.get("qty") or None,
                                                        percentage=q.get("percentage") or None))

    async def close_all(self, request: web.Request) -> web.Response:
        cancel = _qbool(request.query.get("cancel_orders"), "cancel_orders") or False
        return _json_response(self.venue.close_all(cancel), status=207)

    async def get_clock(self, request: web.Request) -> web.Response:
        t = self.venue.t
        return _json_response({
            "timestamp": ts_ny(t),
            "is_open": self.venue.market_open,
            "next_open": ts_ny(cal.next_open(t)),
            "next_close": ts_ny(cal.next_close(t)),
        })

    async def get_calendar(self, request: web.Request) -> web.Response:
        q = request.query
        today = cal.ny_date(self.venue.t)
        try:
            start = date.fromisoformat(q["start"][:10]) if q.get("start") else today - timedelta(days=365)
            end = date.fromisoformat(q["end"][:10]) if q.get("end") else today + timedelta(days=365)
        except ValueError:
            raise unprocessable("invalid date: use YYYY-MM-DD") from None
        if (end - start).days > 366 * 30:
            raise unprocessable("date range is too large")
        out = []
        for d in cal.trading_days(start, end):
            close = cal.close_time(d)
            out.append({
                "date": d.isoformat(),
                "open": "09:30",
                "close": close.strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": cal.next_trading_day(d).isoformat(),
            })
        return _json_response(out)

    async def list_assets(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status") or None
        aclass = q.get("asset_class") or None
        exchange = q.get("exchange") or None
        attrs = {a for a in (q.get("attributes") or "").split(",") if a}
        out = []
        for sym in sorted(self.venue.assets):
            a = self.venue.assets[sym]
            if status not in (None, "active"):
                continue
            if aclass not in (None, "us_equity"):
                continue
            if exchange is not None and a.exchange != exchange:
                continue
            j = a.to_json()
            if attrs and not attrs.intersection(j["attributes"]):
                continue
            out.append(j)
        return _json_response(out)

    async def get_asset(self, request: web.Request) -> web.Response:
        return _json_response(self.venue.asset(request.match_info["symbol"]).to_json())

    # ------------------------------------------------------------------ market data REST
    def _symbols(self, request: web.Request, single: bool) -> list[str]:
        if single:
            raw = request.match_info["symbol"]
        else:
            raw = request.query.get("symbols") or ""
        syms = [s.strip().upper() for s in raw.split(",") if s.strip()]
        if not syms:
            raise bad_request("missing symbols")
        if len(syms) > 2000:
            raise bad_request("too many symbols")
        for s in syms:
            if not re.fullmatch(r"[A-Z0-9.\-/]{1,21}", s):
                raise bad_request(f"invalid symbol: {s}")
        # unknown symbols are simply absent from the answer, as at Alpaca
        return [s for s in syms if s in self.model.markets]

    @staticmethod
    def _q_json(m, q: Quote) -> dict:
        return {"t": ts(from_ns(q.t)), "ax": "V", "ap": float(q.ap), "as": q.as_, "bx": "V",
                "bp": float(q.bp), "bs": q.bs, "c": ["R"], "z": TAPE.get(m.asset.exchange, "C")}

    @staticmethod
    def _t_json(m, tr: tuple) -> dict:
        t_ns, p, s, i = tr
        return {"t": ts(from_ns(t_ns)), "x": "V", "p": p, "s": s, "c": ["@"], "i": i,
                "z": TAPE.get(m.asset.exchange, "C")}

    @staticmethod
    def _b_json(b: Bar) -> dict:
        return {"t": ts(from_ns(b.t)), "o": b.o, "h": b.h, "l": b.l, "c": b.c, "v": b.v, "n": b.n, "vw": b.vw}

    @staticmethod
    def _timeframe(raw: str | None) -> tuple[str, int]:
        m = re.fullmatch(r"(\d+)(Min|T|Hour|H|Day|D|Week|W)", raw or "")
        if not m:
            raise bad_request(f"invalid timeframe: {raw}")
        n, unit = int(m.group(1)), m.group(2)
        unit = {"T": "Min", "H": "Hour", "D": "Day", "W": "Week"}.get(unit, unit)
        limits = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1}
        if not 1 <= n <= limits[unit]:
            raise bad_request(f"invalid timeframe: {raw}")
        return unit, n

    def _bucket(self, unit: str, n: int, t_ns: int) -> int:
        if unit == "Min":
            step = n * 60_000_000_000
            return t_ns - t_ns % step
        if unit == "Hour":
            step = n * 3_600_000_000_000
            return t_ns - t_ns % step
        d = cal.ny_date(from_ns(t_ns))
        if unit == "Week":
            d -= timedelta(days=d.weekday())
        return to_ns(datetime.combine(d, datetime.min.time(), NY))

    def _history_handler(self, kind: str, single: bool = False) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            q = request.query
            syms = self._symbols(request, single)
            start = _qtime(q.get("start"), "start")
            end = _qtime(q.get("end"), "end")
            now = self.venue.t
            if start is None:
                start = datetime.combine(cal.ny_date(now), datetime.min.time(), NY).astimezone(UTC)
            if end is None or end > now:
                end = now
            limit = 1000
            if q.get("limit"):
                try:
                    limit = int(q["limit"])
                except ValueError:
                    raise bad_request("invalid limit") from None
                if not 1 <= limit <= 10000:
                    raise bad_request("invalid limit: must be between 1 and 10000")
            sort = q.get("sort") or "asc"
            if sort not in ("asc", "desc"):
                raise bad_request("invalid sort")
            offset = 0
            if q.get("page_token"):
                try:
                    offset = int(base64.urlsafe_b64decode(q["page_token"].encode()).decode())
                    if offset < 0:
                        raise ValueError
                except Exception:
                    raise bad_request("invalid page_token") from None
            s_ns, e_ns = to_ns(start), to_ns(end)
            series: list[tuple[str, list]] = []
            if kind == "bars":
                unit, n = self._timeframe(q.get("timeframe"))
                for sym in sorted(syms):
                    bars = self.model.minute_bars(sym, None if unit != "Min" or n != 1 else s_ns, e_ns)
                    if unit != "Min" or n != 1:
                        groups: dict[int, list[Bar]] = {}
                        for b in bars:
                            groups.setdefault(self._bucket(unit, n, b.t), []).append(b)
                        bars = [aggregate(g, k) for k, g in sorted(groups.items()) if s_ns <= k <= e_ns]
                    series.append((sym, [self._b_json(b) for b in bars]))
            else:
                for sym in sorted(syms):
                    m = self.model.markets[sym]
                    if kind == "quotes":
                        items = [self._q_json(m, x) for x in m.quotes if s_ns <= x.t <= e_ns]
                    else:
                        items = [self._t_json(m, x) for x in m.trades if s_ns <= x[0] <= e_ns]
                    series.append((sym, items))
            if sort == "desc":
                series = [(s, list(reversed(items))) for s, items in series]
            flat = [(s, it) for s, items in series for it in items]
            page = flat[offset:offset + limit]
            out: dict[str, list] = {}
            for s, it in page:
                out.setdefault(s, []).append(it)
            token = None
            if offset + limit < len(flat):
                token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            if single:
                return _json_response({"symbol": syms[0] if syms else request.match_info["symbol"].upper(),
                                       kind: out.get(syms[0], []) if syms else [], "next_page_token": token})
            return _json_response({kind: out, "next_page_token": token})
        return handler

    def _latest_handler(self, kind: str, single: bool = False) -> Callable:
        key = kind
        async def handler(request: web.Request) -> web.Response:
            syms = self._symbols(request, single)
            out = {}
            for sym in syms:
                m = self.model.markets[sym]
                if kind == "quotes":
                    out[sym] = self._q_json(m, m.quote)
                elif kind == "trades":
                    out[sym] = self._t_json(m, (m.last_t, float(m.last_price), m.last_size, m.trade_seq))
                else:
                    out[sym] = self._b_json(self.model.latest_bar(sym))
            if single:
                if not syms:
                    raise VenueError(404, CODE_NOT_FOUND, "symbol not found")
                return _json_response({"symbol": syms[0], key[:-1]: out[syms[0]]})
            return _json_response({key: out})
        return handler

    def _snapshot(self, sym: str) -> dict:
        m = self.model.markets[sym]
        snap = {
            "latestTrade": self._t_json(m, (m.last_t, float(m.last_price), m.last_size, m.trade_seq)),
            "latestQuote": self._q_json(m, m.quote),
            "minuteBar": self._b_json(self.model.latest_bar(sym)),
        }
        daily = self.model.daily_bar(sym)
        if daily is not None:
            snap["dailyBar"] = self._b_json(daily)
        prev = self.model.prev_daily_bar(sym)
        if prev is not None and (daily is None or prev.t != daily.t):
            snap["prevDailyBar"] = self._b_json(prev)
        return snap

    async def snapshots(self, request: web.Request) -> web.Response:
        return _json_response({s: self._snapshot(s) for s in self._symbols(request, False)})

    async def snapshot_single(self, request: web.Request) -> web.Response:
        syms = self._symbols(request, True)
        if not syms:
            raise VenueError(404, CODE_NOT_FOUND, "symbol not found")
        return _json_response({"symbol": syms[0], **self._snapshot(syms[0])})

    # ------------------------------------------------------------------ trade stream
    def _update_listener(self) -> None:
        """Order events are built only while someone listens (they are not replayed)."""
        listening = self._on_trade_event in self.venue.listeners
        if self.trade_clients and not listening:
            self.venue.listeners.append(self._on_trade_event)
        elif not self.trade_clients and listening:
            self.venue.listeners.remove(self._on_trade_event)

    def _on_trade_event(self, payload: dict) -> None:
        if not self.trade_clients:
            return
        ev = _Event(payload)
        dup = self.faults.stream_duplicate
        for c in self.trade_clients:
            c.push(ev)
            if dup and self.fault_rng.random() < dup:
                c.push(ev)

    async def trade_stream(self, request: web.Request) -> web.StreamResponse:
        if self.faults.trade_stream_down:
            return _error(503, CODE_UNAVAILABLE, "trade stream unavailable (injected)")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        client = _StreamClient(ws)
        self.trade_sockets.add(client)
        authed = False
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    data = json.loads(msg.data)
                    if not isinstance(data, dict):
                        raise ValueError
                except (ValueError, UnicodeDecodeError, RecursionError):
                    await self._ws_json(ws, {"stream": "error", "data": {"error_message": "invalid syntax"}})
                    continue
                action = data.get("action")
                inner = data.get("data") if isinstance(data.get("data"), dict) else {}
                if action in ("authenticate", "auth"):
                    key = inner.get("key_id", data.get("key"))
                    secret = inner.get("secret_key", data.get("secret"))
                    if key == self.key_id and secret == self.secret_key:
                        authed = True
                        await self._ws_json(ws, {"stream": "authorization",
                                                 "data": {"status": "authorized", "action": "authenticate"}})
                    else:
                        await self._ws_json(ws, {"stream": "authorization",
                                                 "data": {"status": "unauthorized", "action": "authenticate"}})
                        await ws.close()
                        break
                elif action == "listen":
                    if not authed:
                        await self._ws_json(ws, {"stream": "authorization",
                                                 "data": {"status": "unauthorized", "action": "listen"}})
                        await ws.close()
                        break
                    streams = inner.get("streams")
                    if not isinstance(streams, list):
                        await self._ws_json(ws, {"stream": "error",
                                                 "data": {"error_message": "invalid listen request"}})
                        continue
                    listening = [s for s in streams if s == "trade_updates"]
                    if listening and client not in self.trade_clients:
                        self.trade_clients.add(client)
                        client.task = asyncio.get_running_loop().create_task(self._trade_writer(client))
                    elif not listening and client in self.trade_clients:
                        self.trade_clients.discard(client)
                    self._update_listener()
                    await self._ws_json(ws, {"stream": "listening", "data": {"streams": listening}})
                else:
                    await self._ws_json(ws, {"stream": "error", "data": {"error_message": "unknown action"}})
        finally:
            self.trade_sockets.discard(client)
            self.trade_clients.discard(client)
            self._update_listener()
            client.closed = True
            client.wake.set()
            if client.task:
                client.task.cancel()
        return ws

    async def _ws_json(self, ws: web.WebSocketResponse, obj: dict) -> None:
        await ws.send_bytes(json.dumps(obj).encode())

    async def _trade_writer(self, c: _StreamClient) -> None:
        ws = c.ws
        try:
            while not c.closed:
                await c.wake.wait()
                c.wake.clear()
                batch = list(c.queue)
                c.queue.clear()
                reorder = self.faults.stream_reorder
                if reorder and len(batch) > 1:
                    i = 0
                    while i < len(batch) - 1:
                        if self.fault_rng.random() < reorder:
                            batch[i], batch[i + 1] = batch[i + 1], batch[i]
                            i += 2
                        else:
                            i += 1
                for ev in batch:
                    if ws.closed:
                        return
                    await ws.send_bytes(ev.bytes())
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            self.internal_errors += 1
            log.exception("trade stream writer failed")

    async def _close_client(self, c: _StreamClient, code: int = 1011) -> None:
        c.closed = True
        c.wake.set()
        try:
            await c.ws.close(code=code, message=b"dropped by the venue")
        except Exception:
            pass

    # ------------------------------------------------------------------ data stream
    async def data_stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = _DataClient(ws)
        self.data_sockets.add(client)
        authed = False
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    try:
                        data = msgpack.unpackb(msg.data)
                    except Exception:
                        data = None
                elif msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except (ValueError, RecursionError):
                        data = None
                else:
                    continue
                if not isinstance(data, dict):
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
                    continue
                action = data.get("action")
                if action == "auth":
                    if data.get("key") == self.key_id and data.get("secret") == self.secret_key:
                        authed = True
                        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                    else:
                        await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
                        await ws.close()
                        break
                elif action in ("subscribe", "unsubscribe"):
                    if not authed:
                        await ws.send_bytes(msgpack.packb([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                        continue
                    for ch in DATA_CHANNELS:
                        syms = data.get(ch)
                        if not isinstance(syms, list):
                            continue
                        syms = {str(s).upper() for s in syms}
                        if action == "subscribe":
                            client.subs[ch] |= syms
                        else:
                            client.subs[ch] -= syms
                    if any(client.subs.values()):
                        self.data_clients.add(client)
                        if client.task is None:
                            client.task = asyncio.get_running_loop().create_task(self._data_writer(client))
                    ack = {"T": "subscription"}
                    ack.update({ch: sorted(client.subs[ch]) for ch in DATA_CHANNELS})
                    await ws.send_bytes(msgpack.packb([ack]))
                else:
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 400, "msg": "invalid syntax"}]))
        finally:
            self.data_sockets.discard(client)
            self.data_clients.discard(client)
            client.closed = True
            client.wake.set()
            if client.task:
                client.task.cancel()
        return ws

    def _on_market(self) -> None:
        quotes, trades, bars = self.model.drain()
        if not self.data_clients or not (quotes or trades or bars):
            return
        markets = self.model.markets
        q_msgs = {s: {"T": "q", "S": s, "bx": "V", "bp": float(q.bp), "bs": q.bs, "ax": "V", "ap": float(q.ap),
                      "as": q.as_, "c": ["R"], "z": TAPE.get(markets[s].asset.exchange, "C"),
                      "t": msgpack.Timestamp.from_unix_nano(q.t)} for s, q in quotes.items()}
        for c in self.data_clients:
            out = []
            sq, st, sb = c.subs["quotes"], c.subs["trades"], c.subs["bars"]
            if sq:
                out.extend(m for s, m in q_msgs.items() if s in sq or "*" in sq)
            if st:
                for s, (t_ns, p, size, i) in trades:
                    if s in st or "*" in st:
                        out.append({"T": "t", "S": s, "i": i, "x": "V", "p": p, "s": size, "c": ["@"],
                                    "z": TAPE.get(markets[s].asset.exchange, "C"),
                                    "t": msgpack.Timestamp.from_unix_nano(t_ns)})
            if sb:
                for s, b in bars:
                    if s in sb or "*" in sb:
                        out.append({"T": "b", "S": s, "o": b.o, "h": b.h, "l": b.l, "c": b.c, "v": b.v,
                                    "n": b.n, "vw": b.vw, "t": msgpack.Timestamp.from_unix_nano(b.t)})
            if out:
                c.push(out)

    async def _data_writer(self, c: _DataClient) -> None:
        ws = c.ws
        try:
            while not c.closed:
                await c.wake.wait()
                c.wake.clear()
                batches = list(c.queue)
                c.queue.clear()
                msgs = [m for b in batches for m in b]
                # keep frames well under the client's limits
                for i in range(0, len(msgs), 500):
                    if ws.closed:
                        return
                    await ws.send_bytes(msgpack.packb(msgs[i:i + 500]))
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            self.internal_errors += 1
            log.exception("data stream writer failed")

    # ------------------------------------------------------------------ drills
    def state(self) -> dict:
        v = self.venue
        t = v.t
        return {
            "venue": v.summary(),
            "clock": {"timestamp": ts_ny(t), "is_open": v.market_open, "next_open": ts_ny(cal.next_open(t)),
                      "next_close": ts_ny(cal.next_close(t)), "speed": self.clock.speed,
                      "frozen": self.clock.frozen},
            "faults": self.faults.to_json(),
            "streams": {"trade_clients": len(self.trade_clients), "data_clients": len(self.data_clients),
                        "trade_connections": len(self.trade_sockets), "data_connections": len(self.data_sockets)},
            "requests_served": self.requests_served,
            "internal_errors": self.internal_errors,
            "quotes": {s: {"bp": dec_str(m.quote.bp), "ap": dec_str(m.quote.ap), "last": dec_str(m.last_price)}
                       for s, m in sorted(self.model.markets.items())},
        }

    async def drill_state(self, request: web.Request) -> web.Response:
        return _json_response(self.state())

    async def drill_get_faults(self, request: web.Request) -> web.Response:
        return _json_response(self.faults.to_json())

    def set_faults(self, values: dict) -> dict:
        values = dict(values)
        actions = {k: values.pop(k) for k in ("reset", "drop_trade_stream", "drop_data_stream") if k in values}
        if actions.get("reset"):
            self.faults.reset(self.default_rate_limit)
        try:
            self.faults.update(values)
        except ValueError as exc:
            raise unprocessable(str(exc)) from None
        self.venue.pending_delay = self.faults.pending_ms / 1000.0
        if actions.get("drop_trade_stream") or actions.get("drop_data_stream"):
            self.drop_streams(trade=bool(actions.get("drop_trade_stream")),
                              data=bool(actions.get("drop_data_stream")))
        return self.faults.to_json()

    async def drill_set_faults(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return _json_response(self.set_faults(body))

    def drop_streams(self, trade: bool = True, data: bool = False) -> int:
        clients: list[_StreamClient] = []
        if trade:
            # every connection, also one still in its handshake: a drop is a drop
            clients += list(self.trade_sockets)
            self.trade_sockets.clear()
            self.trade_clients.clear()
            self._update_listener()
        if data:
            clients += list(self.data_sockets)
            self.data_sockets.clear()
            self.data_clients.clear()
        loop = asyncio.get_running_loop()
        for c in clients:
            loop.create_task(self._close_client(c))
        return len(clients)

    async def drill_drop_streams(self, request: web.Request) -> web.Response:
        body = await self._body(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        n = self.drop_streams(trade=bool(body.get("trade", True)), data=bool(body.get("data", False)))
        return _json_response({"dropped": n})

    def _check_symbols(self, symbols: Any) -> list[str] | None:
        if symbols is None:
            return None
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise unprocessable("symbols must be a list of strings or null")
        out = [s.upper() for s in symbols]
        unknown = [s for s in out if s not in self.model.markets]
        if unknown:
            raise unprocessable(f"unknown symbols: {', '.join(unknown)}")
        return out

    def shock(self, symbols: list[str] | None, pct: Any) -> dict:
        syms = self._check_symbols(symbols)
        try:
            p = float(pct)
        except (TypeError, ValueError):
            raise unprocessable("pct must be a number") from None
        if isinstance(pct, bool) or not (-99.0 <= p <= 1000.0):
            raise unprocessable("pct must be between -99 and 1000")
        quotes = self.model.shock(syms, p, self.venue.t)
        self.venue.after_price_change()
        return {"quotes": {s: {"bp": dec_str(q.bp), "ap": dec_str(q.ap)} for s, q in quotes.items()}}

    async def drill_shock(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict) or "pct" not in body:
            raise unprocessable('body must be {"symbols": [...] | null, "pct": number}')
        return _json_response(self.shock(body.get("symbols"), body["pct"]))

    def set_price(self, symbol: str, price: Any = None, bid: Any = None, ask: Any = None) -> dict:
        syms = self._check_symbols([symbol]) if isinstance(symbol, str) else None
        if not syms:
            raise unprocessable("symbol is required")
        sym = syms[0]
        try:
            if bid is not None or ask is not None:
                b, a = Decimal(str(bid)), Decimal(str(ask))
                if not (b.is_finite() and a.is_finite() and 0 < b <= a):
                    raise ValueError
                q = self.model.set_quote(sym, b, a, self.venue.t)
            else:
                p = float(price)
                if not p > 0 or p != p or p == float("inf"):
                    raise ValueError
                q = self.model.set_price(sym, p, self.venue.t)
        except (TypeError, ValueError, ArithmeticError):
            raise unprocessable("give price > 0, or bid and ask with 0 < bid <= ask") from None
        self.venue.after_price_change()
        return {"symbol": sym, "bp": dec_str(q.bp), "ap": dec_str(q.ap)}

    async def drill_set_price(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return _json_response(self.set_price(body.get("symbol"), body.get("price"), body.get("bid"),
                                             body.get("ask")))

    def clock_control(self, body: dict) -> dict:
        allowed = {"advance_seconds", "to", "speed", "frozen"}
        unknown = set(body) - allowed
        if unknown:
            raise unprocessable(f"unknown clock fields: {', '.join(sorted(unknown))}")
        if "frozen" in body:
            if not isinstance(body["frozen"], bool):
                raise unprocessable("frozen must be a boolean")
        if "speed" in body:
            try:
                speed = float(body["speed"])
                if isinstance(body["speed"], bool) or not 0 < speed <= 100000:
                    raise ValueError
            except (TypeError, ValueError):
                raise unprocessable("speed must be a number > 0") from None
        adv = None
        if "advance_seconds" in body:
            try:
                adv = float(body["advance_seconds"])
                if isinstance(body["advance_seconds"], bool) or not 0 <= adv <= 366 * 86400:
                    raise ValueError
            except (TypeError, ValueError):
                raise unprocessable("advance_seconds must be a number between 0 and 31622400") from None
        target = None
        if "to" in body:
            to = body["to"]
            now = self.clock.now()
            if to == "next_open":
                target = cal.next_open(now)
            elif to == "next_close":
                target = cal.next_close(now)
            elif isinstance(to, str):
                try:
                    target = parse_time(to)
                except ValueError:
                    raise unprocessable("to must be next_open, next_close or an RFC 3339 time") from None
                if target < now:
                    raise unprocessable("the venue clock does not go backwards")
            else:
                raise unprocessable("to must be next_open, next_close or an RFC 3339 time")
        if "frozen" in body:
            self.clock.freeze(body["frozen"])
        if "speed" in body:
            self.clock.set_speed(speed)
        if adv:
            self.clock.advance(adv)
        if target is not None:
            self.clock.set(max(target, self.clock.now()))
        self.sync()
        return self.state()["clock"]

    async def drill_clock(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return _json_response(self.clock_control(body))

    async def drill_reset(self, request: web.Request) -> web.Response:
        self.venue.reset()
        return _json_response(self.state()["venue"])
