"""Seeded market: a quote, trades and minute bars per symbol.

Each symbol follows a geometric random walk with its own annualised volatility
(from the universe file) during the regular session, on its own seeded random
stream; the quote is the mid rounded to the tick with a spread of a few basis
points, and every step prints one trade at the bid, the ask or the rounded mid.
Minute bars aggregate those trades. Alternatively a minute-bar CSV is replayed:
the price walks open -> high/low -> low/high -> close inside each minute and the
finalized bar is the CSV bar itself.

Prices move only while the regular session is open. Times are venue times.
"""

from __future__ import annotations

import csv
import math
import random
import zlib
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from . import calendar as cal
from .assets import Asset, generic_asset
from .fmt import UTC, parse_time

SECONDS_PER_YEAR = 252 * 6.5 * 3600
MAX_STEP = 15.0  # seconds of venue time per price step
HISTORY_MAXLEN = 2000  # quotes / trades kept per symbol for the REST history
_CENT = Decimal("0.01")
_SIZES = (1, 5, 10, 25, 50, 100, 100, 100, 200, 300, 500)
_SUBCENT = Decimal("0.0001")


def tick_for(price: float) -> tuple[float, Decimal]:
    return (0.01, _CENT) if price >= 1.0 else (0.0001, _SUBCENT)


def to_ns(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def from_ns(ns: int) -> datetime:
    s, rem = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(s, UTC).replace(microsecond=rem // 1000)


@dataclass
class Quote:
    t: int  # ns since epoch
    bp: Decimal
    bs: int
    ap: Decimal
    as_: int


class Bar(NamedTuple):
    """A minute (or daily) bar. A tuple of numbers, never changed once made: the
    collector stops tracking such tuples after their first pass, so the tens of
    thousands of history bars a venue holds do not lengthen its full collections
    (a dataclass instance stays tracked: 43k bars made a gen-2 pass ~20 ms, in the
    middle of a batch of orders)."""

    t: int  # ns, start of the interval
    o: float
    h: float
    l: float
    c: float
    v: int
    n: int
    vw: float


#: a Bar's fields as a plain tuple (how the history is held: see ensure_history)
BarRow = tuple[int, float, float, float, float, int, int, float]
_bar_t = itemgetter(0)  # a Bar's or a BarRow's start
_MINUTE = timedelta(minutes=1)
_MINUTE_NS = 60_000_000_000


@dataclass
class _Acc:
    """Accumulates trades into a bar."""

    t: int
    o: float = 0.0
    h: float = 0.0
    l: float = 0.0
    c: float = 0.0
    v: int = 0
    n: int = 0
    pv: float = 0.0

    def add(self, p: float, s: int) -> None:
        if self.n == 0:
            self.o = self.h = self.l = p
        else:
            if p > self.h:
                self.h = p
            if p < self.l:
                self.l = p
        self.c = p
        self.v += s
        self.n += 1
        self.pv += p * s

    def bar(self) -> Bar:
        vw = round(self.pv / self.v, 6) if self.v else self.c
        return Bar(self.t, self.o, self.h, self.l, self.c, self.v, self.n, vw)


@dataclass
class SymbolMarket:
    asset: Asset
    rng: random.Random
    mid: float
    spread_bps: float
    quote: Quote
    last_price: Decimal
    last_size: int = 100
    last_t: int = 0
    trade_seq: int = 0
    lastday_close: Decimal = Decimal(0)
    minute: _Acc | None = None
    day: _Acc | None = None
    prev_day: Bar | None = None
    bars: list[Bar] = field(default_factory=list)  # finalized minute bars since start
    history: list[BarRow] | None = None  # backfilled minute bars before start (lazy; plain tuples)
    quotes: deque = field(default_factory=lambda: deque(maxlen=HISTORY_MAXLEN))
    trades: deque = field(default_factory=lambda: deque(maxlen=HISTORY_MAXLEN))
    replay: dict[int, tuple[float, float, float, float, int]] | None = None  # minute ns -> ohlcv
    shape: tuple[str, float] | None = None  # published quotes made poor (drill): (shape, width %)
    shown: Quote | None = None  # the last published quote when it differs from ``quote``

    @property
    def published(self) -> Quote:
        """The quote market data shows (``quote`` is what orders fill against)."""
        return self.shown if self.shown is not None else self.quote

    @property
    def symbol(self) -> str:
        return self.asset.symbol


def _symbol_seed(seed: int, symbol: str) -> int:
    return (seed * 1_000_003) ^ zlib.crc32(symbol.encode())


def load_bars_csv(path: str | Path) -> dict[str, dict[int, tuple[float, float, float, float, int]]]:
    """Read minute bars: columns timestamp,symbol,open,high,low,close,volume (aliases t,S,o,h,l,c,v)."""
    aliases = {
        "timestamp": "t",
        "time": "t",
        "t": "t",
        "date": "t",
        "datetime": "t",
        "symbol": "S",
        "s": "S",
        "ticker": "S",
        "open": "o",
        "o": "o",
        "high": "h",
        "h": "h",
        "low": "l",
        "l": "l",
        "close": "c",
        "c": "c",
        "volume": "v",
        "v": "v",
    }
    out: dict[str, dict[int, tuple[float, float, float, float, int]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ValueError(f"{path}: empty CSV")
        cols = {}
        for name in reader.fieldnames:
            key = aliases.get(name.strip().lower()) if name.strip() != "S" else "S"
            if key:
                cols[key] = name
        missing = [k for k in ("t", "S", "o", "h", "l", "c") if k not in cols]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (need timestamp,symbol,open,high,low,close[,volume])")
        for lineno, row in enumerate(reader, start=2):
            try:
                raw_t = row[cols["t"]].strip()
                if raw_t.replace(".", "", 1).isdigit():
                    t = datetime.fromtimestamp(float(raw_t), UTC)
                else:
                    t = parse_time(raw_t)
                o, h, l, c = (float(row[cols[k]]) for k in ("o", "h", "l", "c"))
                v = int(float(row[cols["v"]])) if "v" in cols and row[cols["v"]] else 0
                sym = row[cols["S"]].strip().upper()
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
            if not sym or min(o, h, l, c) <= 0 or h < max(o, c, l) or l > min(o, c):
                raise ValueError(f"{path}:{lineno}: inconsistent bar")
            minute = to_ns(t.replace(second=0, microsecond=0))
            out.setdefault(sym, {})[minute] = (o, h, l, c, v)
    if not out:
        raise ValueError(f"{path}: no bars")
    return out


class PriceModel:
    def __init__(
        self,
        assets: dict[str, Asset],
        seed: int,
        start: datetime,
        replay: dict[str, dict[int, tuple]] | None = None,
        history_days: int = 2,
    ) -> None:
        self.seed = seed
        self.start = start
        self.history_days = history_days
        self.assets = assets
        self.markets: dict[str, SymbolMarket] = {}
        self.t = start
        start_ns = to_ns(start)
        replay = replay or {}
        for sym in replay:
            if sym not in assets:
                first = replay[sym][min(replay[sym])]
                assets[sym] = generic_asset(sym, Decimal(str(first[0])))
        for sym, asset in assets.items():
            rng = random.Random(_symbol_seed(seed, sym))
            price = float(asset.price)
            rp = replay.get(sym)
            if rp:
                keys = [k for k in sorted(rp) if k <= start_ns]
                price = rp[keys[-1]][3] if keys else rp[min(rp)][0]
            spread_bps = 0.5 + 2.0 * asset.volatility
            m = SymbolMarket(
                asset=asset,
                rng=rng,
                mid=price,
                spread_bps=spread_bps,
                quote=Quote(start_ns, Decimal(0), 0, Decimal(0), 0),
                last_price=Decimal(0),
                replay=rp,
            )
            m.quote = self._make_quote(m, start_ns)
            m.last_price = self._round(price)
            m.last_t = start_ns
            m.lastday_close = m.last_price
            self.markets[sym] = m
        # emission buffers, drained by the server after every advance
        self.out_quotes: dict[str, Quote] = {}
        self.out_trades: list[tuple[str, tuple]] = []
        self.out_bars: list[tuple[str, Bar]] = []

    # ------------------------------------------------------------------ quoting
    @staticmethod
    def _round(price: float) -> Decimal:
        tick_f, tick_d = tick_for(price)
        return Decimal(max(1, round(price / tick_f))) * tick_d

    def _make_quote(self, m: SymbolMarket, t_ns: int) -> Quote:
        tick_f, tick_d = tick_for(m.mid)
        rng = m.rng
        spread_ticks = max(1, round(m.mid * m.spread_bps / 1e4 / tick_f)) + (1 if rng.random() < 0.3 else 0)
        bid_ticks = max(1, math.floor(m.mid / tick_f - spread_ticks / 2.0))
        bid = Decimal(bid_ticks) * tick_d
        ask = Decimal(bid_ticks + spread_ticks) * tick_d
        r = rng.random  # random() is several times cheaper than randint()
        return Quote(t_ns, bid, int(r() * 8 + 1) * 100, ask, int(r() * 8 + 1) * 100)

    def _print_trade(self, m: SymbolMarket, t_ns: int, price: Decimal | None = None) -> None:
        q = m.quote
        if price is not None:
            p = price
        else:
            r = m.rng.random()
            if r < 0.4:
                p = q.bp
            elif r < 0.8:
                p = q.ap
            else:
                p = self._round((float(q.bp) + float(q.ap)) / 2)
        size = _SIZES[int(m.rng.random() * len(_SIZES))]
        m.trade_seq += 1
        m.last_price = p
        m.last_size = size
        m.last_t = t_ns
        pf = float(p)
        trade = (t_ns, pf, size, m.trade_seq)
        m.trades.append(trade)
        self.out_trades.append((m.symbol, trade))
        if m.minute is not None:
            m.minute.add(pf, size)
        if m.day is not None:
            m.day.add(pf, size)

    # ------------------------------------------------------------------ stepping
    def session_open(self, t: datetime) -> None:
        t_ns = to_ns(t)
        for m in self.markets.values():
            if m.day is not None and m.day.n:
                m.prev_day = m.day.bar()
            m.day = _Acc(t=to_ns(datetime.combine(cal.ny_date(t), datetime.min.time(), cal.NY)))
            m.minute = _Acc(t=t_ns)

    def session_close(self, t: datetime) -> None:
        for m in self.markets.values():
            self._roll_minute(m)
            m.minute = None
            m.lastday_close = m.last_price

    def _roll_minute(self, m: SymbolMarket) -> None:
        acc = m.minute
        if acc is None:
            return
        if m.replay and acc.t in m.replay:
            o, h, l, c, v = m.replay[acc.t]
            bar = Bar(acc.t, o, h, l, c, v, max(acc.n, 1), round((h + l + c) / 3, 6))
        elif acc.n:
            bar = acc.bar()
        else:
            return
        m.bars.append(bar)
        self.out_bars.append((m.symbol, bar))

    def roll_minute(self, boundary: datetime) -> None:
        """Finalize the minute ending at ``boundary`` and start the next one."""
        b_ns = to_ns(boundary)
        for m in self.markets.values():
            self._roll_minute(m)
            m.minute = _Acc(t=b_ns)

    def _replay_price(self, m: SymbolMarket, t_ns: int) -> float | None:
        minute = t_ns - t_ns % 60_000_000_000
        row = m.replay.get(minute) if m.replay else None
        if row is None:
            return None
        o, h, l, c, _ = row
        frac = (t_ns - minute) / 60e9
        pts = (o, l, h, c) if c >= o else (o, h, l, c)
        x = frac * 3
        i = min(int(x), 2)
        return pts[i] + (pts[i + 1] - pts[i]) * (x - i)

    def step(self, dt: float, t: datetime) -> None:
        """Move every symbol by ``dt`` seconds of session time, ending at ``t``."""
        t_ns = to_ns(t)
        stamp = t_ns - 1000 if t_ns % 60_000_000_000 == 0 else t_ns
        scale = math.sqrt(max(dt, 0.0) / SECONDS_PER_YEAR)
        out_quotes = self.out_quotes
        for sym, m in self.markets.items():
            if m.replay:
                rp = self._replay_price(m, stamp)
                if rp is not None:  # between bars of the file the price holds
                    m.mid = rp
            else:
                m.mid *= math.exp(m.asset.volatility * scale * m.rng.gauss(0.0, 1.0))
            m.quote = q = self._make_quote(m, stamp)
            if m.shape is None:
                m.quotes.append(q)
                out_quotes[sym] = q
            else:
                self._publish(sym, m)
            self._print_trade(m, stamp)
        self.t = t

    # ------------------------------------------------------------------ drills
    def shock(self, symbols: list[str] | None, pct: float, t: datetime) -> dict[str, Quote]:
        t_ns = to_ns(t)
        out = {}
        for sym in symbols if symbols is not None else list(self.markets):
            m = self.markets[sym]
            m.mid = max(m.mid * (1.0 + pct / 100.0), 0.0001)
            m.quote = self._make_quote(m, t_ns)
            self._publish(sym, m)
            self._print_trade(m, t_ns)
            out[sym] = m.quote
        return out

    def set_price(self, symbol: str, price: float, t: datetime) -> Quote:
        m = self.markets[symbol]
        m.mid = float(price)
        t_ns = to_ns(t)
        m.quote = self._make_quote(m, t_ns)
        self._publish(symbol, m)
        self._print_trade(m, t_ns)
        return m.quote

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, t: datetime) -> Quote:
        """Pin an exact quote and a trade at its mid (tests, drills); the walk continues from there."""
        m = self.markets[symbol]
        t_ns = to_ns(t)
        m.mid = (float(bid) + float(ask)) / 2
        m.quote = Quote(t_ns, bid, 100, ask, 100)
        self._publish(symbol, m)
        # the last trade prints at the mid (rounded to the tick), so marks are predictable too
        self._print_trade(m, t_ns, self._round(m.mid))
        return m.quote

    def _publish(self, symbol: str, m: SymbolMarket) -> Quote:
        """Show ``m.quote`` on the tape (history, stream), made poor if the symbol is shaped."""
        q = m.quote
        if m.shape is not None:
            q = m.shown = _poor_quote(q, *m.shape)
        else:
            m.shown = None
        m.quotes.append(q)
        self.out_quotes[symbol] = q
        return q

    def shape_quotes(self, symbol: str, shape: str, width_pct: float, t: datetime) -> Quote:
        """From now on publish poor quotes for ``symbol`` (``normal`` ends it); publishes one now."""
        m = self.markets[symbol]
        m.shape = None if shape == "normal" else (shape, float(width_pct))
        q = m.quote
        m.quote = Quote(to_ns(t), q.bp, q.bs, q.ap, q.as_)
        return self._publish(symbol, m)

    # ------------------------------------------------------------------ history
    def ensure_history(self, symbol: str) -> list[BarRow]:
        """Minute bars of the ``history_days`` sessions before the start (lazy, seeded),
        as plain tuples in Bar's field order: the collector stops tracking a plain tuple
        of numbers after its first pass (not a Bar, a tuple subclass), so the tens of
        thousands of them a venue holds do not lengthen its full collections (as Bars,
        43k of them made a gen-2 pass ~20 ms, landing in the middle of a batch)."""
        m = self.markets[symbol]
        if m.history is not None:
            return m.history
        start = self.start
        days: list[tuple[datetime, datetime]] = []
        d = cal.ny_date(start)
        o, c = cal.session(d) if cal.is_trading_day(d) else (None, None)
        if o is not None and c is not None and o < start:
            days.append((o, min(c, start)))
        while len(days) < self.history_days + (1 if days else 0):
            d = cal.prev_trading_day(d)
            days.append(cal.session(d))
        days.reverse()
        minutes: list[int] = []
        for o, c in days:  # (o stays the last session's open: used below)
            # the minutes o, o + 1 min, ... before c (UTC datetimes: exact arithmetic)
            count = -(-(c - o) // _MINUTE)
            first = to_ns(o)
            minutes.extend(range(first, first + max(count, 0) * _MINUTE_NS, _MINUTE_NS))
        rng = random.Random(_symbol_seed(self.seed, symbol) ^ 0x5EED)
        gauss, randint = rng.gauss, rng.randint
        sigma = m.asset.volatility * math.sqrt(15.0 / SECONDS_PER_YEAR)
        # walk forward in log space, then anchor the last close to the start price
        # (the same draws in the same order as ever: four steps, then volume and count)
        logp = 0.0
        raw = []
        for t_ns in minutes:
            p0 = logp
            p1 = p0 + sigma * gauss(0.0, 1.0)
            p2 = p1 + sigma * gauss(0.0, 1.0)
            p3 = p2 + sigma * gauss(0.0, 1.0)
            logp = p3 + sigma * gauss(0.0, 1.0)
            raw.append((t_ns, (p0, p1, p2, p3, logp), randint(20, 400) * 100, randint(10, 200)))
        anchor = math.log(float(m.lastday_close if not m.bars else m.bars[0].o) or float(m.asset.price)) - logp
        exp = math.exp
        bars = []
        for t_ns, pts, v, n in raw:
            ps = []
            for p in pts:
                e = exp(p + anchor)
                ps.append(round(e, 2 if e >= 1 else 4))
            bars.append((t_ns, ps[0], max(ps), min(ps), ps[-1], v, n, round(sum(ps) / len(ps), 4)))
        m.history = bars
        if m.prev_day is None and bars:
            # the last full session before the start is the previous daily bar
            last_day = cal.ny_date(from_ns(bars[-1][0]))
            if o is not None and o < start:
                last_day = cal.prev_trading_day(cal.ny_date(start))
            # its bars: those from its New York midnight to the next (bars are in time order)
            lo_ns = to_ns(datetime.combine(last_day, datetime.min.time(), cal.NY))
            hi_ns = to_ns(datetime.combine(last_day + timedelta(days=1), datetime.min.time(), cal.NY))
            lo, hi = bisect_left(bars, lo_ns, key=_bar_t), bisect_left(bars, hi_ns, key=_bar_t)
            day_bars = [Bar._make(b) for b in bars[lo:hi]]
            if day_bars:
                m.prev_day = aggregate(day_bars, to_ns(datetime.combine(last_day, datetime.min.time(), cal.NY)))
        return bars

    def minute_bars(self, symbol: str, start_ns: int | None, end_ns: int | None) -> list[Bar]:
        m = self.markets[symbol]
        bars: list[BarRow] = []
        if start_ns is None or start_ns < to_ns(self.start):
            bars.extend(self.ensure_history(symbol))
        bars.extend(m.bars)
        lo = 0 if start_ns is None else bisect_left(bars, start_ns, key=_bar_t)
        hi = len(bars) if end_ns is None else bisect_left(bars, end_ns + 1, key=_bar_t)
        return [b if type(b) is Bar else Bar._make(b) for b in bars[lo:hi]]

    def latest_bar(self, symbol: str) -> Bar:
        m = self.markets[symbol]
        if m.bars:
            return m.bars[-1]
        if m.minute is not None and m.minute.n:
            return m.minute.bar()
        hist = self.ensure_history(symbol)
        if hist:
            return Bar._make(hist[-1])
        p = float(m.last_price)
        return Bar(m.last_t, p, p, p, p, 0, 0, p)

    def daily_bar(self, symbol: str) -> Bar | None:
        m = self.markets[symbol]
        if m.day is not None and m.day.n:
            return m.day.bar()
        self.ensure_history(symbol)
        return m.prev_day

    def prev_daily_bar(self, symbol: str) -> Bar | None:
        self.ensure_history(symbol)
        return self.markets[symbol].prev_day

    def drain(self) -> tuple[dict[str, Quote], list, list]:
        q, t, b = self.out_quotes, self.out_trades, self.out_bars
        self.out_quotes, self.out_trades, self.out_bars = {}, [], []
        return q, t, b


QUOTE_SHAPES = ("no_bid", "no_ask", "crossed", "wide", "normal")


def _poor_quote(q: Quote, shape: str, width_pct: float) -> Quote:
    """A quote as a thin IEX book can show it: one side 0, crossed, or very wide."""
    if shape == "no_bid":
        return Quote(q.t, Decimal(0), 0, q.ap, q.as_)
    if shape == "no_ask":
        return Quote(q.t, q.bp, q.bs, Decimal(0), 0)
    mid = (q.bp + q.ap) / 2
    _, tick = tick_for(float(mid))
    if shape == "crossed":
        return Quote(q.t, q.ap + tick, q.bs, q.bp, q.as_)
    half = mid * Decimal(str(width_pct)) / 200
    bid = max(tick, ((mid - half) / tick).to_integral_value(ROUND_FLOOR) * tick)
    ask = ((mid + half) / tick).to_integral_value(ROUND_CEILING) * tick
    return Quote(q.t, bid, q.bs, ask, q.as_)


def aggregate(bars: list[Bar], t_ns: int) -> Bar:
    v = sum(b.v for b in bars)
    pv = sum(b.vw * b.v for b in bars)
    return Bar(
        t_ns,
        bars[0].o,
        max(b.h for b in bars),
        min(b.l for b in bars),
        bars[-1].c,
        v,
        sum(b.n for b in bars),
        round(pv / v, 4) if v else bars[-1].c,
    )
