"""Smoke tests: the venue starts fast, authenticates, and the main trading paths work
through alpaca-py's TradingClient."""

from __future__ import annotations

import time
from datetime import UTC
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from engine.sim import SimVenue
from tests.engine.sim.simkit import KEY, make_venue


def test_start_is_fast_and_urls_are_local():
    t0 = time.monotonic()
    v = make_venue()
    try:
        assert time.monotonic() - t0 < 5  # generous on a loaded machine; typically ~0.2 s
        assert v.trading_url.startswith("http://127.0.0.1:")
        assert v.trading_stream_url.endswith("/stream")
        assert v.data_stream_url.endswith("/v2/iex")
    finally:
        v.stop()


def test_bad_keys_get_401(venue: SimVenue):
    c = TradingClient(KEY, "wrong", url_override=venue.trading_url)
    with pytest.raises(APIError) as exc:
        c.get_account()
    assert exc.value.status_code == 401
    assert exc.value.code == 40110000


def test_market_buy_fills_at_the_ask(fresh: SimVenue, trading: TradingClient):
    _bid, ask = fresh.quote("AAPL")
    o = trading.submit_order(
        MarketOrderRequest(
            symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="smoke-1"
        )
    )
    assert o.status == OrderStatus.NEW
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.FILLED
    assert Decimal(got.filled_avg_price) == ask
    assert trading.get_order_by_client_id("smoke-1").id == o.id
    pos = trading.get_open_position("AAPL")
    assert pos.qty == "10"
    acct = trading.get_account()
    assert Decimal(acct.cash) == Decimal(100000) - 10 * ask


def test_limit_rests_then_cancel_all(fresh: SimVenue, trading: TradingClient):
    o = trading.submit_order(
        LimitOrderRequest(symbol="MSFT", qty=3, limit_price=100, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert trading.get_order_by_id(o.id).status == OrderStatus.NEW
    assert [x.id for x in trading.get_orders()] == [o.id]
    res = trading.cancel_orders()
    assert [(r.id, r.status) for r in res] == [(o.id, 200)]
    assert trading.get_order_by_id(o.id).status == OrderStatus.CANCELED


def test_runs_on_its_own_in_real_time():
    """Not frozen: the venue clock, prices, fills and the session move by themselves."""
    from datetime import datetime

    from tests.engine.sim.simkit import wait_until

    v = make_venue(frozen_clock=False, speed=600, start_at=datetime(2025, 6, 2, 19, 58, tzinfo=UTC))
    try:
        c = TradingClient(KEY, "sim-secret-0123456789", url_override=v.trading_url)
        q0 = v.state()["quotes"]["AAPL"]
        o = c.submit_order(
            LimitOrderRequest(symbol="AAPL", qty=1, limit_price=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        # two venue minutes to the close at 600x: the day order expires by itself
        wait_until(lambda: c.get_order_by_id(o.id).status == OrderStatus.EXPIRED, timeout=30, what="expiry")
        assert c.get_clock().is_open is False
        assert v.state()["quotes"]["AAPL"] != q0
        assert v.state()["internal_errors"] == 0
    finally:
        v.stop()
