"""House rule 14: risk-reducing actions (stop-loss exits, flatten) are never stranded
by machinery meant to stop new exposure -- per-order caps, stale or missing quotes,
the order-rate throttle, a rollout mode -- while exposure-increasing orders stay
denied on stale data."""

from __future__ import annotations

from datetime import timedelta

from engine.model import DenialReason as R
from engine.model import Side, TradingState
from engine.risk import TripCause, flatten_plan, stop_loss_exit
from engine.sizing import OrderPurpose
from tests.engine.risk.risk_desk import NOW, D, Desk, settings_with

TINY_CAPS = settings_with(risk_management__max_order_notional=D(500), risk_management__max_order_qty=D(3))


def test_flatten_closes_each_position_in_one_order_whatever_the_per_order_caps():
    desk = Desk(TINY_CAPS).holding("AAPL", 40).holding("MSFT", -25)
    plan = flatten_plan(desk.pf, assets=desk.assets, now=NOW)
    assert plan.left_open == {}
    assert {(o.symbol, o.side, o.qty) for o in plan.orders} == {("AAPL", Side.SELL, D(40)), ("MSFT", Side.BUY, D(25))}
    for order in plan.orders:
        assert order.reduce_only and order.operator_confirmed
        assert desk.check(order) is None
    # the caps still hold for orders that open exposure
    assert desk.buy("JPM", 4).reason is R.QUANTITY_EXCEEDS_MAX_PER_ORDER


def test_an_exit_that_would_open_exposure_is_still_denied():
    desk = Desk(TINY_CAPS).holding("AAPL", 10)
    too_big = desk.order("AAPL", Side.SELL, 15, reduce_only=True, purpose=OrderPurpose.FLATTEN, confirmed=True)
    assert desk.check(too_big).reason is R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE


def test_flatten_is_not_denied_by_the_order_rate_throttle():
    desk = Desk(settings_with(risk_management__max_orders_per_second=1)).holding("AAPL", 10).holding("KO", 10)
    desk.risk.record_submit(NOW)
    assert desk.buy("JPM", 1).reason is R.RATE_LIMIT_EXCEEDED
    for order in flatten_plan(desk.pf, now=NOW).orders:
        assert desk.check(order) is None


# -- stale or missing quotes ------------------------------------------------------------------


def test_in_regular_hours_an_exit_without_a_fresh_quote_is_a_market_order_and_passes():
    desk = Desk().holding("AAPL", 10, "100")
    desk.quote("AAPL", "90", age=120)  # stale
    desk.pf.on_price("AAPL", D("90"), NOW, "trade")  # a fresh trade below the stop
    stop = stop_loss_exit(desk.pf, "AAPL", now=NOW, market_open=True)
    assert stop is not None and stop.limit_price is None and stop.qty == 10
    assert desk.check(stop) is None
    [flat] = flatten_plan(desk.pf, now=NOW, market_open=True).orders
    assert flat.limit_price is None and desk.check(flat) is None
    # an order that adds exposure on the same stale quote is denied
    assert desk.buy("AAPL", 1, limit="90.10").reason is R.QUOTE_STALE


def test_in_regular_hours_a_position_without_any_quote_is_closed_at_the_market():
    desk = Desk()
    desk.pf.replace_positions_from_broker([_venue_position("ZZZZ", 10, "20", current="21")])
    b = desk.pf.book("ZZZZ")
    assert b.quote_ts is None and b.mark == D("21")  # marked at the venue's price
    plan = flatten_plan(desk.pf, assets=desk.assets, now=NOW, market_open=True)
    [order] = plan.orders
    assert (order.symbol, order.side, order.qty, order.limit_price) == ("ZZZZ", Side.SELL, D(10), None)
    assert desk.check(order) is None  # outside the universe, no quote: an exit still goes


def test_outside_regular_hours_an_exit_is_a_limit_from_the_last_trade_inside_the_exit_collar():
    desk = Desk().holding("AAPL", 10, "100").holding("MSFT", -5, "400")
    desk.ctx.market_open = False
    desk.ctx.now = NOW + timedelta(hours=8)  # every quote is stale
    desk.pf.on_price("AAPL", D("101.00"), NOW + timedelta(hours=7), "trade")
    plan = flatten_plan(desk.pf, now=desk.ctx.now, market_open=False)
    orders = {o.symbol: o for o in plan.orders}
    assert orders["AAPL"].limit_price == D("97.97")  # 101.00 x (1 - 0.03), rounded toward 101
    assert orders["MSFT"].limit_price == D("412.00")  # the last usable quote's mid 400 x 1.03
    for order in orders.values():
        assert desk.check(order) is None
    # a wider limit than the exit collar is refused
    wild = desk.order("AAPL", Side.SELL, 10, limit="90", reduce_only=True, purpose=OrderPurpose.FLATTEN, confirmed=True)
    assert desk.check(wild).reason is R.PRICE_OUTSIDE_COLLAR


def test_outside_regular_hours_a_position_without_any_price_is_named_with_the_reason():
    desk = Desk()
    desk.pf.replace_positions_from_broker([_venue_position("ZZZZ", 10, "20", current=None)])
    plan = flatten_plan(desk.pf, now=NOW, market_open=False)
    assert plan.orders == []
    assert "no price for ZZZZ" in plan.left_open["ZZZZ"]


def test_a_stop_exit_on_a_stale_quote_goes_out_when_halted_by_the_daily_loss_trip():
    desk = Desk().holding("AAPL", 10, "100")
    desk.ctx.trading_state, desk.ctx.state_cause = TradingState.HALTED, TripCause.DAILY_LOSS
    desk.pf.on_price("AAPL", D("90"), NOW, "trade")
    desk.ctx.now = NOW + timedelta(seconds=10)
    desk.quote("AAPL", "90", age=100)
    stop = stop_loss_exit(desk.pf, "AAPL", now=desk.ctx.now)
    assert stop is not None and desk.check(stop) is None


def _venue_position(symbol: str, qty: int, entry: str, current: str | None):
    from engine.model import Position

    return Position(
        symbol=symbol, qty=D(qty), avg_entry_price=D(entry), last_price=D(current) if current is not None else None
    )
