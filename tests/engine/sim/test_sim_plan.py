"""Alpaca's account rules on the local venue (issue 12): the free plan's stream symbol
limit and SIP entitlement, one connection per stream (and the hold after a cut), a
muted data stream, poor IEX quotes, and a new account's multiplier of 4 — seen through
alpaca-py and raw websockets, as a client of real Alpaca would see them."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import msgpack
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from engine.sim import SimVenue
from engine.sim.plan import DEFAULT_PLAN, FREE_STREAM_SYMBOL_LIMIT
from tests.engine.sim.simkit import KEY, SECRET, Raw, make_venue, prepare, wait_until

HOLD = 1.0  # seconds a cut connection holds its slot in these tests (Alpaca: about 90)


@pytest.fixture(scope="module")
def free():
    v = make_venue(plan="free", connection_hold_seconds=HOLD)
    yield v
    errors = v.state()["internal_errors"]
    v.stop()
    assert errors == 0


@pytest.fixture(scope="module")
def unlimited():
    v = make_venue(plan="unlimited", connection_hold_seconds=HOLD)
    yield v
    v.stop()


@pytest.fixture
def venue(free: SimVenue) -> SimVenue:
    """The free-plan venue with no stream connections left by an earlier test."""
    prepare(free)
    free.drop_streams(trade=True, data=True)
    wait_until(lambda: free.state()["streams"]["slots"]["connected"] == [], what="stream slots free")
    time.sleep(HOLD)  # past any hold an earlier test's cut left
    return free


def _symbols(venue: SimVenue, n: int) -> list[str]:
    syms = sorted(venue.state()["quotes"])
    assert len(syms) >= n, f"the universe has {len(syms)} symbols, the test needs {n}"
    return syms[:n]


@contextmanager
def _data_ws(venue: SimVenue, path: str = "/v2/iex"):
    """A raw market data connection, authenticated: yields (socket, the answer to auth)."""
    with connect(venue.data_stream_url.rsplit("/v2/", 1)[0] + path) as ws:
        assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
        ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        yield ws, msgpack.unpackb(ws.recv(timeout=5))


def _data_frames(ws, timeout: float) -> list[dict]:
    """Every data message (quotes, trades, bars) that arrives within ``timeout`` seconds."""
    out: list[dict] = []
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        try:
            out += [m for m in msgpack.unpackb(ws.recv(timeout=left)) if m["T"] in ("q", "t", "b")]
        except TimeoutError:
            break
    return out


@contextmanager
def _trade_ws(venue: SimVenue):
    """A raw trade_updates connection: yields (socket, the answer to authenticate)."""
    with connect(venue.trading_stream_url) as ws:
        ws.send(json.dumps({"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}}))
        yield ws, json.loads(ws.recv(timeout=5))


def test_the_built_in_plan_is_one_constant():
    # flipping the default is one line in engine/sim/plan.py (and [sim] plan in the config)
    assert DEFAULT_PLAN in ("free", "unlimited")
    assert SimVenue(key_id=KEY, secret_key=SECRET).server.plan == DEFAULT_PLAN
    with pytest.raises(ValueError, match="plan must be one of"):
        SimVenue(key_id=KEY, secret_key=SECRET, plan="gold")


# ---------------------------------------------------------------- 1. the symbol limit
def test_free_plan_streams_30_symbols_across_trades_and_quotes_bars_do_not_count(venue: SimVenue):
    syms = _symbols(venue, FREE_STREAM_SYMBOL_LIMIT + 1)
    first30, extra = syms[:FREE_STREAM_SYMBOL_LIMIT], syms[FREE_STREAM_SYMBOL_LIMIT]
    with _data_ws(venue) as (ws, auth):
        assert auth == [{"T": "success", "msg": "authenticated"}]
        # the same 30 symbols on trades and quotes count once; bars are not limited
        ws.send(msgpack.packb({"action": "subscribe", "quotes": first30, "trades": first30, "bars": ["*"]}))
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and ack["quotes"] == first30 and ack["trades"] == first30
        # a 31st symbol, on either channel: refused, subscription unchanged, socket open
        for ch in ("trades", "quotes"):
            ws.send(msgpack.packb({"action": "subscribe", ch: [extra]}))
            assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
        ws.send(msgpack.packb({"action": "subscribe", "trades": ["*"]}))  # the wildcard is over any limit
        assert msgpack.unpackb(ws.recv(timeout=5))[0]["code"] == 405
        ws.send(msgpack.packb({"action": "subscribe", "bars": [extra]}))
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and ack["quotes"] == first30 and ack["trades"] == first30
        assert extra not in ack["quotes"] + ack["trades"]
        venue.advance(5)
        assert {m["S"] for m in _data_frames(ws, 1.0) if m["T"] == "q"} <= set(first30)
        # making room lets the next one in
        ws.send(msgpack.packb({"action": "unsubscribe", "quotes": [first30[0]], "trades": [first30[0]]}))
        msgpack.unpackb(ws.recv(timeout=5))
        ws.send(msgpack.packb({"action": "subscribe", "quotes": [extra]}))
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and extra in ack["quotes"] and first30[0] not in ack["quotes"]


def test_unlimited_plan_streams_every_symbol_and_sip(unlimited: SimVenue):
    syms = sorted(unlimited.state()["quotes"])
    assert len(syms) > FREE_STREAM_SYMBOL_LIMIT
    with _data_ws(unlimited, "/v2/sip") as (ws, auth):
        assert auth == [{"T": "success", "msg": "authenticated"}]
        ws.send(msgpack.packb({"action": "subscribe", "quotes": syms, "trades": ["*"]}))
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and ack["quotes"] == syms and ack["trades"] == ["*"]


# ---------------------------------------------------------------- 2. one connection per stream
def test_a_second_data_connection_is_refused_406(venue: SimVenue):
    with _data_ws(venue) as (first, auth):
        assert auth[0]["msg"] == "authenticated"
        with _data_ws(venue) as (second, refused):
            assert refused == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
            with pytest.raises(ConnectionClosed):
                second.recv(timeout=5)
        # the first is untouched
        first.send(msgpack.packb({"action": "subscribe", "quotes": ["AAPL"]}))
        assert msgpack.unpackb(first.recv(timeout=5))[0]["quotes"] == ["AAPL"]
    # closed cleanly: the slot is free at once
    wait_until(lambda: venue.state()["streams"]["data_connections"] == 0, what="first data connection gone")
    with _data_ws(venue) as (_again, auth):
        assert auth == [{"T": "success", "msg": "authenticated"}]


def test_a_second_trade_stream_is_refused_406(venue: SimVenue):
    with _trade_ws(venue) as (first, auth):
        assert auth["data"]["status"] == "authorized"
        with _trade_ws(venue) as (second, refused):
            assert refused["stream"] == "authorization"
            assert refused["data"]["status"] == "unauthorized"  # alpaca-py: "failed to authenticate"
            assert refused["data"]["error_code"] == 406
            assert refused["data"]["error_message"] == "connection limit exceeded"
            with pytest.raises(ConnectionClosed):
                second.recv(timeout=5)
        first.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(first.recv(timeout=5))["stream"] == "listening"
    wait_until(lambda: venue.state()["streams"]["trade_connections"] == 0, what="first trade stream gone")
    with _trade_ws(venue) as (_again, auth):
        assert auth["data"]["status"] == "authorized"


def test_a_cut_connection_is_held_and_reconnecting_in_the_window_is_refused(venue: SimVenue):
    with _trade_ws(venue) as (trade, auth), _data_ws(venue) as (data, dauth):
        assert auth["data"]["status"] == "authorized" and dauth[0]["msg"] == "authenticated"
        raw = Raw(venue.trading_url)
        r = raw.post("/sim/v1/streams/drop", json={"trade": True, "data": True, "unclean": True})
        assert r.status_code == 200 and r.json() == {"dropped": 2}
        for ws in (trade, data):  # no close frame: the connection just dies
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
            assert info.value.rcvd is None
        cut_at = time.monotonic()
    wait_until(
        lambda: set(venue.state()["streams"]["slots"]["held"]) == {"trade_updates", "data:iex"},
        timeout=HOLD / 2,
        what="both slots held",
    )
    with _trade_ws(venue) as (_, refused):
        assert refused["data"]["error_code"] == 406
    with _data_ws(venue) as (_, drefused):
        assert drefused == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
    assert time.monotonic() - cut_at < HOLD, "the refusals must come inside the hold window"
    time.sleep(HOLD)
    with _trade_ws(venue) as (_, auth), _data_ws(venue) as (_, dauth):
        assert auth["data"]["status"] == "authorized"
        assert dauth == [{"T": "success", "msg": "authenticated"}]


def test_a_venue_drop_frees_the_slot_at_once(venue: SimVenue):
    with _trade_ws(venue) as (trade, auth):
        assert auth["data"]["status"] == "authorized"
        venue.drop_trade_stream()  # the venue closes it properly: nothing to hold
        with pytest.raises(ConnectionClosed):
            trade.recv(timeout=5)
    wait_until(lambda: venue.state()["streams"]["trade_connections"] == 0, what="dropped")
    with _trade_ws(venue) as (_again, auth):
        assert auth["data"]["status"] == "authorized"


# ---------------------------------------------------------------- 3. feed entitlement
def test_free_plan_sip_stream_is_refused_409(venue: SimVenue):
    with _data_ws(venue, "/v2/sip") as (ws, refused):
        assert refused == [{"T": "error", "code": 409, "msg": "insufficient subscription"}]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_free_plan_recent_sip_over_rest_is_refused_403_older_is_served(venue: SimVenue, unlimited: SimVenue):
    venue.advance(3600)
    now = venue.now()
    data = StockHistoricalDataClient(KEY, SECRET, url_override=venue.data_url)
    with pytest.raises(APIError) as err:
        data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL", feed=DataFeed.SIP))
    assert err.value.status_code == 403
    assert err.value.message == "subscription does not permit querying recent SIP data"
    with pytest.raises(APIError) as err:  # the window reaches into the last 15 minutes
        data.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="AAPL",
                timeframe=TimeFrame.Minute,
                start=now - timedelta(minutes=40),
                end=now - timedelta(minutes=10),
                feed=DataFeed.SIP,
            )
        )
    assert err.value.status_code == 403
    old = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=TimeFrame.Minute,
            start=now - timedelta(minutes=40),
            end=now - timedelta(minutes=16),
            feed=DataFeed.SIP,
        )
    )
    assert len(old.data["AAPL"]) >= 20
    iex = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL", feed=DataFeed.IEX))
    assert iex["AAPL"].ask_price > 0
    full = StockHistoricalDataClient(KEY, SECRET, url_override=unlimited.data_url)
    sip = full.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL", feed=DataFeed.SIP))
    assert sip["AAPL"].ask_price > 0


# ---------------------------------------------------------------- 4. a silent socket
def test_muted_data_stream_stays_connected_and_sends_nothing(venue: SimVenue):
    with _data_ws(venue) as (ws, auth):
        assert auth[0]["msg"] == "authenticated"
        ws.send(msgpack.packb({"action": "subscribe", "quotes": ["AAPL"], "trades": ["AAPL"]}))
        assert msgpack.unpackb(ws.recv(timeout=5))[0]["T"] == "subscription"
        venue.advance(5)
        assert _data_frames(ws, 1.0), "a live stream sends quotes and trades"
        r = Raw(venue.trading_url).post("/sim/v1/faults", json={"data_stream_muted": True})
        assert r.status_code == 200 and r.json()["data_stream_muted"] is True
        venue.advance(30)
        assert _data_frames(ws, 1.5) == []
        ws.ping().wait(5)  # still connected: it answers pings
        assert venue.state()["streams"]["data_connections"] == 1
        venue.mute_data_stream(False)
        venue.advance(5)
        got = _data_frames(ws, 2.0)
        assert {m["S"] for m in got} == {"AAPL"} and {m["T"] for m in got} == {"q", "t"}


# ---------------------------------------------------------------- 5. poor quotes
def test_one_sided_crossed_and_wide_quotes_are_published_fills_use_the_real_quote(venue: SimVenue):
    venue.set_quote("MSFT", "400.00", "400.10")
    data = StockHistoricalDataClient(KEY, SECRET, url_override=venue.data_url)
    trading = TradingClient(KEY, SECRET, url_override=venue.trading_url)

    def latest():
        return data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="MSFT"))["MSFT"]

    with _data_ws(venue) as (ws, _):
        ws.send(msgpack.packb({"action": "subscribe", "quotes": ["MSFT"]}))
        msgpack.unpackb(ws.recv(timeout=5))
        venue.shape_quotes("MSFT", "no_bid")
        q = latest()
        assert q.bid_price == 0 and q.ask_price == 400.10
        streamed = [m for m in _data_frames(ws, 1.0) if m["T"] == "q"]
        assert streamed and streamed[-1]["bp"] == 0 and streamed[-1]["ap"] == 400.10
    venue.shape_quotes("MSFT", "no_ask")
    q = latest()
    assert q.bid_price == 400.00 and q.ask_price == 0
    venue.shape_quotes("MSFT", "crossed")
    q = latest()
    assert q.bid_price > q.ask_price
    raw = Raw(venue.trading_url)
    r = raw.post("/sim/v1/quotes/shape", json={"symbol": "MSFT", "shape": "wide", "width_pct": 30})
    assert r.status_code == 200
    q = latest()
    mid = (q.bid_price + q.ask_price) / 2
    assert (q.ask_price - q.bid_price) / mid >= 0.29
    venue.advance(5)  # the shape sticks to every new quote until it is ended
    q = latest()
    assert (q.ask_price - q.bid_price) / ((q.bid_price + q.ask_price) / 2) >= 0.29
    # orders fill against the real quote, as Alpaca paper fills against the NBBO
    _, real_ask = venue.quote("MSFT")
    assert venue.published_quote("MSFT") != venue.quote("MSFT")
    o = trading.submit_order(
        MarketOrderRequest(symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    filled = trading.get_order_by_id(o.id)
    assert Decimal(filled.filled_avg_price) == real_ask
    venue.shape_quotes("MSFT", "normal")
    bid, ask = venue.quote("MSFT")
    q = latest()
    assert (Decimal(str(q.bid_price)), Decimal(str(q.ask_price))) == (bid, ask)
    bad = raw.post("/sim/v1/quotes/shape", json={"symbol": "MSFT", "shape": "sideways"})
    assert bad.status_code == 422 and "shape must be one of" in bad.json()["message"]
    bad = raw.post("/sim/v1/quotes/shape", json={"symbol": "NOPE", "shape": "wide"})
    assert bad.status_code == 422


# ---------------------------------------------------------------- 6. a new account
def test_a_new_paper_account_has_multiplier_4(venue: SimVenue):
    acct = TradingClient(KEY, SECRET, url_override=venue.trading_url).get_account()
    assert acct.multiplier == "4"
    assert Decimal(acct.buying_power) == 4 * Decimal(acct.equity)
