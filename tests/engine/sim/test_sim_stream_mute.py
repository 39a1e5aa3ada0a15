"""Silent sockets on the venue's side: a muted trade stream stays connected, answers
authentication, listen and (by default) websocket pings, and sends no trade updates
(those of that time are lost: no replay); with pings ignored it is a half-dead socket,
whose slot the venue holds after it closes (406 meanwhile), as Alpaca does."""

from __future__ import annotations

import json

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from engine.sim import SimVenue
from tests.engine.sim.simkit import KEY, SECRET, make_venue, prepare, wait_until

HOLD = 2.0


@pytest.fixture(scope="module")
def venue():
    v = make_venue(seed=13, connection_hold_seconds=HOLD)
    yield v
    errors = v.state()["internal_errors"]
    v.stop()
    assert errors == 0


@pytest.fixture
def fresh(venue: SimVenue) -> SimVenue:
    prepare(venue)
    venue.drop_streams(trade=True, data=True)
    wait_until(
        lambda: not venue.state()["streams"]["slots"]["connected"] and not venue.state()["streams"]["slots"]["held"],
        what="stream slots free",
        timeout=10,
    )
    return venue


def listen(ws) -> dict:
    ws.send(json.dumps({"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}}))
    auth = json.loads(ws.recv(timeout=5))
    if auth["data"]["status"] != "authorized":
        return auth
    ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
    return json.loads(ws.recv(timeout=5))


def buy(venue: SimVenue, symbol: str = "AAPL") -> str:
    order = TradingClient(KEY, SECRET, url_override=venue.trading_url).submit_order(
        MarketOrderRequest(symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    return str(order.id)


def test_a_muted_trade_stream_answers_pings_and_control_messages_and_loses_the_updates(fresh: SimVenue):
    with connect(fresh.trading_stream_url, ping_interval=None) as ws:
        fresh.mute_trade_stream(True)
        assert listen(ws) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
        lost = buy(fresh)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1.0)  # connected, and nothing comes
        assert ws.ping().wait(5), "the muted socket did not answer a ping"
        assert fresh.state()["faults"]["trade_stream_muted"] is True
        fresh.mute_trade_stream(False)
        heard = buy(fresh, "MSFT")
        frames = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert [f["data"]["event"] for f in frames] == ["new", "fill"]
        assert {f["data"]["order"]["id"] for f in frames} == {heard}, "an update of the muted time came (no replay)"
        assert lost != heard


def test_a_half_dead_trade_stream_ignores_pings_and_its_slot_is_held_after_it_closes(fresh: SimVenue):
    fresh.mute_trade_stream(True, answer_pings=False)
    with connect(fresh.trading_stream_url, ping_interval=None) as ws:
        assert listen(ws)["stream"] == "listening"
        assert not ws.ping().wait(1.0), "a half-dead socket answered a ping"
    # the client gave up on it: the venue holds the slot as after a cut
    wait_until(lambda: "trade_updates" in fresh.state()["streams"]["slots"]["held"], what="the slot held", timeout=5)
    with connect(fresh.trading_stream_url, ping_interval=None) as ws:
        refused = listen(ws)
        assert refused["data"]["status"] == "unauthorized" and refused["data"]["error_code"] == 406
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    fresh.mute_trade_stream(False, answer_pings=True)
    wait_until(lambda: not fresh.state()["streams"]["slots"]["held"], what="the hold over", timeout=HOLD + 5)
    with connect(fresh.trading_stream_url, ping_interval=None) as ws:
        assert listen(ws)["stream"] == "listening"
        assert ws.ping().wait(5)


def test_a_half_dead_data_stream_ignores_pings(fresh: SimVenue):
    fresh.mute_data_stream(True, answer_pings=False)
    try:
        with connect(fresh.data_stream_url, ping_interval=None) as ws:
            ws.recv(timeout=5)  # connected
            assert not ws.ping().wait(1.0)
        fresh.mute_data_stream(True, answer_pings=True)
        wait_until(lambda: not fresh.state()["streams"]["slots"]["held"], what="the hold over", timeout=HOLD + 5)
        with connect(fresh.data_stream_url, ping_interval=None) as ws:
            ws.recv(timeout=5)
            assert ws.ping().wait(5), "a muted data stream that answers pings did not"
    finally:
        fresh.mute_data_stream(False)
