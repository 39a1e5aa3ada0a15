"""Alpaca's Market Data API v2 routes (``/v2/stocks/...``): bars, quotes and trades
(history and latest), snapshots, from the price model."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from aiohttp import web

from . import calendar as cal
from .errors import CODE_FORBIDDEN, CODE_NOT_FOUND, VenueError, bad_request
from .exchange import Exchange
from .fmt import NY, UTC, ts
from .plan import FREE, SIP_EMBARGO
from .prices import Bar, PriceModel, Quote, aggregate, from_ns, to_ns
from .wire import json_response, query_time

DATA_PREFIX = "/v2/stocks/"
TAPE = {"NASDAQ": "C", "NYSE": "A", "ARCA": "B", "NYSEARCA": "B", "AMEX": "A", "BATS": "B", "OTC": "C"}


class MarketDataRoutes:
    """The market data REST handlers (a part of SimServer)."""

    exchange: Exchange
    model: PriceModel
    plan: str

    def add_market_data_routes(self, r: web.UrlDispatcher) -> None:
        for kind in ("bars", "quotes", "trades"):
            r.add_get(f"/v2/stocks/{kind}", self._history_handler(kind))
            r.add_get(f"/v2/stocks/{kind}/latest", self._latest_handler(kind))
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}", self._history_handler(kind, single=True))
            r.add_get(f"/v2/stocks/{{symbol}}/{kind}/latest", self._latest_handler(kind, single=True))
        r.add_get("/v2/stocks/snapshots", self.snapshots)
        r.add_get("/v2/stocks/{symbol}/snapshot", self.snapshot_single)

    def _check_feed(self, request: web.Request, end: datetime | None = None) -> None:
        """The free plan may query SIP data only older than the embargo (403 otherwise);
        ``end`` None: the request is for the latest data."""
        if request.query.get("feed") != "sip" or self.plan != FREE:
            return
        if end is None or end > self.exchange.t - SIP_EMBARGO:
            raise VenueError(403, CODE_FORBIDDEN, "subscription does not permit querying recent SIP data")

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
        return {
            "t": ts(from_ns(q.t)),
            "ax": "V",
            "ap": float(q.ap),
            "as": q.as_,
            "bx": "V",
            "bp": float(q.bp),
            "bs": q.bs,
            "c": ["R"],
            "z": TAPE.get(m.asset.exchange, "C"),
        }

    @staticmethod
    def _t_json(m, tr: tuple) -> dict:
        t_ns, p, s, i = tr
        return {
            "t": ts(from_ns(t_ns)),
            "x": "V",
            "p": p,
            "s": s,
            "c": ["@"],
            "i": i,
            "z": TAPE.get(m.asset.exchange, "C"),
        }

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
            start = query_time(q.get("start"), "start")
            end = query_time(q.get("end"), "end")
            now = self.exchange.t
            if start is None:
                start = datetime.combine(cal.ny_date(now), datetime.min.time(), NY).astimezone(UTC)
            if end is None or end > now:
                end = now
            self._check_feed(request, end)
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
            page = flat[offset : offset + limit]
            out: dict[str, list] = {}
            for s, it in page:
                out.setdefault(s, []).append(it)
            token = None
            if offset + limit < len(flat):
                token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            if single:
                return json_response(
                    {
                        "symbol": syms[0] if syms else request.match_info["symbol"].upper(),
                        kind: out.get(syms[0], []) if syms else [],
                        "next_page_token": token,
                    }
                )
            return json_response({kind: out, "next_page_token": token})

        return handler

    def _latest_handler(self, kind: str, single: bool = False) -> Callable:
        key = kind

        async def handler(request: web.Request) -> web.Response:
            syms = self._symbols(request, single)
            self._check_feed(request)
            out = {}
            for sym in syms:
                m = self.model.markets[sym]
                if kind == "quotes":
                    out[sym] = self._q_json(m, m.published)
                elif kind == "trades":
                    out[sym] = self._t_json(m, (m.last_t, float(m.last_price), m.last_size, m.trade_seq))
                else:
                    out[sym] = self._b_json(self.model.latest_bar(sym))
            if single:
                if not syms:
                    raise VenueError(404, CODE_NOT_FOUND, "symbol not found")
                return json_response({"symbol": syms[0], key[:-1]: out[syms[0]]})
            return json_response({key: out})

        return handler

    def _snapshot(self, sym: str) -> dict:
        m = self.model.markets[sym]
        snap = {
            "latestTrade": self._t_json(m, (m.last_t, float(m.last_price), m.last_size, m.trade_seq)),
            "latestQuote": self._q_json(m, m.published),
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
        self._check_feed(request)
        return json_response({s: self._snapshot(s) for s in self._symbols(request, False)})

    async def snapshot_single(self, request: web.Request) -> web.Response:
        syms = self._symbols(request, True)
        self._check_feed(request)
        if not syms:
            raise VenueError(404, CODE_NOT_FOUND, "symbol not found")
        return json_response({"symbol": syms[0], **self._snapshot(syms[0])})
