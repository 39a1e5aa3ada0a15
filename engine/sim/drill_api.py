"""The drill API (``/sim/v1/...``): venue state, faults, price shocks and pinned quotes,
stream drops, the venue clock, reset. Also called in-process by SimVenue."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from . import calendar as cal
from .errors import bad_request, unprocessable
from .fmt import dec_str, parse_time, ts_ny
from .prices import QUOTE_SHAPES
from .sim_clock import SimClock
from .streams import StreamClient, StreamRoutes
from .wire import json_body, json_response

# closes in progress, held so the loop does not drop the tasks (asyncio keeps weak references)
_CLOSING: set[asyncio.Task] = set()


class DrillRoutes(StreamRoutes):
    """The drill handlers and their in-process forms (a part of SimServer); drills drive
    the streams, so they build on StreamRoutes."""

    clock: SimClock
    default_rate_limit: int | None
    requests_served: int
    sync: Callable[[], None]  # SimServer.sync: venue time caught up with the clock

    def add_drill_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/sim/v1/state", self.drill_state)
        r.add_get("/sim/v1/faults", self.drill_get_faults)
        r.add_post("/sim/v1/faults", self.drill_set_faults)
        r.add_post("/sim/v1/prices/shock", self.drill_shock)
        r.add_post("/sim/v1/prices/set", self.drill_set_price)
        r.add_post("/sim/v1/quotes/shape", self.drill_quote_shape)
        r.add_post("/sim/v1/clock", self.drill_clock)
        r.add_post("/sim/v1/streams/drop", self.drill_drop_streams)
        r.add_post("/sim/v1/reset", self.drill_reset)
        r.add_post("/sim/v1/account", self.drill_account)
        r.add_post("/sim/v1/assets", self.drill_asset)

    def state(self) -> dict:
        v = self.exchange
        t = v.t
        return {
            "venue": v.summary(),
            "clock": {
                "timestamp": ts_ny(t),
                "is_open": v.market_open,
                "next_open": ts_ny(cal.next_open(t)),
                "next_close": ts_ny(cal.next_close(t)),
                "speed": self.clock.speed,
                "frozen": self.clock.frozen,
            },
            "faults": self.faults.to_json(),
            "plan": self.plan,
            "streams": {
                "trade_clients": len(self.trade_clients),
                "data_clients": len(self.data_clients),
                "trade_connections": len(self.trade_sockets),
                "data_connections": len(self.data_sockets),
                "slots": self.slots.to_json(),
            },
            "requests_served": self.requests_served,
            "internal_errors": self.internal_errors,
            "quotes": {
                s: {"bp": dec_str(m.quote.bp), "ap": dec_str(m.quote.ap), "last": dec_str(m.last_price)}
                for s, m in sorted(self.model.markets.items())
            },
        }

    async def drill_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def drill_get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults.to_json())

    def set_faults(self, values: dict) -> dict:
        values = dict(values)
        actions = {k: values.pop(k) for k in ("reset", "drop_trade_stream", "drop_data_stream") if k in values}
        if actions.get("reset"):
            self.faults.reset(self.default_rate_limit)
        try:
            self.faults.update(values)
        except ValueError as exc:
            raise unprocessable(str(exc)) from None
        self.exchange.pending_delay = self.faults.pending_ms / 1000.0
        if actions.get("drop_trade_stream") or actions.get("drop_data_stream"):
            self.drop_streams(trade=bool(actions.get("drop_trade_stream")), data=bool(actions.get("drop_data_stream")))
        return self.faults.to_json()

    async def drill_set_faults(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.set_faults(body))

    def drop_streams(self, trade: bool = True, data: bool = False, unclean: bool = False) -> int:
        """Close the stream connections now. ``unclean``: cut them as a network failure
        would (no close frame), so their slots stay held for the connection hold time."""
        clients: list[StreamClient] = []
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
            c.cut = unclean
            task = loop.create_task(self._close_client(c))
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)
        return len(clients)

    async def drill_drop_streams(self, request: web.Request) -> web.Response:
        body = await json_body(request) if request.can_read_body else {}
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        unclean = body.get("unclean", False)
        if not isinstance(unclean, bool):
            raise unprocessable("unclean must be a boolean")
        n = self.drop_streams(trade=bool(body.get("trade", True)), data=bool(body.get("data", False)), unclean=unclean)
        return json_response({"dropped": n})

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
        quotes = self.model.shock(syms, p, self.exchange.t)
        self.exchange.after_price_change()
        return {"quotes": {s: {"bp": dec_str(q.bp), "ap": dec_str(q.ap)} for s, q in quotes.items()}}

    async def drill_shock(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict) or "pct" not in body:
            raise unprocessable('body must be {"symbols": [...] | null, "pct": number}')
        return json_response(self.shock(body.get("symbols"), body["pct"]))

    def set_price(self, symbol: Any, price: Any = None, bid: Any = None, ask: Any = None) -> dict:
        syms = self._check_symbols([symbol]) if isinstance(symbol, str) else None
        if not syms:
            raise unprocessable("symbol is required")
        sym = syms[0]
        try:
            if bid is not None or ask is not None:
                b, a = Decimal(str(bid)), Decimal(str(ask))
                if not (b.is_finite() and a.is_finite() and 0 < b <= a):
                    raise ValueError
                q = self.model.set_quote(sym, b, a, self.exchange.t)
            else:
                p = float(price)
                if not p > 0 or p != p or p == float("inf"):
                    raise ValueError
                q = self.model.set_price(sym, p, self.exchange.t)
        except (TypeError, ValueError, ArithmeticError):
            raise unprocessable("give price > 0, or bid and ask with 0 < bid <= ask") from None
        self.exchange.after_price_change()
        return {"symbol": sym, "bp": dec_str(q.bp), "ap": dec_str(q.ap)}

    async def drill_set_price(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.set_price(body.get("symbol"), body.get("price"), body.get("bid"), body.get("ask")))

    def shape_quotes(self, symbol: Any, shape: Any, width_pct: Any = None) -> dict:
        """Make the published quotes of a symbol poor, as IEX quotes can be: ``no_bid`` /
        ``no_ask`` (a side at 0), ``crossed`` (bid above ask), ``wide`` (``width_pct`` of the
        mid, default 20); ``normal`` ends it. Fills still go against the real quote."""
        syms = self._check_symbols([symbol]) if isinstance(symbol, str) else None
        if not syms:
            raise unprocessable("symbol is required")
        if shape not in QUOTE_SHAPES:
            raise unprocessable(f"shape must be one of {', '.join(QUOTE_SHAPES)}")
        width = 20.0
        if width_pct is not None:
            try:
                width = float(width_pct)
                if isinstance(width_pct, bool) or not 0 < width <= 200:
                    raise ValueError
            except (TypeError, ValueError):
                raise unprocessable("width_pct must be a number > 0 and <= 200") from None
        q = self.model.shape_quotes(syms[0], shape, width, self.exchange.t)
        self.exchange.after_price_change()  # publishes it on the stream (the book is unchanged)
        return {"symbol": syms[0], "shape": shape, "bp": dec_str(q.bp), "ap": dec_str(q.ap)}

    async def drill_quote_shape(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.shape_quotes(body.get("symbol"), body.get("shape"), body.get("width_pct")))

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
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.clock_control(body))

    ACCOUNT_STATUSES = ("ACTIVE", "ACCOUNT_UPDATED", "APPROVAL_PENDING", "SUBMITTED", "REJECTED", "ONBOARDING")

    def set_account(self, body: dict) -> dict:
        """Set what Alpaca can set on an account: ``status``, ``account_blocked``,
        ``trading_blocked``. A blocked or inactive account is refused every order (403)."""
        flags = self.exchange.flags
        unknown = set(body) - set(flags)
        if unknown:
            raise unprocessable(f"unknown account fields: {', '.join(sorted(unknown))}")
        for key in ("account_blocked", "trading_blocked"):
            if key in body and not isinstance(body[key], bool):
                raise unprocessable(f"{key} must be a boolean")
        if "status" in body and body["status"] not in self.ACCOUNT_STATUSES:
            raise unprocessable(f"status must be one of {', '.join(self.ACCOUNT_STATUSES)}")
        flags.update(body)
        return dict(flags)

    async def drill_account(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.set_account(body))

    def set_asset(self, body: dict) -> dict:
        """Change a symbol's asset record: ``tradable`` (bool), ``status`` (active |
        inactive). An asset that is not tradable is refused every order (422)."""
        syms = self._check_symbols([body.get("symbol")]) if isinstance(body.get("symbol"), str) else None
        if not syms:
            raise unprocessable("symbol is required")
        changes = {k: v for k, v in body.items() if k != "symbol"}
        if set(changes) - {"tradable", "status"}:
            raise unprocessable("only tradable and status can be changed")
        if "tradable" in changes and not isinstance(changes["tradable"], bool):
            raise unprocessable("tradable must be a boolean")
        if "status" in changes and changes["status"] not in ("active", "inactive"):
            raise unprocessable("status must be active or inactive")
        ex = self.exchange
        asset = dataclasses.replace(ex.assets[syms[0]], **changes)
        ex.assets[asset.symbol] = asset
        ex.assets_by_id[asset.id] = asset
        return asset.to_json()

    async def drill_asset(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        return json_response(self.set_asset(body))

    def reset_account(self, new_account: bool = False) -> dict:
        """Forget orders, positions and cash; ``new_account``: and answer for a new
        account from now on (another id and account number), as a paper-account reset
        at Alpaca does."""
        if new_account:
            self.exchange.account_id = str(uuid.uuid4())
            self.exchange.account_number = "PA" + str(uuid.UUID(self.exchange.account_id).int % 10**10).zfill(10)
        self.exchange.reset()
        return {**self.state()["venue"], "account_number": self.exchange.account_number}

    async def drill_reset(self, request: web.Request) -> web.Response:
        body = await json_body(request) if request.can_read_body else {}
        if not isinstance(body, dict) or not isinstance(body.get("new_account", False), bool):
            raise bad_request('request body format is invalid: {"new_account": true|false} or nothing')
        return json_response(self.reset_account(body.get("new_account", False)))
