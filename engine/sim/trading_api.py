"""Alpaca's Trading API v2 routes (``/v2/account``, ``/v2/orders``, ``/v2/positions``,
``/v2/clock``, ``/v2/calendar``, ``/v2/assets``): parse the request, ask the exchange,
answer in Alpaca's JSON."""

from __future__ import annotations

from datetime import date, timedelta

from aiohttp import web

from . import calendar as cal
from .errors import bad_request, unprocessable
from .exchange import Exchange
from .fmt import ts_ny
from .wire import json_body, json_response, query_bool, query_time


class TradingRoutes:
    """The trading REST handlers (a part of SimServer)."""

    exchange: Exchange

    def add_trading_routes(self, r: web.UrlDispatcher) -> None:
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

    async def get_account(self, request: web.Request) -> web.Response:
        return json_response(self.exchange.account_json())

    async def get_config(self, request: web.Request) -> web.Response:
        return json_response(self.exchange.config)

    async def patch_config(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise bad_request("request body format is invalid")
        staged = {}
        for key, value in body.items():
            if key in (
                "fractional_trading",
                "no_shorting",
                "suspend_trade",
                "ptp_no_exception_entry",
                "disable_overnight_trading",
            ):
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
        self.exchange.config.update(staged)
        return json_response(self.exchange.config)

    async def post_order(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return json_response(self.exchange.submit(body))

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
        query_bool(q.get("nested"), "nested")
        symbols = None
        if q.get("symbols"):
            symbols = {s.strip().upper() for s in q["symbols"].split(",") if s.strip()}
        out = self.exchange.list_orders(
            status=status,
            limit=limit,
            after=query_time(q.get("after"), "after"),
            until=query_time(q.get("until"), "until"),
            direction=direction,
            side=side,
            symbols=symbols,
        )
        return json_response(out)

    async def get_order(self, request: web.Request) -> web.Response:
        query_bool(request.query.get("nested"), "nested")
        return json_response(self.exchange.get_order(request.match_info["order_id"]).to_json())

    async def get_order_by_cid(self, request: web.Request) -> web.Response:
        cid = request.query.get("client_order_id")
        if not cid:
            raise unprocessable("client_order_id is required")
        return json_response(self.exchange.get_by_client_id(cid).to_json())

    async def replace_order(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return json_response(self.exchange.replace(request.match_info["order_id"], body))

    async def cancel_order(self, request: web.Request) -> web.Response:
        self.exchange.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        return json_response(self.exchange.cancel_all(), status=207)

    async def list_positions(self, request: web.Request) -> web.Response:
        v = self.exchange
        return json_response([v.position_json(v.positions[s]) for s in sorted(v.positions)])

    async def get_position(self, request: web.Request) -> web.Response:
        return json_response(self.exchange.position_json(self.exchange.get_position(request.match_info["symbol"])))

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        return json_response(
            self.exchange.close_position(
                request.match_info["symbol"], qty=q.get("qty") or None, percentage=q.get("percentage") or None
            )
        )

    async def close_all(self, request: web.Request) -> web.Response:
        cancel = query_bool(request.query.get("cancel_orders"), "cancel_orders") or False
        return json_response(self.exchange.close_all(cancel), status=207)

    async def get_clock(self, request: web.Request) -> web.Response:
        t = self.exchange.t
        return json_response(
            {
                "timestamp": ts_ny(t),
                "is_open": self.exchange.market_open,
                "next_open": ts_ny(cal.next_open(t)),
                "next_close": ts_ny(cal.next_close(t)),
            }
        )

    async def get_calendar(self, request: web.Request) -> web.Response:
        q = request.query
        today = cal.ny_date(self.exchange.t)
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
            out.append(
                {
                    "date": d.isoformat(),
                    "open": "09:30",
                    "close": close.strftime("%H:%M"),
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": cal.next_trading_day(d).isoformat(),
                }
            )
        return json_response(out)

    async def list_assets(self, request: web.Request) -> web.Response:
        q = request.query
        status = q.get("status") or None
        aclass = q.get("asset_class") or None
        exchange = q.get("exchange") or None
        attrs = {a for a in (q.get("attributes") or "").split(",") if a}
        out = []
        for sym in sorted(self.exchange.assets):
            a = self.exchange.assets[sym]
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
        return json_response(out)

    async def get_asset(self, request: web.Request) -> web.Response:
        return json_response(self.exchange.asset(request.match_info["symbol"]).to_json())
