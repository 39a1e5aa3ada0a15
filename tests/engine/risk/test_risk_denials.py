"""One scenario per pre-trade DenialReason: given a portfolio, when an order is
checked, then it is denied with exactly that reason (and the detail names numbers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from engine.model import DenialReason as R
from engine.model import RolloutMode, Side, SideRestriction, TradingState
from engine.risk import TripCause
from engine.sizing import size_batch
from tests.engine.risk.risk_desk import NOW, UNIVERSE, D, Desk, settings_with

# Reasons given by the approval queue, not by a pre-trade check.
NOT_PRE_TRADE = {R.APPROVAL_EXPIRED, R.REJECTED_BY_OPERATOR}
COVERED: set[R] = set()


def denied(denial, reason: R) -> None:
    COVERED.add(reason)
    assert denial is not None, f"expected {reason.value}, the order passed"
    assert denial.reason is reason, f"expected {reason.value}, got {denial}"
    assert denial.detail, "a denial names its numbers"


def test_a_plain_order_within_every_limit_passes():
    desk = Desk().quote("AAPL", "228.50")
    assert desk.buy("AAPL", 10) is None


def test_trading_halted_denies_a_new_order():
    desk = Desk().quote("AAPL", "228.50")
    desk.ctx.trading_state = TradingState.HALTED
    desk.ctx.state_cause = TripCause.OPERATOR
    denied(desk.buy("AAPL", 10), R.TRADING_HALTED)


def test_reduce_only_order_that_would_flip_the_position_is_denied():
    desk = Desk().holding("AAPL", 10)
    d = desk.sell("AAPL", 20, reduce_only=True)
    denied(d, R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE)
    assert "from 10 to -10" in d.detail


def test_reducing_state_denies_an_order_that_adds_exposure():
    desk = Desk().holding("AAPL", 10)
    desk.ctx.trading_state = TradingState.REDUCING
    denied(desk.buy("AAPL", 5), R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE)
    assert desk.sell("AAPL", 5) is None


def test_symbol_in_mode_off_is_never_traded():
    desk = Desk().quote("AAPL", "228.50").override("AAPL", mode=RolloutMode.OFF)
    denied(desk.buy("AAPL", 1), R.SYMBOL_MODE_OFF)


def test_default_mode_off_denies_symbols_without_an_override():
    desk = Desk(settings_with(rollout__default_mode=RolloutMode.OFF)).quote("MSFT", "415.20")
    denied(desk.buy("MSFT", 1), R.SYMBOL_MODE_OFF)
    desk.override("MSFT", mode=RolloutMode.AUTO)
    assert desk.buy("MSFT", 1) is None


def test_symbol_outside_the_allowlist_is_denied():
    desk = Desk(settings_with(rollout__allowlist=["MSFT"])).quote("AAPL", "228.50")
    denied(desk.buy("AAPL", 1), R.SYMBOL_NOT_ALLOWED)


def test_symbol_outside_the_universe_is_denied():
    desk = Desk().quote("ZZZZ", "10")
    denied(desk.buy("ZZZZ", 1), R.SYMBOL_NOT_ALLOWED)


def test_restricted_symbol_is_denied():
    desk = Desk(settings_with(risk_management__restricted_symbols=["AAPL"])).quote("AAPL", "228.50")
    denied(desk.buy("AAPL", 1), R.SYMBOL_RESTRICTED)


def test_long_only_symbol_cannot_be_sold_short():
    desk = Desk().quote("AAPL", "228.50").override("AAPL", side=SideRestriction.LONG_ONLY)
    denied(desk.sell("AAPL", 5), R.SIDE_RESTRICTED)


def test_short_only_symbol_cannot_go_long_but_can_cover():
    desk = Desk().holding("AAPL", -10).override("AAPL", side=SideRestriction.SHORT_ONLY)
    assert desk.buy("AAPL", 10) is None  # covering reduces
    denied(desk.buy("AAPL", 11), R.SIDE_RESTRICTED)


@dataclass(frozen=True)
class _Flags:
    sector: str = "Information Technology"
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True
    tradable: bool = True


def test_asset_not_tradable_is_denied():
    desk = Desk(assets={"HALT": _Flags(tradable=False)}).quote("HALT", "20")
    denied(desk.buy("HALT", 1), R.ASSET_NOT_TRADABLE)


def test_fractional_quantity_is_denied_when_fractional_trading_is_off():
    desk = Desk().quote("AAPL", "228.50")
    denied(desk.buy("AAPL", "1.5"), R.ASSET_NOT_TRADABLE)


def test_fractional_quantity_is_denied_for_an_asset_that_is_not_fractionable():
    desk = Desk(settings_with(position_sizing__fractional=True)).quote("T", "22.10")
    denied(desk.buy("T", "1.5"), R.ASSET_NOT_TRADABLE)
    desk.quote("AAPL", "228.50")
    assert desk.buy("AAPL", "1.5") is None


def test_short_sale_of_a_hard_to_borrow_asset_is_denied():
    # INTC is shortable but not easy to borrow in config/universe.toml
    desk = Desk().quote("INTC", "22.40")
    denied(desk.sell("INTC", 10), R.ASSET_NOT_SHORTABLE)


def test_selling_a_long_in_a_hard_to_borrow_asset_is_allowed():
    desk = Desk().holding("INTC", 10)
    assert desk.sell("INTC", 10) is None


def test_order_notional_above_the_maximum_is_denied():
    desk = Desk().quote("AAPL", "228.50")
    d = desk.buy("AAPL", 300)  # ~68,600 > 50,000
    denied(d, R.NOTIONAL_EXCEEDS_MAX_PER_ORDER)
    assert "50000" in d.detail


def test_order_quantity_above_the_maximum_is_denied():
    desk = Desk(settings_with(risk_management__max_order_qty=D(5))).quote("AAPL", "228.50")
    denied(desk.buy("AAPL", 6), R.QUANTITY_EXCEEDS_MAX_PER_ORDER)


def test_limit_far_from_the_quote_is_outside_the_collar():
    desk = Desk().quote("AAPL", "100")  # ask 100.01
    denied(desk.buy("AAPL", 1, limit="106.00"), R.PRICE_OUTSIDE_COLLAR)
    denied(desk.sell("AAPL", 1, limit="94.00"), R.PRICE_OUTSIDE_COLLAR)
    assert desk.buy("AAPL", 1, limit="105.00") is None


def test_quote_older_than_max_quote_age_is_stale():
    desk = Desk().quote("AAPL", "228.50", age=31)
    d = desk.buy("AAPL", 1)
    denied(d, R.QUOTE_STALE)
    assert "31.0s" in d.detail


def test_no_quote_is_a_missing_quote():
    desk = Desk()
    denied(desk.buy("AAPL", 1), R.QUOTE_MISSING)


def test_crossed_quote_is_not_usable():
    desk = Desk()
    desk.pf.on_quote("AAPL", D("229"), D("228"), NOW)
    denied(desk.buy("AAPL", 1, limit="228.00"), R.QUOTE_MISSING)


def test_position_above_max_position_size_is_denied():
    desk = Desk().quote("AAPL", "228.50")
    d = desk.buy("AAPL", 44)  # 44 x 228.74 = 10,064 > 10% of 100,000
    denied(d, R.POSITION_EXCEEDS_MAX)
    assert desk.buy("AAPL", 43) is None


def test_position_above_the_symbol_override_is_denied():
    desk = Desk().quote("AAPL", "228.50").override("AAPL", max_position_usd=D(2000))
    denied(desk.buy("AAPL", 9), R.POSITION_EXCEEDS_MAX)
    assert desk.buy("AAPL", 8) is None
    desk.override("AAPL", max_position_pct=0.01)
    denied(desk.buy("AAPL", 5), R.POSITION_EXCEEDS_MAX)


def _spread_book(desk: Desk, symbols: list[str], value: int) -> None:
    for sym in symbols:
        px = UNIVERSE.get(sym).price
        desk.holding(sym, int(value / px))


def test_gross_exposure_above_max_total_exposure_is_denied():
    desk = Desk().quote_all()
    # 8 positions of ~9,500 in 8 sectors: ~76,000 gross, no sector above 30%
    _spread_book(desk, ["AAPL", "JPM", "JNJ", "AMZN", "PG", "XOM", "GE", "GOOGL"], 9500)
    assert desk.pf.committed_gross > D(75000)
    d = desk.buy("NEE", 80)  # ~6,000 more
    denied(d, R.GROSS_EXPOSURE_EXCEEDS_MAX)
    assert "80000" in d.detail.replace(",", "")


def test_sector_exposure_above_max_sector_exposure_is_denied():
    desk = Desk().quote_all()
    _spread_book(desk, ["AAPL", "MSFT", "NVDA"], 9500)  # ~28,500 of IT
    d = desk.buy("ORCL", 15)  # ~2,500 more IT
    denied(d, R.SECTOR_EXPOSURE_EXCEEDS_MAX)
    assert "Information Technology" in d.detail
    assert desk.buy("JPM", 10) is None  # another sector is fine


def test_working_orders_count_towards_sector_exposure():
    desk = Desk().quote_all()
    for sym in ("AAPL", "MSFT", "NVDA"):
        desk.working(sym, Side.BUY, int(9500 / UNIVERSE.get(sym).price))
    denied(desk.buy("ORCL", 15), R.SECTOR_EXPOSURE_EXCEEDS_MAX)


def test_daily_loss_beyond_the_limit_denies_new_exposure_but_not_reductions():
    desk = Desk().holding("AAPL", 20).quote("MSFT", "415.20")
    desk.pf.set_account(desk.pf.cash, D(97_000), D(100_000), D(200_000))  # -3% today
    d = desk.buy("MSFT", 1)
    denied(d, R.DAILY_LOSS_EXCEEDED)
    assert desk.sell("AAPL", 20) is None


def test_loss_to_stop_above_max_position_risk_is_denied():
    s = settings_with(risk_management__stop_loss_pct=0.5, risk_management__max_position_risk=0.02)
    desk = Desk(s).quote("AAPL", "228.50")
    d = desk.buy("AAPL", 20)  # ~4,575 x 50% to the stop = ~2,287 > 2,000
    denied(d, R.POSITION_RISK_EXCEEDS_MAX)
    assert desk.buy("AAPL", 17) is None


def test_order_beyond_buying_power_is_denied():
    desk = Desk(buying_power=1000).quote("AAPL", "228.50")
    denied(desk.buy("AAPL", 5), R.INSUFFICIENT_BUYING_POWER)
    assert desk.buy("AAPL", 4) is None


def test_orders_opened_since_the_account_snapshot_use_up_buying_power():
    desk = Desk(buying_power=3000).quote("AAPL", "228.50").quote("MSFT", "415.20")
    desk.working("AAPL", Side.BUY, 10)  # ~2,285 reserved
    denied(desk.buy("MSFT", 2), R.INSUFFICIENT_BUYING_POWER)
    desk.pf.set_account(desk.pf.cash, desk.pf.equity, desk.pf.last_equity, D(3000))
    assert desk.buy("MSFT", 2) is None  # the new snapshot is authoritative


def test_same_side_order_already_working_is_a_duplicate():
    desk = Desk().quote("AAPL", "228.50")
    desk.working("AAPL", Side.BUY, 5)
    denied(desk.buy("AAPL", 5), R.DUPLICATE_ORDER)


def test_opposite_side_order_working_would_be_a_wash_trade():
    desk = Desk().holding("AAPL", 10)
    desk.working("AAPL", Side.SELL, 5)
    denied(desk.buy("AAPL", 5), R.OPPOSITE_SIDE_ORDER_OPEN)


def test_orders_per_second_throttle():
    desk = Desk().quote("AAPL", "228.50")
    for i in range(20):
        desk.risk.record_submit(NOW - timedelta(milliseconds=900 - i))
    d = desk.buy("AAPL", 1)
    denied(d, R.RATE_LIMIT_EXCEEDED)
    assert "20/s" in d.detail
    desk.ctx.now = NOW + timedelta(seconds=1)
    desk.quote("AAPL", "228.50")
    assert desk.buy("AAPL", 1) is None  # the window slid


def test_orders_per_minute_throttle():
    desk = Desk().quote("AAPL", "228.50")
    for i in range(180):
        desk.risk.record_submit(NOW - timedelta(seconds=59) + timedelta(milliseconds=300 * i))
    d = desk.buy("AAPL", 1)
    denied(d, R.RATE_LIMIT_EXCEEDED)
    assert "/min" in d.detail


def test_max_orders_per_bar_denies_the_next_signal_order():
    desk = Desk().quote("AAPL", "228.50")
    desk.ctx.orders_this_bar = 10
    denied(desk.buy("AAPL", 1), R.MAX_ORDERS_PER_BAR_EXCEEDED)


def test_the_re_check_at_approval_does_not_count_the_order_twice():
    desk = Desk().quote("AAPL", "228.50")
    desk.ctx.orders_this_bar = 10
    desk.ctx.at_approval = True
    assert desk.buy("AAPL", 1) is None


def test_signal_batch_over_max_orders_per_bar_denies_the_smallest_changes():
    desk = Desk().quote_all()
    signals = {a.symbol: 0.5 for a in UNIVERSE}
    outcomes = []
    for o in size_batch(signals, desk.pf, overrides=desk.ctx.overrides, assets=UNIVERSE):
        d = desk.check(o)
        if d is None:
            desk.ctx.orders_this_bar += 1
            desk.working(o.symbol, o.side, o.qty)
        outcomes.append(d.reason if d else None)
    assert outcomes[:10] == [None] * 10
    assert set(outcomes[10:]) == {R.MAX_ORDERS_PER_BAR_EXCEEDED}
    COVERED.add(R.MAX_ORDERS_PER_BAR_EXCEEDED)


def test_market_closed_denies_signal_orders():
    desk = Desk().quote("AAPL", "228.50")
    desk.ctx.market_open = False
    denied(desk.buy("AAPL", 1), R.MARKET_CLOSED)


def test_execution_disabled_denies_last_so_a_dry_run_shows_real_denials():
    desk = Desk(settings_with(execution__enabled=False)).quote("AAPL", "228.50")
    denied(desk.buy("AAPL", 1), R.EXECUTION_DISABLED)
    denied(desk.buy("AAPL", 100), R.POSITION_EXCEEDS_MAX)


def test_every_pre_trade_reason_has_a_scenario():
    source = Path(__file__).read_text()
    named = {R[m] for m in re.findall(r"denied\([^\n]*R\.([A-Z_]+)\)", source)}
    named |= {R[m] for m in re.findall(r"COVERED\.add\(R\.([A-Z_]+)\)", source)}
    missing = set(R) - NOT_PRE_TRADE - named
    assert not missing, f"no scenario denied with {sorted(m.value for m in missing)}"
