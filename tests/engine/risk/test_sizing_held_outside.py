"""Sizing a reversal around orders the engine did not create (external orders at the
venue, left alone): the venue holds a position's shares for them, so the closing
order is capped at what they leave available (docs/risk.md, step 8)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.model import Side
from engine.portfolio import Portfolio
from engine.sizing import size_batch


def _desk(qty: str) -> Portfolio:
    pf = Portfolio(sector_of={"AAPL": "Information Technology"})
    pf.set_account(Decimal("100000"), Decimal("100000"), Decimal("100000"), Decimal("200000"))
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    pf.on_quote("AAPL", Decimal("100.00"), Decimal("100.02"), now)
    q = Decimal(qty)
    pf.apply_fill("AAPL", Side.BUY if q > 0 else Side.SELL, abs(q), Decimal("100.00"))
    return pf


def test_given_an_external_sell_holding_shares_a_flip_sells_only_the_rest():
    pf = _desk("19")
    [order] = size_batch({"AAPL": -0.5}, pf, held_outside={"AAPL": (Decimal(0), Decimal(9))})
    assert (order.side, order.qty, order.reduce_only) == (Side.SELL, Decimal(10), True)


def test_given_an_external_buy_holding_a_short_a_flip_buys_only_the_rest():
    pf = _desk("-19")
    [order] = size_batch({"AAPL": 0.5}, pf, held_outside={"AAPL": (Decimal(5), Decimal(0))})
    assert (order.side, order.qty, order.reduce_only) == (Side.BUY, Decimal(14), True)


def test_external_orders_holding_everything_leave_nothing_to_close_now():
    pf = _desk("19")
    assert size_batch({"AAPL": -0.5}, pf, held_outside={"AAPL": (Decimal(0), Decimal(19))}) == []


def test_external_orders_on_the_other_side_or_symbol_change_nothing():
    pf = _desk("19")
    held = {"AAPL": (Decimal(7), Decimal(0)), "MSFT": (Decimal(0), Decimal(19))}
    [order] = size_batch({"AAPL": -0.5}, pf, held_outside=held)
    assert (order.side, order.qty) == (Side.SELL, Decimal(19))
