"""Trading states (HALTED, REDUCING), automatic trips, and stop-loss exits."""

from __future__ import annotations

from decimal import Decimal

from engine.model import DenialReason as R
from engine.model import Side, TradingState
from engine.risk import TradingStateRules, TripCause, flatten_orders, stop_loss_exit, stop_triggered
from engine.sizing import OrderPurpose
from tests.engine.risk.risk_desk import D, Desk, settings_with

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


# -- HALTED -------------------------------------------------------------------------------


def halted(desk: Desk, cause: TripCause) -> Desk:
    desk.ctx.trading_state = HALTED
    desk.ctx.state_cause = cause
    return desk


def test_halted_allows_operator_confirmed_flatten_even_with_the_market_closed():
    desk = halted(Desk().holding("AAPL", 10), TripCause.OPERATOR)
    desk.ctx.market_open = False
    [flat] = flatten_orders(desk.pf, assets=desk.assets)
    assert (flat.side, flat.qty, flat.reduce_only, flat.operator_confirmed) == (Side.SELL, D(10), True, True)
    assert desk.check(flat) is None


def test_exits_may_close_a_position_outside_the_universe_but_nothing_may_open_one():
    desk = Desk().holding("ZZZZ", 10, "20")  # e.g. found at the venue by reconciliation
    [flat] = flatten_orders(desk.pf)
    assert desk.check(flat) is None
    desk.quote("ZZZZ", "18")
    assert desk.check(stop_loss_exit(desk.pf, "ZZZZ")) is None
    assert desk.buy("ZZZZ", 1).reason is R.SYMBOL_NOT_ALLOWED
    assert desk.sell("ZZZZ", 10).reason is R.SYMBOL_NOT_ALLOWED  # a signal exit is not exempt


def test_halted_denies_flatten_that_the_operator_did_not_confirm():
    desk = halted(Desk().holding("AAPL", 10), TripCause.OPERATOR)
    d = desk.sell("AAPL", 10, reduce_only=True, purpose=OrderPurpose.FLATTEN, confirmed=False)
    assert d.reason is R.TRADING_HALTED


def test_halted_flatten_may_not_increase_exposure():
    desk = halted(Desk().holding("AAPL", 10), TripCause.OPERATOR)
    d = desk.sell("AAPL", 15, reduce_only=True, purpose=OrderPurpose.FLATTEN, confirmed=True)
    assert d.reason is R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE


def test_halted_by_daily_loss_still_lets_stop_exits_out():
    desk = halted(Desk().holding("AAPL", 10, "228.50"), TripCause.DAILY_LOSS)
    desk.pf.set_account(desk.pf.cash, D(97_000), D(100_000), D(200_000))
    desk.quote("AAPL", "210.00")  # below the stop 217.075
    stop = stop_loss_exit(desk.pf, "AAPL", assets=desk.assets)
    assert stop is not None and stop.purpose is OrderPurpose.STOP_LOSS and stop.reduce_only
    assert desk.check(stop) is None


def test_halted_by_the_operator_denies_stop_exits():
    desk = halted(Desk().holding("AAPL", 10, "228.50"), TripCause.OPERATOR)
    desk.quote("AAPL", "210.00")
    stop = stop_loss_exit(desk.pf, "AAPL", assets=desk.assets)
    assert desk.check(stop).reason is R.TRADING_HALTED


def test_reducing_allows_stop_and_signal_orders_that_reduce():
    desk = Desk().holding("AAPL", 10)
    desk.ctx.trading_state = REDUCING
    assert desk.sell("AAPL", 4) is None
    assert desk.sell("AAPL", 11).reason is R.REDUCE_ONLY_WOULD_INCREASE_EXPOSURE


# -- trips --------------------------------------------------------------------------------


def test_daily_loss_trips_only_after_consecutive_confirmations():
    rules = TradingStateRules(settings_with())
    last = D(100_000)
    assert rules.evaluate_daily_loss(D(97_000), last, ACTIVE) is None
    assert rules.evaluate_daily_loss(D(97_000), last, ACTIVE) is None
    assert rules.evaluate_daily_loss(D(99_000), last, ACTIVE) is None  # one good read resets
    assert rules.evaluate_daily_loss(D(97_000), last, ACTIVE) is None
    assert rules.evaluate_daily_loss(D(97_000), last, ACTIVE) is None
    trip = rules.evaluate_daily_loss(D(97_000), last, ACTIVE)
    assert (trip.state, trip.cause) == (HALTED, TripCause.DAILY_LOSS)
    assert "-3000.00" in trip.detail and "3 consecutive" in trip.detail
    assert rules.evaluate_daily_loss(D(97_000), last, HALTED) is None  # already there


def test_daily_loss_at_exactly_the_limit_does_not_trip():
    rules = TradingStateRules(settings_with(risk_management__daily_loss_confirmations=1))
    assert rules.evaluate_daily_loss(D(98_000), D(100_000), ACTIVE) is None
    assert rules.evaluate_daily_loss(D("97999.99"), D(100_000), ACTIVE) is not None


def test_trip_state_reducing_is_configurable_and_never_loosens_halted():
    s = settings_with(risk_management__trip_state=REDUCING, risk_management__daily_loss_confirmations=1)
    rules = TradingStateRules(s)
    assert rules.evaluate_daily_loss(D(90_000), D(100_000), ACTIVE).state is REDUCING
    assert rules.evaluate_daily_loss(D(90_000), D(100_000), HALTED) is None


def test_venue_outage_longer_than_the_limit_trips():
    rules = TradingStateRules(settings_with())  # venue_outage_trip = 60
    assert rules.venue_status(False, 1000.0, ACTIVE) is None
    assert rules.venue_status(False, 1060.0, ACTIVE) is None
    trip = rules.venue_status(False, 1060.5, ACTIVE)
    assert (trip.state, trip.cause) == (HALTED, TripCause.VENUE_OUTAGE)
    assert rules.venue_status(True, 1061.0, ACTIVE) is None
    assert rules.venue_status(False, 1100.0, ACTIVE) is None  # a new outage starts over


def test_error_rate_over_the_window_trips():
    rules = TradingStateRules(settings_with())  # more than 50% of the last 20 requests
    for ok in [True] * 9 + [False] * 10:
        assert rules.record_request(ok, ACTIVE) is None  # 19 seen: the window is not full
    trip = rules.record_request(False, ACTIVE)  # 11 of 20 failed
    assert (trip.state, trip.cause) == (HALTED, TripCause.ERROR_RATE)
    assert "11 of the last 20" in trip.detail


def test_error_rate_at_exactly_the_limit_does_not_trip():
    rules = TradingStateRules(settings_with())
    for ok in [True, False] * 10:
        assert rules.record_request(ok, ACTIVE) is None
    rules.reset()
    assert rules.record_request(False, ACTIVE) is None


def test_counted_successes_trip_as_the_same_requests_one_by_one():
    """The broker sends successes counted (RequestFailed.count): the window must see
    the same as one call per request — a run of successes that fills the window can
    trip (at the request that filled it), one in a full window never does."""
    import random

    rnd = random.Random(7)
    for _ in range(200):
        runs = [(rnd.random() < 0.6, rnd.randint(1, 12)) for _ in range(rnd.randint(1, 8))]
        one, counted = TradingStateRules(settings_with()), TradingStateRules(settings_with())
        for ok, n in runs:
            first = None
            for _ in range(n):
                t = one.record_request(ok, ACTIVE)
                first = first or t
            got = counted.record_request(ok, ACTIVE, n)
            assert (got and got.detail) == (first and first.detail), runs
            assert list(counted.requests) == list(one.requests)
    rules = TradingStateRules(settings_with())
    assert rules.record_request(False, ACTIVE, 11) is None  # 11 seen: not full
    trip = rules.record_request(True, ACTIVE, 9)  # full at the 9th: 11 of 20 failed
    assert trip is not None and "11 of the last 20" in trip.detail
    assert rules.record_request(True, ACTIVE, 5) is None, "successes in a full window never trip"


# -- stops --------------------------------------------------------------------------------


def test_long_stop_triggers_at_entry_minus_stop_loss_pct_on_the_bid():
    desk = Desk().holding("AAPL", 10, "100")
    assert desk.pf.book("AAPL").stop_price == D("95.00")
    desk.quote("AAPL", "95.02")  # bid 95.01
    assert not stop_triggered(desk.pf, "AAPL")
    desk.quote("AAPL", "95.01")  # bid 95.00
    stop = stop_loss_exit(desk.pf, "AAPL", assets=desk.assets)
    assert (stop.side, stop.qty, stop.limit_price, stop.reduce_only) == (Side.SELL, D(10), D("94.91"), True)
    assert desk.check(stop) is None


def test_short_stop_triggers_at_entry_plus_stop_loss_pct_on_the_ask():
    desk = Desk().holding("AAPL", -10, "100")
    desk.quote("AAPL", "104.98")  # ask 104.99
    assert stop_loss_exit(desk.pf, "AAPL") is None
    desk.quote("AAPL", "104.99")  # ask 105.00
    stop = stop_loss_exit(desk.pf, "AAPL")
    assert (stop.side, stop.qty) == (Side.BUY, D(10))


def test_stop_is_not_proposed_again_while_an_exit_is_working():
    desk = Desk().holding("AAPL", 10, "100").quote("AAPL", "90")
    desk.working("AAPL", Side.SELL, 10, reduce_only=True)
    assert stop_loss_exit(desk.pf, "AAPL") is None


def test_stop_exit_closes_the_whole_position_whatever_the_per_order_limits():
    # the per-order caps are meant for new exposure; a reduce-only exit is bounded by
    # the position it closes (house rule 14)
    settings = settings_with(risk_management__max_order_qty=D(4), risk_management__max_order_notional=D(100))
    desk = Desk(settings).holding("AAPL", 10, "100")
    desk.quote("AAPL", "90")
    stop = stop_loss_exit(desk.pf, "AAPL")
    assert stop.qty == 10
    assert desk.check(stop) is None
    assert desk.sell("AAPL", 10).reason is R.QUANTITY_EXCEEDS_MAX_PER_ORDER  # a signal order still is capped


def test_stop_is_not_blocked_by_the_daily_loss_limit():
    desk = Desk().holding("AAPL", 10, "100")
    desk.pf.set_account(desk.pf.cash, D(90_000), D(100_000), D(200_000))
    desk.quote("AAPL", "90")
    assert desk.check(stop_loss_exit(desk.pf, "AAPL")) is None


def test_stop_moves_with_the_average_entry():
    desk = Desk().holding("AAPL", 10, "100").holding("AAPL", 10, "110")
    assert desk.pf.book("AAPL").stop_price == Decimal("105") * Decimal("0.95")
