"""Sizing: signal -> target -> proposed order, and marketable limit prices on ticks."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.model import Side, SideRestriction
from engine.sizing import (
    OrderPurpose,
    ProposedOrder,
    marketable_limit,
    size_batch,
    tick_for,
)
from tests.engine.risk.risk_desk import UNIVERSE, D, Desk, settings_with

OFFSET = D("0.001")


def orders_by_symbol(desk: Desk, signals: dict[str, float]) -> dict[str, ProposedOrder]:
    out = size_batch(signals, desk.pf, overrides=desk.ctx.overrides, assets=UNIVERSE)
    return {o.symbol: o for o in out}


# -- the formula ----------------------------------------------------------------------


def test_signal_times_max_position_times_equity_in_whole_shares_at_the_buy_limit():
    desk = Desk().quote("AAPL", "228.50")  # bid 228.49 ask 228.51
    o = orders_by_symbol(desk, {"AAPL": 0.5})["AAPL"]
    # 0.5 x 10% x 100,000 = 5,000; valued at the limit 228.73 -> 21 shares
    assert (o.side, o.qty, o.limit_price, o.decision_price) == (Side.BUY, D(21), D("228.73"), D("228.50"))
    assert o.target_qty == 21 and o.signal == 0.5 and not o.reduce_only
    assert o.purpose is OrderPurpose.SIGNAL


def test_negative_signal_sells_short_at_the_sell_limit():
    desk = Desk().quote("MSFT", "415.20")
    o = orders_by_symbol(desk, {"MSFT": -0.5})["MSFT"]
    # -5,000 valued at the mid 415.20 -> -12 shares; limit ceil(415.19 x 0.999) = 414.78
    assert (o.side, o.qty, o.limit_price) == (Side.SELL, D(12), D("414.78"))


def test_signal_is_clamped_to_one_and_target_to_the_position_limit():
    desk = Desk().quote("AAPL", "228.50")
    o = orders_by_symbol(desk, {"AAPL": 3.0})["AAPL"]
    assert o.qty * o.limit_price <= D(10_000)
    assert o.qty == 43


def test_size_multiplier_and_override_caps():
    desk = Desk().quote("AAPL", "228.50").override("AAPL", size_multiplier=0.5)
    assert orders_by_symbol(desk, {"AAPL": 1.0})["AAPL"].qty == 21  # 5,000
    desk.override("AAPL", size_multiplier=2.0, max_position_usd=D(1000))
    assert orders_by_symbol(desk, {"AAPL": 1.0})["AAPL"].qty == 4  # capped at 1,000
    desk.override("AAPL", max_position_pct=0.02)
    assert orders_by_symbol(desk, {"AAPL": 1.0})["AAPL"].qty == 8  # 2% of 100,000


def test_order_is_the_delta_from_position_and_working_orders():
    desk = Desk().holding("AAPL", 5)
    desk.working("AAPL", Side.BUY, 10)
    o = orders_by_symbol(desk, {"AAPL": 0.5})["AAPL"]
    assert (o.side, o.qty, o.target_qty) == (Side.BUY, D(6), D(21))


def test_reducing_order_is_flagged_reduce_only():
    desk = Desk().holding("AAPL", 40)
    o = orders_by_symbol(desk, {"AAPL": 0.5})["AAPL"]
    assert (o.side, o.qty, o.reduce_only) == (Side.SELL, D(19), True)
    o = orders_by_symbol(desk, {"AAPL": -0.5})["AAPL"]
    # a reversal only closes on this bar (Alpaca refuses one order through zero)
    assert (o.side, o.qty, o.reduce_only) == (Side.SELL, D(40), True)


# -- threshold and minimum trade ----------------------------------------------------------


def test_below_threshold_holds_the_position_by_default():
    desk = Desk().holding("AAPL", 10)
    assert orders_by_symbol(desk, {"AAPL": 0.05}) == {}


def test_below_threshold_flattens_when_configured():
    desk = Desk(settings_with(position_sizing__below_threshold="flatten")).holding("AAPL", 10)
    o = orders_by_symbol(desk, {"AAPL": 0.05})["AAPL"]
    assert (o.side, o.qty, o.target_qty, o.reduce_only) == (Side.SELL, D(10), D(0), True)


def test_threshold_is_inclusive_of_the_threshold_itself():
    desk = Desk().quote("AAPL", "228.50")
    assert "AAPL" in orders_by_symbol(desk, {"AAPL": 0.1})


def test_change_below_min_trade_size_sends_nothing():
    # T: 0.5 x 10,000 at the buy limit 22.13 -> 225 shares
    desk = Desk().holding("T", 222, "22.10")
    assert orders_by_symbol(desk, {"T": 0.5}) == {}  # 3 x 22.13 = 66 < 100
    desk = Desk().holding("T", 220, "22.10")
    assert orders_by_symbol(desk, {"T": 0.5})["T"].qty == 5  # 110 >= 100


def test_no_quote_no_order_and_bad_numbers_are_skipped():
    desk = Desk().quote("MSFT", "415.20")
    assert orders_by_symbol(desk, {"AAPL": 0.5, "MSFT": float("nan")}) == {}


def test_no_equity_no_orders():
    desk = Desk(equity=0).quote("AAPL", "228.50")
    assert orders_by_symbol(desk, {"AAPL": 1.0}) == {}


# -- scaling ------------------------------------------------------------------------------


def test_gross_targets_over_max_total_exposure_scale_down_proportionally():
    desk = Desk(settings_with(risk_management__max_sector_exposure=1.0)).quote_all()
    names = ["AAPL", "JPM", "JNJ", "AMZN", "PG", "XOM", "GE", "GOOGL", "NEE", "KO"]
    orders = orders_by_symbol(desk, dict.fromkeys(names, 1.0))
    # 10 x 10,000 = 100,000 > 80,000: each target scaled to 8,000
    for o in orders.values():
        value = o.qty * o.limit_price
        assert D(8000) - o.limit_price < value <= D(8000), (o.symbol, value)


def test_sector_over_max_sector_exposure_scales_within_the_sector_only():
    desk = Desk().quote_all()
    orders = orders_by_symbol(desk, {"AAPL": 1.0, "MSFT": 1.0, "NVDA": 1.0, "ORCL": 1.0, "JPM": 1.0})
    for s in ("AAPL", "MSFT", "NVDA", "ORCL"):  # 40,000 of IT -> 7,500 each
        value = orders[s].qty * orders[s].limit_price
        assert D(7500) - orders[s].limit_price < value <= D(7500)
    jpm = orders["JPM"]
    assert D(10_000) - jpm.limit_price < jpm.qty * jpm.limit_price <= D(10_000)


def test_sector_scaling_counts_positions_not_in_the_batch():
    desk = Desk().quote_all().holding("NVDA", 70)  # 70 x 135.40 = 9,478 of IT held
    orders = orders_by_symbol(desk, {"AAPL": 1.0, "MSFT": 1.0})
    room = D(30_000) - D(70) * D("135.40")
    total = sum(o.qty * o.limit_price for o in orders.values())
    assert room - 2 * D("415.62") < total <= room


def test_whole_shares_unless_fractional_and_fractionable():
    desk = Desk(settings_with(position_sizing__fractional=True)).quote_all()
    orders = orders_by_symbol(desk, {"AAPL": 0.5, "T": 0.5, "MSFT": -0.5})
    assert orders["AAPL"].qty != orders["AAPL"].qty.to_integral_value()  # 5000 / 228.73
    assert orders["AAPL"].qty == (D(5000) / D("228.73")).quantize(D("1e-9"), "ROUND_DOWN")
    assert orders["T"].qty == orders["T"].qty.to_integral_value()  # T is not fractionable
    assert orders["MSFT"].qty == 12  # short targets are whole shares


def test_side_restriction_and_shortability_clamp_targets():
    desk = Desk().quote_all().override("AAPL", side=SideRestriction.LONG_ONLY)
    orders = orders_by_symbol(desk, {"AAPL": -1.0, "INTC": -1.0})
    assert orders == {}  # long-only AAPL and hard-to-borrow INTC target zero
    desk.override("MSFT", side=SideRestriction.SHORT_ONLY)
    assert orders_by_symbol(desk, {"MSFT": 1.0}) == {}


def test_order_capped_at_max_order_qty_and_notional():
    desk = Desk(settings_with(risk_management__max_order_qty=D(5))).quote("AAPL", "228.50")
    assert orders_by_symbol(desk, {"AAPL": 1.0})["AAPL"].qty == 5
    s = settings_with(risk_management__max_order_notional=D(1000))
    desk = Desk(s).quote("AAPL", "228.50")
    assert orders_by_symbol(desk, {"AAPL": 1.0})["AAPL"].qty == 4  # 4 x 228.73 <= 1,000


def test_priority_largest_change_first_ties_by_symbol():
    desk = Desk().quote("MSFT", "100").quote("AAPL", "100").quote("JPM", "100")
    orders = size_batch({"MSFT": 0.5, "JPM": 0.9, "AAPL": 0.5}, desk.pf, assets=UNIVERSE)
    assert [o.symbol for o in orders] == ["JPM", "AAPL", "MSFT"]
    assert orders[1].change_value == orders[2].change_value


def test_sizing_53_signals_returns_every_order_in_priority_order():
    desk = Desk().quote_all()
    orders = size_batch({a.symbol: 0.7 for a in UNIVERSE}, desk.pf, assets=UNIVERSE)
    values = [o.change_value for o in orders]
    assert values == sorted(values, reverse=True)
    assert len(orders) > 40


# -- limit prices and ticks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "side, bid, ask, offset, expected",
    [
        (Side.BUY, "228.49", "228.51", "0.001", "228.73"),  # 228.73851 rounded down
        (Side.SELL, "228.49", "228.51", "0.001", "228.27"),  # 228.26151 rounded up
        (Side.BUY, "9.99", "10.00", "0.001", "10.01"),
        (Side.BUY, "9.99", "10.00", "0", "10.00"),
        (Side.BUY, "0.5110", "0.5123", "0.001", "0.5128"),  # sub-dollar: 4 decimals
        (Side.SELL, "0.5120", "0.5123", "0.001", "0.5115"),
        (Side.BUY, "0.9990", "0.9995", "0.001", "1.00"),  # crosses $1: cents
        (Side.SELL, "1.00", "1.01", "0.001", "0.9990"),  # crosses below $1: 4 decimals
        (Side.BUY, "10.000", "10.005", "0", "10.01"),  # off-tick ask: up to stay marketable
        (Side.SELL, "10.005", "10.010", "0", "10.00"),  # off-tick bid: down
        (Side.SELL, "0.0001", "0.0002", "0.5", "0.0001"),  # never below one tick
    ],
)
def test_marketable_limit_rounds_toward_the_quote_on_alpaca_ticks(side, bid, ask, offset, expected):
    px = marketable_limit(side, D(bid), D(ask), D(offset))
    assert str(px) == expected


def test_ticks():
    assert tick_for(D("1")) == D("0.01")
    assert tick_for(D("0.9999")) == D("0.0001")


def _on_grid(px: Decimal) -> bool:
    return px == px.quantize(tick_for(px))


cents = st.integers(min_value=100, max_value=500_000).map(lambda c: D(c) / 100)
sub_dollar = st.integers(min_value=1, max_value=9999).map(lambda c: D(c) / 10_000)


@settings(max_examples=300, deadline=None)
@given(
    price=st.one_of(cents, sub_dollar),
    spread_ticks=st.integers(min_value=0, max_value=20),
    offset=st.sampled_from([D(0), D("0.0005"), D("0.001"), D("0.005"), D("0.02")]),
)
def test_limits_are_marketable_on_the_grid_and_within_the_offset(price, spread_ticks, offset):
    bid = price
    ask = bid + tick_for(bid) * spread_ticks
    assume(_on_grid(ask))  # venue quotes are on the tick grid (off-grid: see the cases above)
    buy = marketable_limit(Side.BUY, bid, ask, offset)
    sell = marketable_limit(Side.SELL, bid, ask, offset)
    assert _on_grid(buy) and _on_grid(sell)
    assert ask <= buy <= ask * (1 + offset), (ask, buy)
    assert bid * (1 - offset) <= sell <= bid or sell == D("0.0001"), (bid, sell)


def test_a_reversal_closes_the_position_first_and_opens_the_other_side_next_bar():
    """Given a long position and a signal that wants a short, when sized, then the order
    only sells what is held (Alpaca refuses one order through zero); once flat, the
    next batch opens the short."""
    from datetime import datetime
    from decimal import Decimal

    from engine.model import Side
    from engine.portfolio import Portfolio
    from engine.sizing import size_batch

    pf = Portfolio(sector_of={"AAPL": "Information Technology"})
    pf.set_account(Decimal("100000"), Decimal("100000"), Decimal("100000"), Decimal("200000"))
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    pf.on_quote("AAPL", Decimal("100.00"), Decimal("100.02"), now)
    pf.apply_fill("AAPL", Side.BUY, Decimal("19"), Decimal("100.00"))

    [order] = size_batch({"AAPL": -0.5}, pf)
    assert order.side is Side.SELL and order.qty == Decimal("19")

    pf.apply_fill("AAPL", Side.SELL, Decimal("19"), Decimal("100.00"))
    [opening] = size_batch({"AAPL": -0.5}, pf)
    assert opening.side is Side.SELL and opening.qty > 0 and not opening.reduce_only
