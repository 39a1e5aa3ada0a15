"""The trade_updates stream (/stream) and the msgpack market data stream (/v2/iex):
handshakes on the wire, and the real alpaca-py TradingStream / StockDataStream."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import msgpack
import pytest
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from engine.sim import SimVenue
from tests.engine.sim.simkit import KEY, SECRET, Collector, make_venue, prepare, wait_until


@pytest.fixture(scope="module")
def venue():
    v = make_venue(seed=11)
    yield v
    errors = v.state()["internal_errors"]
    v.stop()
    assert errors == 0


def _free_slots(venue: SimVenue) -> None:
    """One connection per stream and key: close what earlier tests left (a stopped
    alpaca-py stream lingers up to its 5 s receive timeout)."""
    venue.drop_streams(trade=True, data=True)
    wait_until(lambda: venue.state()["streams"]["slots"]["connected"] == [], what="stream slots free")


def _listening(venue: SimVenue, n: int = 1) -> None:
    wait_until(lambda: venue.state()["streams"]["trade_clients"] >= n, what="trade stream listening")


@pytest.fixture
def stream(venue: SimVenue):
    """alpaca-py's TradingStream, running in its own thread, collecting every update."""
    prepare(venue)
    # clients of earlier tests are stopping but may still be connected: start from none
    venue.drop_trade_stream()
    wait_until(lambda: venue.state()["streams"]["trade_clients"] == 0, what="no trade stream clients")
    got = Collector()
    ts = TradingStream(KEY, SECRET, url_override=venue.trading_stream_url)
    ts.subscribe_trade_updates(got.handler)
    t = threading.Thread(target=ts.run, daemon=True)
    t.start()
    _listening(venue)
    yield got
    ts.stop()  # the client notices within its 5 s receive timeout; the thread is a daemon


def _auth_frame(key: str = KEY, secret: str = SECRET) -> str:
    return json.dumps({"action": "authenticate", "data": {"key_id": key, "secret_key": secret}})


# ---------------------------------------------------------------- trade stream on the wire
def test_trade_stream_handshake_on_the_wire(venue: SimVenue):
    prepare(venue)
    with connect(venue.trading_stream_url) as ws:
        ws.send(_auth_frame())
        frame = ws.recv(timeout=5)
        assert isinstance(frame, bytes)  # Alpaca sends binary frames
        assert json.loads(frame) == {
            "stream": "authorization",
            "data": {"status": "authorized", "action": "authenticate"},
        }
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5)) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        _listening(venue)
        TradingClient(KEY, SECRET, url_override=venue.trading_url).submit_order(
            MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        events = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert [e["stream"] for e in events] == ["trade_updates", "trade_updates"]
        assert [e["data"]["event"] for e in events] == ["new", "fill"]
        fill = events[1]["data"]
        assert {"execution_id", "order", "timestamp", "price", "qty", "position_qty"} <= set(fill)
        assert fill["qty"] == "1" and fill["position_qty"] == "1"
        assert Decimal(fill["price"]) == Decimal(fill["order"]["filled_avg_price"])


def test_trade_stream_refuses_bad_keys(venue: SimVenue):
    with connect(venue.trading_stream_url) as ws:
        ws.send(_auth_frame(secret="wrong"))
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)  # closed by the venue
    with connect(venue.trading_stream_url) as ws:  # listen before authenticate
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "unauthorized"


def test_trade_stream_down_refuses_connections(venue: SimVenue):
    venue.set_faults(trade_stream_down=True)
    try:
        with pytest.raises(InvalidStatus) as exc:
            connect(venue.trading_stream_url)
        assert exc.value.response.status_code == 503
    finally:
        venue.set_faults(trade_stream_down=False)


# ---------------------------------------------------------------- alpaca-py TradingStream
def test_every_event_in_order_with_unique_execution_ids(venue: SimVenue, stream: Collector):
    c = TradingClient(KEY, SECRET, url_override=venue.trading_url)
    venue.set_partial_fill_prob(1.0)
    a = c.submit_order(MarketOrderRequest(symbol="MSFT", qty=20, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    venue.set_partial_fill_prob(0.0)
    venue.advance(1)  # the rest fills on the next price step
    b = c.submit_order(
        LimitOrderRequest(symbol="NVDA", qty=2, limit_price=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    b2 = c.replace_order_by_id(b.id, ReplaceOrderRequest(limit_price=1.5))
    c.cancel_order_by_id(b2.id)
    wait_until(lambda: len(stream.items) >= 7, what="7 trade updates")
    ups: list[TradeUpdate] = stream.items
    seq = [(str(u.order.id), u.event) for u in ups]
    assert seq == [
        (str(a.id), "new"),
        (str(a.id), "partial_fill"),
        (str(a.id), "fill"),
        (str(b.id), "new"),
        (str(b.id), "replaced"),
        (str(b2.id), "new"),
        (str(b2.id), "canceled"),
    ]
    assert len({u.execution_id for u in ups}) == len(ups)
    fills = [u for u in ups if u.event in ("partial_fill", "fill")]
    assert sum(Decimal(str(u.qty)) for u in fills) == 20
    assert fills[-1].position_qty == 20 and fills[-1].order.filled_qty == "20"
    assert [u.timestamp for u in ups] == sorted(u.timestamp for u in ups)
    replaced = ups[4].order
    assert str(replaced.replaced_by) == str(b2.id)


def test_dropped_stream_reconnects_without_replay(venue: SimVenue, stream: Collector):
    c = TradingClient(KEY, SECRET, url_override=venue.trading_url)
    venue.set_faults(trade_stream_down=True, drop_trade_stream=True)
    wait_until(lambda: venue.state()["streams"]["trade_clients"] == 0, what="stream dropped")
    lost = c.submit_order(MarketOrderRequest(symbol="KO", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    venue.set_faults(trade_stream_down=False)
    _listening(venue)  # alpaca-py reconnects by itself
    seen = c.submit_order(MarketOrderRequest(symbol="PEP", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    wait_until(
        lambda: any(str(u.order.id) == str(seen.id) and u.event == "fill" for u in stream.items),
        what="events after the reconnect",
    )
    assert not any(str(u.order.id) == str(lost.id) for u in stream.items)  # no replay


def test_duplicate_and_reordered_events(venue: SimVenue, stream: Collector):
    c = TradingClient(KEY, SECRET, url_override=venue.trading_url)
    venue.set_faults(stream_duplicate=1.0)
    a = c.submit_order(MarketOrderRequest(symbol="T", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    wait_until(lambda: len(stream.items) >= 4, what="duplicated events")
    ups = [u for u in stream.items if str(u.order.id) == str(a.id)]
    assert [u.event for u in ups] == ["new", "new", "fill", "fill"]
    assert ups[0].execution_id == ups[1].execution_id  # the same event, delivered twice
    venue.set_faults(stream_duplicate=0.0, stream_reorder=1.0)
    n = len(stream.items)
    b = c.submit_order(MarketOrderRequest(symbol="VZ", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    wait_until(lambda: len(stream.items) >= n + 2, what="reordered events")
    assert [u.event for u in stream.items[n:] if str(u.order.id) == str(b.id)] == ["fill", "new"]


def test_delayed_trade_updates_lag_the_rest_answers_in_order(venue: SimVenue, stream: Collector):
    c = TradingClient(KEY, SECRET, url_override=venue.trading_url)
    venue.set_faults(trade_stream_delay_ms=3000)
    a = c.submit_order(MarketOrderRequest(symbol="T", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
    # the venue has filled it, and says so over REST, before the stream says anything
    assert {p.symbol: Decimal(p.qty) for p in c.get_all_positions()} == {"T": Decimal(3)}
    assert str(c.get_order_by_id(a.id).status.value) == "filled"
    assert not any(str(u.order.id) == str(a.id) for u in stream.items)
    wait_until(lambda: any(u.event == "fill" for u in stream.items), what="the delayed fill")
    assert [u.event for u in stream.items if str(u.order.id) == str(a.id)] == ["new", "fill"]


# ---------------------------------------------------------------- data stream on the wire
def test_data_stream_handshake_and_msgpack_frames(venue: SimVenue):
    prepare(venue)
    with connect(venue.data_stream_url) as ws:
        assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
        ws.send(msgpack.packb({"action": "subscribe", "quotes": ["AAPL"]}))
        assert msgpack.unpackb(ws.recv(timeout=5))[0]["T"] == "error"  # not authenticated yet
        ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "success", "msg": "authenticated"}]
        sub = msgpack.packb({"action": "subscribe", "quotes": ["AAPL"], "trades": ["AAPL"], "bars": ["*"]})
        ws.send([sub[i : i + 7] for i in range(0, len(sub), 7)])  # a fragmented message, as alpaca-py may send
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and ack["quotes"] == ["AAPL"] and ack["bars"] == ["*"]
        venue.advance(61)
        kinds = {}
        while {"q", "t", "b"} - set(kinds):
            for m in msgpack.unpackb(ws.recv(timeout=5)):
                kinds.setdefault(m["T"], m)
        assert isinstance(kinds["q"]["t"], msgpack.Timestamp)  # ext type -1, not a string
        assert kinds["q"]["S"] == "AAPL" and kinds["t"]["S"] == "AAPL"
        assert kinds["q"]["bp"] <= kinds["q"]["ap"]
        assert {"o", "h", "l", "c", "v", "n", "vw", "t"} <= set(kinds["b"])


def test_data_stream_refuses_bad_keys(venue: SimVenue):
    with connect(venue.data_stream_url) as ws:
        ws.recv(timeout=5)
        ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": "nope"}))
        msg = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert msg["T"] == "error" and msg["code"] == 402


def test_alpaca_py_stock_data_stream(venue: SimVenue):
    prepare(venue)
    quotes, trades, bars = Collector(), Collector(), Collector()
    ds = StockDataStream(KEY, SECRET, url_override=venue.data_stream_url)
    ds.subscribe_quotes(quotes.handler, "AAPL", "MSFT")
    ds.subscribe_trades(trades.handler, "AAPL")
    ds.subscribe_bars(bars.handler, "AAPL")
    t = threading.Thread(target=ds.run, daemon=True)
    t.start()
    try:
        wait_until(lambda: venue.state()["streams"]["data_clients"] >= 1, what="data stream subscribed")
        for _ in range(3):
            venue.advance(30)
        wait_until(lambda: bars.items and trades.items and len(quotes.items) >= 2, what="market data")
        assert {q.symbol for q in quotes.items} <= {"AAPL", "MSFT"}
        assert all(q.bid_price <= q.ask_price for q in quotes.items)
        assert {x.symbol for x in trades.items} == {"AAPL"}
        bar = bars.items[0]
        assert bar.symbol == "AAPL" and bar.low <= bar.open <= bar.high and bar.timestamp.second == 0
        assert bar.trade_count is not None and bar.vwap is not None
    finally:
        ds.stop()


def test_garbage_on_the_streams_is_answered_not_fatal(venue: SimVenue):
    junk = [
        b"\xff\x00\x13",
        "not json",
        "[1, 2]",
        "[" * 20000,
        json.dumps({"action": ["x"]}),
        json.dumps({"action": "listen", "data": {"streams": "trade_updates"}}),
    ]
    _free_slots(venue)
    with connect(venue.trading_stream_url, max_size=None) as ws:
        ws.send(_auth_frame())
        assert json.loads(ws.recv(timeout=5))["data"]["status"] == "authorized"
        for j in junk:
            ws.send(j)
            reply = json.loads(ws.recv(timeout=5))
            assert reply["stream"] in ("error", "listening")
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=5))["stream"] == "listening"
    with connect(venue.data_stream_url) as ws:
        ws.recv(timeout=5)
        for j in [b"\xc1", msgpack.packb([1, 2]), "{bad", "[" * 20000, msgpack.packb({"action": {"x": 1}})]:
            ws.send(j)
            assert msgpack.unpackb(ws.recv(timeout=5))[0]["T"] == "error"
        ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        assert msgpack.unpackb(ws.recv(timeout=5))[0]["msg"] == "authenticated"
        ws.send(msgpack.packb({"action": "subscribe", "quotes": [1, None, "aapl"], "trades": "AAPL"}))
        ack = msgpack.unpackb(ws.recv(timeout=5))[0]
        assert ack["T"] == "subscription" and "AAPL" in ack["quotes"]
    assert venue.state()["internal_errors"] == 0
