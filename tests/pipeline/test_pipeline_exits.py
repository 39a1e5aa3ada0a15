"""Exits end to end: an automatic trip from the risk layer takes the kill switch's
path (HALTED, one cancel-all, tracked to the venue's confirmation), and the
operator-confirmed Flatten closes every position — with extended-hours limit
orders when the regular session is closed (the only kind Alpaca takes then)."""

from __future__ import annotations

from decimal import Decimal

from engine.commands import Flatten, SetOverride
from engine.model import TradingState

POSITIONS = {"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.3}


def test_an_automatic_daily_loss_trip_halts_and_cancels_every_working_order(make_pipe):
    pipe = make_pipe(
        auto_approve=True,
        sim={"partial_fill_prob": 1.0},  # every order fills in part and keeps working
        position_sizing={"max_position_size": 0.15},
        risk_management={"max_daily_loss": 0.005},
        monitoring={"risk_check_interval": 1, "order_reconciliation_interval": 3600},
    )
    pipe.send(dict.fromkeys(("AAPL", "JPM", "KO", "XOM", "UNH", "GE", "AMZN", "NEE"), 1.0))
    pipe.wait(
        lambda: pipe.snapshot.orders and all(r.status == "partially_filled" for r in pipe.snapshot.orders.values()),
        what="the orders to rest at the venue, partially filled",
    )
    working = pipe.eyes.open_orders()
    assert len(working) == 8

    pipe.venue.shock(None, -4)  # the book loses well over 0.5% of equity (and no stop is crossed)
    kill = pipe.wait(
        lambda: pipe.snapshot.kill_switch.phase == "confirmed" and pipe.snapshot.kill_switch,
        what="the daily-loss trip to halt and the venue to confirm the cancels",
    )
    snap = pipe.snapshot
    assert snap.trading_state is TradingState.HALTED
    assert snap.state_cause.startswith("automatic: daily_loss"), snap.state_cause
    assert pipe.eyes.open_orders() == []
    # every order working at the trip was cancelled, unless it filled in full first
    # (the venue's clock runs: a partly filled order can complete before the halt)
    final = pipe.eyes.orders_by_client_id()
    ends = [final[o.client_order_id].status.value for o in working]
    canceled = ends.count("canceled")
    assert canceled + ends.count("filled") == len(working), ends
    assert canceled >= 1 and kill.cancels_confirmed == kill.cancels_requested == canceled, (kill, ends)
    errors = [e.text for e in pipe.snapshot.events if e.kind == "error"]
    assert not errors, errors

    report = pipe.report()
    assert [k["phase"] for k in report["kill_switch"]] == ["requested", "sent", "confirmed"]
    [change] = report["state_changes"]
    assert change["state"] == "HALTED" and change["previous"] == "ACTIVE"
    assert "daily_loss" in change["cause"]


def test_flatten_closes_every_position_in_regular_hours(make_pipe):
    pipe = make_pipe(auto_approve=True)
    pipe.send(POSITIONS)
    pipe.wait_settled()
    assert set(pipe.eyes.positions()) == set(POSITIONS)

    result = pipe.execute(Flatten())
    assert result.ok and result.count == len(POSITIONS), result.message
    pipe.wait(lambda: not pipe.eyes.positions(), what="every position to be closed at the venue")
    pipe.wait(lambda: not pipe.snapshot.positions, what="the engine to be flat")
    assert pipe.snapshot.trading_state is TradingState.ACTIVE, "flattening is not halting"
    flatten = [o for o in pipe.report()["orders"] if o["reason"] == "flatten"]
    assert {o["symbol"] for o in flatten} == set(POSITIONS)
    assert all(o["reduce_only"] and o["status"] == "filled" for o in flatten)


def test_flatten_outside_regular_hours_sends_extended_hours_limit_orders(make_pipe):
    pipe = make_pipe(auto_approve=True)
    pipe.send(POSITIONS)
    pipe.wait_settled()
    pipe.venue.clock_to("next_close")
    pipe.wait(lambda: not pipe.snapshot.market_open, what="the engine to see the market closed")

    result = pipe.execute(Flatten())
    assert result.ok and result.count == len(POSITIONS), result.message
    closing = pipe.wait(
        lambda: len(pipe.eyes.open_orders()) == len(POSITIONS) and pipe.eyes.open_orders(),
        what="the closing orders at the venue",
    )
    held = pipe.eyes.positions()
    for order in closing:
        assert order.type.value == "limit" and order.time_in_force.value == "day"
        assert order.extended_hours is True
        assert order.side.value == ("sell" if Decimal(held[order.symbol].qty) > 0 else "buy")
        assert Decimal(order.qty) == abs(Decimal(held[order.symbol].qty))


def test_flatten_closes_a_symbol_in_mode_off_too(make_pipe):
    pipe = make_pipe(auto_approve=True)
    pipe.send(POSITIONS)
    pipe.wait_settled()
    assert pipe.execute(SetOverride("JPM", mode="off")).ok  # stop trading JPM...

    result = pipe.execute(Flatten())  # ...then close everything
    assert result.ok, result.message
    pipe.wait(lambda: not pipe.eyes.positions(), what="every position, JPM's too, to be closed", timeout=15)
