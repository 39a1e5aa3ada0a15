"""Exits around orders the engine did not create (external orders at the venue): the
venue holds a position's shares for their open quantity on the exit side and refuses
an order for them ("insufficient qty available"), so a stop-loss exit and a Flatten
close the rest, and say how much is held (docs/risk.md, "Exits")."""

from __future__ import annotations

from decimal import Decimal

from engine.model import Side
from engine.risk import flatten_plan, stop_loss_exit, stop_loss_plan
from engine.sizing import OrderPurpose, plan_exit
from tests.engine.risk.risk_desk import D, Desk

HELD_SELL = {"AAPL": (D(0), D(9))}


def test_plan_exit_leaves_the_shares_an_external_sell_holds():
    desk = Desk().holding("AAPL", 19)
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside=HELD_SELL)
    assert plan.order is not None
    assert (plan.order.side, plan.order.qty, plan.order.reduce_only) == (Side.SELL, D(10), True)
    assert (plan.held, plan.why_open) == (D(9), "")


def test_plan_exit_for_a_short_leaves_what_an_external_buy_holds():
    desk = Desk().holding("AAPL", -19)
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside={"AAPL": (D(5), D(30))})
    assert plan.order is not None
    assert (plan.order.side, plan.order.qty, plan.held) == (Side.BUY, D(14), D(5))


def test_external_orders_holding_everything_leave_no_order_and_say_how_much():
    desk = Desk().holding("AAPL", 19)
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside={"AAPL": (D(0), D(25))})
    assert (plan.order, plan.held) == (None, D(19))  # never more than the position


def test_own_working_exit_orders_and_external_ones_are_both_subtracted():
    desk = Desk().holding("AAPL", 19)
    desk.working("AAPL", Side.SELL, 4, reduce_only=True)
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside=HELD_SELL)
    assert plan.order is not None and (plan.order.qty, plan.held) == (D(6), D(9))
    # what our own orders cover first: the external hold is counted on the rest only
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside={"AAPL": (D(0), D(19))})
    assert (plan.order, plan.held) == (None, D(15))


def test_external_orders_on_the_other_side_or_symbol_change_nothing():
    desk = Desk().holding("AAPL", 19)
    held = {"AAPL": (D(7), D(0)), "MSFT": (D(0), D(19))}
    plan = plan_exit(desk.pf, "AAPL", OrderPurpose.FLATTEN, held_outside=held)
    assert plan.order is not None and (plan.order.qty, plan.held) == (D(19), D(0))


def test_a_stop_exit_closes_what_external_orders_leave_and_the_plan_says_what_they_hold():
    desk = Desk().holding("AAPL", 19, "228.50")
    desk.quote("AAPL", "210.00")  # below the stop
    assert stop_loss_exit(desk.pf, "AAPL").qty == D(19)  # type: ignore[union-attr]
    stop = stop_loss_exit(desk.pf, "AAPL", held_outside=HELD_SELL)
    assert stop is not None and (stop.side, stop.qty, stop.purpose) == (Side.SELL, D(10), OrderPurpose.STOP_LOSS)
    plan = stop_loss_plan(desk.pf, "AAPL", held_outside={"AAPL": (D(0), D(19))})
    assert plan is not None and (plan.order, plan.held) == (None, D(19))


def test_a_stop_not_crossed_has_no_plan_whatever_is_held():
    desk = Desk().holding("AAPL", 19, "228.50")
    assert stop_loss_plan(desk.pf, "AAPL", held_outside=HELD_SELL) is None


def test_flatten_plan_sends_the_rest_and_names_what_is_held_without_calling_it_left_open():
    desk = Desk().holding("AAPL", 19).holding("KO", -30)
    held = {"AAPL": (D(0), D(9)), "KO": (D(30), D(0))}
    plan = flatten_plan(desk.pf, assets=desk.assets, held_outside=held)
    assert [(o.symbol, o.side, o.qty, o.operator_confirmed) for o in plan.orders] == [("AAPL", Side.SELL, D(10), True)]
    assert plan.held == {"AAPL": D(9), "KO": D(30)}
    assert plan.left_open == {}


def test_flatten_plan_without_external_orders_holds_nothing():
    desk = Desk().holding("AAPL", 19)
    plan = flatten_plan(desk.pf, assets=desk.assets)
    assert [o.qty for o in plan.orders] == [Decimal(19)] and plan.held == {}
