"""Market data REST through alpaca-py's StockHistoricalDataClient; the seeded price
model; minute-bar CSV replay; the market calendar."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from engine.sim import SimVenue
from engine.sim import calendar as cal
from tests.engine.sim.simkit import KEY, SECRET, make_venue


@pytest.fixture
def data(venue: SimVenue) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(KEY, SECRET, url_override=venue.data_url)


def test_latest_quote_trade_bar(fresh: SimVenue, data: StockHistoricalDataClient):
    fresh.advance(120)
    q = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "MSFT", "NOPE"]))
    assert set(q) == {"AAPL", "MSFT"}  # unknown symbols are simply absent
    bid, ask = fresh.quote("AAPL")
    assert q["AAPL"].bid_price == float(bid) and q["AAPL"].ask_price == float(ask)
    assert 0 < q["AAPL"].ask_price - q["AAPL"].bid_price < 0.5
    t = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert float(bid) <= t.price <= float(ask)
    b = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="AAPL"))["AAPL"]
    assert b.low <= b.close <= b.high and b.timestamp.second == 0


def test_bars_over_history_and_timeframes(fresh: SimVenue, data: StockHistoricalDataClient):
    fresh.advance(1800)
    now = fresh.now()
    bars = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Minute, start=now - timedelta(days=4))
    ).data
    # several sessions of history before the venue started, then the live bars, all in order
    assert len(bars["AAPL"]) > 390 + 30 and len(bars["MSFT"]) == len(bars["AAPL"])
    ts = [b.timestamp for b in bars["AAPL"]]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert all(cal.is_open(t) for t in ts)
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars["AAPL"])
    # alpaca-py followed next_page_token: ask for more than one page's worth
    small = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL"], timeframe=TimeFrame.Minute, start=now - timedelta(minutes=29), limit=25
        )
    ).data["AAPL"]
    assert len(small) == 25
    five = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL", timeframe=TimeFrame(5, TimeFrameUnit.Minute), start=now - timedelta(minutes=30)
        )
    ).data["AAPL"]
    assert all(b.timestamp.minute % 5 == 0 for b in five) and 5 <= len(five) <= 7
    hourly = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Hour, start=now - timedelta(days=3))
    ).data["AAPL"]
    assert hourly and all(b.timestamp.minute == 0 for b in hourly)
    daily = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=now - timedelta(days=10))
    ).data["AAPL"]
    assert len(daily) >= 3  # two synthetic sessions of history, then the live one
    assert len({b.timestamp.date() for b in daily}) == len(daily)


def test_quotes_and_trades_history(fresh: SimVenue, data: StockHistoricalDataClient):
    start = fresh.now()
    fresh.advance(60)
    qs = data.get_stock_quotes(StockQuotesRequest(symbol_or_symbols=["AAPL"], start=start)).data["AAPL"]
    assert len(qs) >= 4 and all(q.bid_price <= q.ask_price for q in qs)
    tr = data.get_stock_trades(StockTradesRequest(symbol_or_symbols=["AAPL", "KO"], start=start, limit=3)).data
    assert sum(len(v) for v in tr.values()) == 3


def test_snapshot(fresh: SimVenue, data: StockHistoricalDataClient):
    fresh.advance(300)
    snap = data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["AAPL"]))["AAPL"]
    assert snap.latest_trade and snap.latest_quote and snap.minute_bar
    assert snap.daily_bar and snap.previous_daily_bar
    assert snap.previous_daily_bar.timestamp < snap.daily_bar.timestamp


def test_prices_are_seeded():
    a, b = make_venue(seed=5), make_venue(seed=5)
    c = make_venue(seed=6)
    try:
        for v in (a, b, c):
            v.advance(600)
        assert a.state()["quotes"] == b.state()["quotes"]
        assert a.state()["quotes"] != c.state()["quotes"]
    finally:
        for v in (a, b, c):
            v.stop()


def test_prices_follow_each_symbols_volatility():
    v = make_venue(seed=3)
    try:
        v.advance(6 * 3600)
        md = StockHistoricalDataClient(KEY, SECRET, url_override=v.data_url)
        bars = md.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols=["KO", "TSLA"], timeframe=TimeFrame.Minute, start=v.now() - timedelta(hours=6)
            )
        ).data
        import math

        def realized(sym: str) -> float:
            closes = [b.close for b in bars[sym]]
            rets = [math.log(b / a) for a, b in itertools.pairwise(closes)]
            return (sum(r * r for r in rets) / len(rets)) ** 0.5

        assert realized("TSLA") > 1.5 * realized("KO")  # 0.60 vs 0.16 annualised in the universe file
    finally:
        v.stop()


def test_csv_replay(tmp_path: Path):
    path = tmp_path / "bars.csv"
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    t0 = datetime(2025, 3, 4, 14, 30, tzinfo=UTC)  # Tuesday 09:30 New York
    price = 100.0
    for i in range(30):
        t = (t0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        o, c = price, price + (0.5 if i % 2 == 0 else -0.3)
        rows.append(f"{t},AAPL,{o:.2f},{max(o, c) + 0.1:.2f},{min(o, c) - 0.1:.2f},{c:.2f},{1000 + i}")
        rows.append(f"{t},ZZZZ,10.00,10.10,9.90,10.05,500")  # a symbol only in the file
        price = c
    path.write_text("\n".join(rows) + "\n")
    v = SimVenue(
        key_id=KEY,
        secret_key=SECRET,
        bars_csv=str(path),
        frozen_clock=True,
        partial_fill_prob=0.0,
        rate_limit_per_minute=None,
    ).start()
    try:
        assert v.now() == t0  # starts at the first session of the file
        v.advance(10 * 60)
        md = StockHistoricalDataClient(KEY, SECRET, url_override=v.data_url)
        bars = md.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Minute, start=t0)).data[
            "AAPL"
        ]
        assert len(bars) == 10
        for i, b in enumerate(bars):  # the finalized bars are the file's bars
            o = float(rows[1 + 2 * i].split(",")[2])
            assert b.open == o and b.volume == 1000 + i
        bid, _ask = v.quote("AAPL")
        assert abs(float(bid) - bars[-1].close) < 1.0
        tc = TradingClient(KEY, SECRET, url_override=v.trading_url)
        assert tc.get_asset("ZZZZ").symbol == "ZZZZ"
        o = tc.submit_order(MarketOrderRequest(symbol="ZZZZ", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
        assert 9.8 < float(tc.get_order_by_id(o.id).filled_avg_price) < 10.3
    finally:
        v.stop()


def test_bad_csv_is_refused(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("when,what\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        SimVenue(key_id=KEY, secret_key=SECRET, bars_csv=str(path))
    path.write_text("timestamp,symbol,open,high,low,close\n2025-03-04T14:30:00Z,AAPL,10,9,11,10\n")
    with pytest.raises(ValueError, match="inconsistent"):
        SimVenue(key_id=KEY, secret_key=SECRET, bars_csv=str(path))


# ---------------------------------------------------------------- calendar
@pytest.mark.parametrize(
    "day,open_",
    [
        (date(2025, 1, 1), False),
        (date(2025, 1, 20), False),
        (date(2025, 2, 17), False),
        (date(2025, 4, 18), False),
        (date(2025, 5, 26), False),
        (date(2025, 6, 19), False),
        (date(2025, 7, 4), False),
        (date(2025, 9, 1), False),
        (date(2025, 11, 27), False),
        (date(2025, 12, 25), False),
        (date(2026, 7, 3), False),
        (date(2022, 12, 26), False),
        (date(2027, 12, 31), True),
        (date(2025, 6, 2), True),
        (date(2025, 6, 7), False),
        (date(2021, 12, 31), True),
    ],
)
def test_holidays(day: date, open_: bool):
    assert cal.is_trading_day(day) is open_


def test_sessions_and_early_closes():
    o, c = cal.session(date(2025, 6, 2))
    assert (o.hour, o.minute, c.hour) == (13, 30, 20)  # EDT
    o, c = cal.session(date(2025, 1, 6))
    assert (o.hour, o.minute, c.hour) == (14, 30, 21)  # EST
    assert cal.close_time(date(2025, 11, 28)).hour == 13 and cal.close_time(date(2025, 7, 3)).hour == 13
    fri_close = cal.session(date(2025, 6, 6))[1]
    assert cal.next_open(fri_close) == cal.session(date(2025, 6, 9))[0]
    assert cal.is_open(cal.session(date(2025, 6, 2))[0]) and not cal.is_open(fri_close)
    assert cal.last_open(datetime(2025, 6, 8, 12, tzinfo=UTC)) == cal.session(date(2025, 6, 6))[0]


def test_default_start_is_the_latest_session_open():
    v = SimVenue(key_id=KEY, secret_key=SECRET)  # not started: the state exists already
    t = v.server.exchange.t
    assert t == cal.last_open(datetime.now(UTC)) or t == cal.last_open(t)
    assert cal.is_open(t) and t <= datetime.now(UTC)
