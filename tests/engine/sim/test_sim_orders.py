"""Matching and order rules, as Alpaca paper applies them, through alpaca-py's TradingClient."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)

from engine.sim import SimVenue
from tests.engine.sim.simkit import Raw

BUY, SELL = OrderSide.BUY, OrderSide.SELL
DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def market(sym: str, qty, side=BUY, tif=DAY, **kw) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=sym, qty=qty, side=side, time_in_force=tif, **kw)


def limit(sym: str, qty, price, side=BUY, tif=DAY, **kw) -> LimitOrderRequest:
    return LimitOrderRequest(symbol=sym, qty=qty, limit_price=price, side=side, time_in_force=tif, **kw)


def refused(fn, status: int, code: int, text: str = "") -> APIError:
    with pytest.raises(APIError) as exc:
        fn()
    err = exc.value
    assert err.status_code == status, err
    assert err.code == code, err
    assert text in err.message, err.message
    return err


# ---------------------------------------------------------------- prices and order types
def test_limit_rests_until_the_quote_reaches_it(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("AAPL", "200.00", "200.02")
    o = trading.submit_order(limit("AAPL", 5, 199.50))
    assert trading.get_order_by_id(o.id).status == OrderStatus.NEW
    fresh.set_quote("AAPL", "199.40", "199.45")  # ask below the limit: fills at the ask
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.FILLED
    assert Decimal(got.filled_avg_price) == Decimal("199.45")
    s = trading.submit_order(limit("AAPL", 5, 199.60, side=SELL))
    assert trading.get_order_by_id(s.id).status == OrderStatus.NEW
    fresh.set_quote("AAPL", "199.70", "199.72")  # bid above the sell limit: fills at the bid
    got = trading.get_order_by_id(s.id)
    assert got.status == OrderStatus.FILLED and Decimal(got.filled_avg_price) == Decimal("199.70")


def test_marketable_limit_fills_at_the_quote_not_the_limit(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("MSFT", "400.00", "400.05")
    o = trading.submit_order(limit("MSFT", 2, 410))
    assert Decimal(trading.get_order_by_id(o.id).filled_avg_price) == Decimal("400.05")


def test_stop_and_stop_limit_trigger(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("NVDA", "100.00", "100.02")
    stop = trading.submit_order(StopOrderRequest(symbol="NVDA", qty=3, side=BUY, stop_price=101, time_in_force=DAY))
    sl = trading.submit_order(
        StopLimitOrderRequest(symbol="NVDA", qty=3, side=BUY, stop_price=101, limit_price=101.5, time_in_force=DAY)
    )
    assert trading.get_order_by_id(stop.id).status == OrderStatus.NEW
    fresh.set_quote("NVDA", "101.60", "101.70")  # triggers both; the stop-limit's limit is below the ask
    assert trading.get_order_by_id(stop.id).status == OrderStatus.FILLED
    assert Decimal(trading.get_order_by_id(stop.id).filled_avg_price) == Decimal("101.70")
    assert trading.get_order_by_id(sl.id).status == OrderStatus.NEW
    fresh.set_quote("NVDA", "101.40", "101.45")
    got = trading.get_order_by_id(sl.id)
    assert got.status == OrderStatus.FILLED and Decimal(got.filled_avg_price) <= Decimal("101.5")


def test_trailing_stop_follows_the_high(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("XOM", "100.00", "100.02")
    trading.submit_order(market("XOM", 4))
    o = trading.submit_order(TrailingStopOrderRequest(symbol="XOM", qty=4, side=SELL, trail_price=2, time_in_force=GTC))
    assert Decimal(trading.get_order_by_id(o.id).stop_price) == Decimal("98.00")
    fresh.set_quote("XOM", "105.00", "105.02")
    got = trading.get_order_by_id(o.id)
    assert Decimal(got.hwm) == Decimal("105.00") and Decimal(got.stop_price) == Decimal("103.00")
    fresh.set_quote("XOM", "102.90", "102.95")
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.FILLED and Decimal(got.filled_avg_price) == Decimal("102.90")


def test_ioc_and_fok(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("JPM", "200.00", "200.05")
    ioc = trading.submit_order(limit("JPM", 5, 199, tif=IOC))
    fok = trading.submit_order(limit("JPM", 5, 199, tif=FOK))
    assert trading.get_order_by_id(ioc.id).status == OrderStatus.CANCELED
    assert trading.get_order_by_id(fok.id).status == OrderStatus.CANCELED
    fresh.set_partial_fill_prob(1.0)
    ioc = trading.get_order_by_id(trading.submit_order(limit("JPM", 10, 201, tif=IOC)).id)
    assert ioc.status == OrderStatus.CANCELED and 0 < Decimal(ioc.filled_qty) < 10
    fok = trading.get_order_by_id(trading.submit_order(limit("JPM", 10, 201, tif=FOK)).id)
    assert fok.status == OrderStatus.FILLED and fok.filled_qty == "10"  # never partial


def test_partial_fills_complete_later(fresh: SimVenue, trading: TradingClient):
    fresh.set_partial_fill_prob(1.0)
    o = trading.submit_order(market("KO", 50))
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.PARTIALLY_FILLED
    first = Decimal(got.filled_qty)
    assert 0 < first < 50
    fresh.set_partial_fill_prob(0.0)
    fresh.advance(1)
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.FILLED and got.filled_qty == "50"
    assert trading.get_open_position("KO").qty == "50"


def test_notional_and_fractional(fresh: SimVenue, trading: TradingClient, raw: Raw):
    fresh.set_quote("AAPL", "200.00", "200.00")
    o = trading.submit_order(MarketOrderRequest(symbol="AAPL", notional=500, side=BUY, time_in_force=DAY))
    got = trading.get_order_by_id(o.id)
    assert got.notional == "500" and got.qty is None
    assert got.status == OrderStatus.FILLED and Decimal(got.filled_qty) == Decimal("2.5")
    frac = trading.get_order_by_id(trading.submit_order(market("AAPL", 0.25)).id)
    assert frac.status == OrderStatus.FILLED and frac.filled_qty == "0.25"
    assert trading.get_open_position("AAPL").qty == "2.75"
    non_fractionable = [a["symbol"] for a in raw.get("/v2/assets").json() if not a["fractionable"]]
    assert non_fractionable
    refused(lambda: trading.submit_order(market(non_fractionable[0], 1.5)), 422, 42210000, "not fractionable")
    refused(lambda: trading.submit_order(market("AAPL", 1.5, tif=GTC)), 422, 42210000, "DAY")
    refused(lambda: trading.submit_order(market("MSFT", 0.5, side=SELL)), 403, 40310000, "cannot be sold short")


# ---------------------------------------------------------------- sessions
def test_outside_hours_orders_wait_for_the_open(fresh: SimVenue, trading: TradingClient):
    fresh.clock_to("next_close")
    assert trading.get_clock().is_open is False
    o = trading.submit_order(market("PG", 3))
    assert o.status == OrderStatus.ACCEPTED
    fresh.advance(3600)
    assert trading.get_order_by_id(o.id).status == OrderStatus.ACCEPTED
    fresh.clock_to("next_open")
    got = trading.get_order_by_id(o.id)
    assert got.status == OrderStatus.FILLED
    assert got.filled_at.isoformat() == trading.get_clock().timestamp.astimezone(got.filled_at.tzinfo).isoformat()


def test_day_orders_expire_at_the_close_gtc_do_not(fresh: SimVenue, trading: TradingClient):
    day = trading.submit_order(limit("CVX", 1, 1.00))
    gtc = trading.submit_order(limit("CVX", 1, 1.01, tif=GTC))
    close = trading.get_clock().next_close
    fresh.clock_to("next_close")
    got = trading.get_order_by_id(day.id)
    assert got.status == OrderStatus.EXPIRED and got.expired_at == close
    assert trading.get_order_by_id(gtc.id).status == OrderStatus.NEW
    fresh.clock_to("next_open")
    assert trading.get_order_by_id(gtc.id).status == OrderStatus.NEW
    # after the close, last_equity is the equity at the close
    assert trading.get_account().last_equity == trading.get_account().equity


def test_opg_and_cls(fresh: SimVenue, trading: TradingClient):
    refused(lambda: trading.submit_order(market("PFE", 1, tif=TimeInForce.OPG)), 422, 42210000, "opg")
    cls = trading.submit_order(market("PFE", 2, tif=TimeInForce.CLS))
    fresh.advance(600)
    assert trading.get_order_by_id(cls.id).status == OrderStatus.NEW
    fresh.clock_to("next_close")
    assert trading.get_order_by_id(cls.id).status == OrderStatus.FILLED
    opg = trading.submit_order(market("PFE", 2, side=SELL, tif=TimeInForce.OPG))
    assert opg.status == OrderStatus.ACCEPTED
    fresh.clock_to("next_open")
    assert trading.get_order_by_id(opg.id).status == OrderStatus.FILLED
    with pytest.raises(APIError):
        trading.get_open_position("PFE")


# ---------------------------------------------------------------- account rules
def test_buying_power_with_margin(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("COST", "1000.00", "1000.00")
    acct = trading.get_account()
    # a new Alpaca paper account: multiplier 4, buying power 4x equity
    assert acct.multiplier == "4"
    assert Decimal(acct.buying_power) == 4 * Decimal(acct.equity) == Decimal(400000)
    trading.submit_order(market("COST", 350))  # $350,000 on margin
    acct = trading.get_account()
    assert Decimal(acct.cash) == Decimal(-250000)
    assert Decimal(acct.buying_power) == Decimal(50000)
    err = refused(lambda: trading.submit_order(market("COST", 51)), 403, 40310000, "insufficient buying power")
    assert err.message == "insufficient buying power"
    # open buy orders hold buying power too
    trading.submit_order(limit("COST", 40, 999))
    refused(lambda: trading.submit_order(limit("COST", 11, 999)), 403, 40310000, "insufficient buying power")


def test_shorting_rules(fresh: SimVenue, trading: TradingClient, raw: Raw):
    o = trading.submit_order(market("WMT", 10, side=SELL))
    assert trading.get_order_by_id(o.id).status == OrderStatus.FILLED
    pos = trading.get_open_position("WMT")
    assert pos.qty == "-10" and pos.side.value == "short" and Decimal(pos.market_value) < 0
    htb = [a["symbol"] for a in raw.get("/v2/assets").json() if not a["easy_to_borrow"]]
    refused(lambda: trading.submit_order(market(htb[0], 1, side=SELL)), 403, 40310000, "easy to borrow")
    # a buy to cover may not exceed the short (no flip in one order)
    refused(lambda: trading.submit_order(market("WMT", 11)), 403, 40310000, "insufficient qty available")
    trading.set_account_configurations(
        __import__("alpaca.trading.models", fromlist=["AccountConfiguration"]).AccountConfiguration(
            **{**raw.get("/v2/account/configurations").json(), "no_shorting": True}
        )
    )
    try:
        refused(lambda: trading.submit_order(market("KO", 1, side=SELL)), 403, 40310000, "not allowed to short")
    finally:
        raw.patch("/v2/account/configurations", json={"no_shorting": False})


def test_insufficient_qty_available(fresh: SimVenue, trading: TradingClient):
    trading.submit_order(market("HD", 10))
    trading.submit_order(limit("HD", 6, 9999, side=SELL))  # holds 6 of the 10
    assert trading.get_open_position("HD").qty_available == "4"
    err = refused(
        lambda: trading.submit_order(limit("HD", 5, 9999, side=SELL)),
        403,
        40310000,
        "insufficient qty available for order (requested: 5, available: 4)",
    )
    assert err.message.startswith("insufficient qty available")
    refused(lambda: trading.submit_order(market("HD", 11, side=SELL)), 403, 40310000, "insufficient qty")


def test_wash_trade_refused(fresh: SimVenue, trading: TradingClient):
    trading.submit_order(market("V", 5))
    trading.submit_order(limit("V", 5, 1.00))  # resting buy
    refused(
        lambda: trading.submit_order(limit("V", 5, 9999, side=SELL)), 403, 40310000, "potential wash trade detected"
    )


def test_client_order_id_unique_forever(fresh: SimVenue, trading: TradingClient):
    o = trading.submit_order(limit("MA", 1, 1.00, client_order_id="cid-forever"))
    trading.cancel_order_by_id(o.id)
    refused(
        lambda: trading.submit_order(limit("MA", 1, 1.00, client_order_id="cid-forever")),
        422,
        42210000,
        "client_order_id must be unique",
    )
    long_id = "x" * 129
    refused(lambda: trading.submit_order(limit("MA", 1, 1.00, client_order_id=long_id)), 422, 42210000, "128")


def test_sub_penny_prices(fresh: SimVenue, trading: TradingClient):
    refused(lambda: trading.submit_order(limit("MRK", 1, 10.001)), 422, 42210000, "sub-penny")
    refused(lambda: trading.submit_order(limit("MRK", 1, 0.12345)), 422, 42210000, "sub-penny")
    ok = trading.submit_order(limit("MRK", 1, 0.1234))  # 4 decimals below $1
    assert ok.limit_price == "0.1234"


# ---------------------------------------------------------------- cancel / replace
def test_replace_creates_a_new_order(fresh: SimVenue, trading: TradingClient):
    o = trading.submit_order(limit("ABBV", 5, 1.00, tif=GTC, client_order_id="rep-1"))
    new = trading.replace_order_by_id(o.id, ReplaceOrderRequest(qty=7, limit_price=1.05, client_order_id="rep-1b"))
    assert new.id != o.id and str(new.replaces) == str(o.id)
    assert new.qty == "7" and new.limit_price == "1.05" and new.client_order_id == "rep-1b"
    old = trading.get_order_by_id(o.id)
    assert old.status == OrderStatus.REPLACED and str(old.replaced_by) == str(new.id)
    refused(lambda: trading.replace_order_by_id(o.id, ReplaceOrderRequest(qty=1)), 422, 42210000, "replaced")
    refused(lambda: trading.cancel_order_by_id(o.id), 422, 42210000, "replaced")


def test_cancel_rules(fresh: SimVenue, trading: TradingClient):
    filled = trading.submit_order(market("LLY", 1))
    refused(lambda: trading.cancel_order_by_id(filled.id), 422, 42210000, '"filled"')
    refused(
        lambda: trading.cancel_order_by_id("4f1ef5b2-7d55-4c5e-8a8f-000000000000"), 404, 40410000, "order not found"
    )


def test_pending_cancel_and_pending_replace(fresh: SimVenue, trading: TradingClient, raw: Raw):
    fresh.set_faults(pending_ms=60_000)  # the venue takes a minute to confirm
    a = trading.submit_order(limit("UNH", 1, 1.00, tif=GTC))
    b = trading.submit_order(limit("UNH", 1, 1.01, tif=GTC))
    trading.cancel_order_by_id(a.id)
    assert trading.get_order_by_id(a.id).status == OrderStatus.PENDING_CANCEL
    new = trading.replace_order_by_id(b.id, ReplaceOrderRequest(limit_price=1.02))
    assert new.status == OrderStatus.PENDING_NEW
    assert trading.get_order_by_id(b.id).status == OrderStatus.PENDING_REPLACE
    refused(lambda: trading.cancel_order_by_id(b.id), 422, 42210000, "pending replace")
    res = {str(r.id): r.status for r in trading.cancel_orders()}
    assert res[str(b.id)] == 422 and res[str(a.id)] == 200
    # the same, with a short delay that runs out in real time
    fresh.set_faults(pending_ms=50)
    c = trading.submit_order(limit("UNH", 1, 1.03, tif=GTC))
    trading.cancel_order_by_id(c.id)
    assert trading.get_order_by_id(c.id).status in (OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED)
    from tests.engine.sim.simkit import wait_until

    wait_until(lambda: trading.get_order_by_id(c.id).status == OrderStatus.CANCELED, what="cancel confirmed")
    d = trading.submit_order(limit("UNH", 1, 1.04, tif=GTC))
    nd = trading.replace_order_by_id(d.id, ReplaceOrderRequest(limit_price=1.05))
    wait_until(lambda: trading.get_order_by_id(nd.id).status == OrderStatus.NEW, what="replace confirmed")
    assert trading.get_order_by_id(d.id).status == OrderStatus.REPLACED


# ---------------------------------------------------------------- listing
def test_list_orders_filters(fresh: SimVenue, trading: TradingClient):
    ids = []
    for i, sym in enumerate(["AAPL", "MSFT", "AAPL", "NVDA"]):
        ids.append(str(trading.submit_order(limit(sym, 1, 1.00 + i / 100, tif=GTC)).id))
        fresh.advance(1)
    filled = str(trading.submit_order(market("AMZN", 1)).id)
    listed = lambda **kw: [str(o.id) for o in trading.get_orders(GetOrdersRequest(**kw))]  # noqa: E731
    assert listed() == ids[::-1]
    assert listed(direction="asc") == ids
    assert listed(limit=2) == ids[::-1][:2]
    assert listed(symbols=["AAPL"]) == [ids[2], ids[0]]
    assert listed(status=QueryOrderStatus.CLOSED) == [filled]
    assert listed(status=QueryOrderStatus.ALL)[:5] == [filled, *ids[::-1]]
    assert listed(side=SELL) == []
    t1 = trading.get_order_by_id(ids[1]).submitted_at
    assert listed(after=t1, direction="asc") == ids[2:]
    assert listed(until=t1, direction="asc") == ids[:1]


# ---------------------------------------------------------------- positions
def test_close_position_by_qty_and_percentage(fresh: SimVenue, trading: TradingClient):
    trading.submit_order(market("CAT", 10))
    o = trading.close_position("CAT", ClosePositionRequest(qty="4"))
    assert o.side == SELL and o.qty == "4"
    assert trading.get_open_position("CAT").qty == "6"
    trading.close_position("CAT", ClosePositionRequest(percentage="50"))
    assert trading.get_open_position("CAT").qty == "3"
    trading.close_position("CAT")
    refused(lambda: trading.get_open_position("CAT"), 404, 40410000, "position does not exist")
    refused(lambda: trading.close_position("CAT"), 404, 40410000, "position does not exist")


def test_close_all_positions_cancels_orders_first(fresh: SimVenue, trading: TradingClient):
    trading.submit_order(market("AAPL", 5))
    trading.submit_order(market("MSFT", 3, side=SELL))
    resting = trading.submit_order(limit("AAPL", 5, 9999, side=SELL, tif=GTC))
    res = trading.close_all_positions(cancel_orders=True)
    assert sorted((r.symbol, r.status) for r in res) == [("AAPL", 200), ("MSFT", 200)]
    assert trading.get_order_by_id(resting.id).status == OrderStatus.CANCELED
    assert trading.get_all_positions() == []


def test_cash_and_equity_follow_fills(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("GS", "500.00", "500.10")
    trading.submit_order(market("GS", 10))
    acct = trading.get_account()
    assert Decimal(acct.cash) == Decimal("100000") - Decimal("5001.00")
    pos = trading.get_open_position("GS")
    assert Decimal(pos.cost_basis) == Decimal("5001.00")
    assert Decimal(acct.equity) == Decimal(acct.cash) + Decimal(pos.market_value)
    fresh.set_quote("GS", "510.00", "510.10")
    trading.submit_order(market("GS", 10, side=SELL))
    assert Decimal(trading.get_account().cash) == Decimal("100000") - Decimal("5001.00") + Decimal("5100.00")


def test_account_configuration_switches(fresh: SimVenue, trading: TradingClient, raw: Raw):
    r = raw.patch("/v2/account/configurations", json={"suspend_trade": True})
    assert r.json()["suspend_trade"] is True
    try:
        assert trading.get_account().trading_blocked is True
        refused(lambda: trading.submit_order(market("AAPL", 1)), 403, 40310000, "suspended")
    finally:
        raw.patch("/v2/account/configurations", json={"suspend_trade": False})
    r = raw.patch("/v2/account/configurations", json={"max_margin_multiplier": "1"})
    try:
        assert Decimal(trading.get_account().buying_power) == Decimal(100000)
    finally:
        raw.patch("/v2/account/configurations", json={"max_margin_multiplier": "2"})
    assert raw.patch("/v2/account/configurations", json={"max_margin_multiplier": "9"}).status_code == 422


def test_assets(fresh: SimVenue, trading: TradingClient):
    from alpaca.trading.requests import GetAssetsRequest

    assets = trading.get_all_assets(GetAssetsRequest(exchange="NASDAQ"))
    assert assets and all(a.exchange.value == "NASDAQ" for a in assets)
    a = trading.get_asset("AAPL")
    assert trading.get_asset(str(a.id)).symbol == "AAPL"
    refused(lambda: trading.get_asset("NOPE"), 404, 40410000)


def test_clock_and_calendar(fresh: SimVenue, trading: TradingClient):
    from alpaca.trading.requests import GetCalendarRequest

    c = trading.get_clock()
    assert c.is_open and c.next_close > c.timestamp and c.next_open > c.next_close
    days = trading.get_calendar(
        GetCalendarRequest(start=datetime(2025, 11, 24).date(), end=datetime(2025, 12, 31).date())
    )
    by_date = {d.date.isoformat(): d for d in days}
    assert "2025-11-27" not in by_date and "2025-12-25" not in by_date
    assert by_date["2025-11-28"].close.hour == 13 and by_date["2025-12-24"].close.hour == 13
    assert by_date["2025-12-26"].open.hour == 9 and by_date["2025-12-26"].close.hour == 16
    assert timedelta(0) < c.next_close - c.timestamp <= timedelta(hours=6, minutes=30)


def test_fill_during_pending_replace_rejects_the_replacement(fresh: SimVenue, trading: TradingClient):
    from tests.engine.sim.simkit import wait_until

    fresh.set_quote("TMO", "500.00", "500.10")
    fresh.set_faults(pending_ms=300)
    o = trading.submit_order(limit("TMO", 2, 499, tif=GTC))
    new = trading.replace_order_by_id(o.id, ReplaceOrderRequest(limit_price=498))
    assert trading.get_order_by_id(o.id).status == OrderStatus.PENDING_REPLACE
    fresh.set_quote("TMO", "498.90", "498.95")  # the original can still fill while the replace is pending
    assert trading.get_order_by_id(o.id).status == OrderStatus.FILLED
    wait_until(lambda: trading.get_order_by_id(new.id).status == OrderStatus.REJECTED, what="replacement rejected")
    assert trading.get_open_position("TMO").qty == "2"
    assert trading.get_orders() == []


def test_replace_a_trailing_stop(fresh: SimVenue, trading: TradingClient):
    fresh.set_quote("HON", "200.00", "200.02")
    trading.submit_order(market("HON", 3))
    o = trading.submit_order(
        TrailingStopOrderRequest(symbol="HON", qty=3, side=SELL, trail_percent=5, time_in_force=GTC)
    )
    new = trading.replace_order_by_id(o.id, ReplaceOrderRequest(trail=2))
    assert new.trail_percent == "2" and Decimal(new.stop_price) == Decimal("196.00")
