"""Recorder's order_of (which order an applied event changes) reads each event type's
attributes from a per-type table: it must name the same order as asking the event
for client_order_id, then order / fill, does, for every kind of event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from engine import events as ev
from engine.core.recorder import _order_of_any, order_of
from engine.model import Fill, Order, OrderStatus, Side, TradingState

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@dataclass
class Loose:  # not a pydantic model: asked directly
    client_order_id: str | None = None
    order: object | None = None


def test_order_of_names_the_same_order_as_asking_the_event():
    order = Order(client_order_id="c-intent", symbol="AAPL", side=Side.BUY, qty=Decimal(1))
    fill = Fill(
        execution_id="x1",
        client_order_id="c-fill",
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(1),
        price=Decimal(10),
        ts=NOW,
    )
    cases = [
        (ev.IntentCreated(order=order), "c-intent"),  # a property over the order
        (ev.OrderRecovered(order=order), "c-intent"),
        (ev.OrderExternal(order=order), "c-intent"),  # the order's field
        (ev.FillApplied(fill=fill, status=OrderStatus.FILLED), "c-fill"),  # the fill's
        (ev.SubmitSent(client_order_id="c-sent", at=NOW), "c-sent"),
        (ev.OrderStatusChanged(client_order_id="c-st", status=OrderStatus.NEW), "c-st"),
        (ev.TradingStateChanged(state=TradingState.HALTED, cause="x"), None),  # no order
        (Loose(client_order_id="c-loose"), "c-loose"),
        (Loose(order=order), "c-intent"),
        (object(), None),
    ]
    for _round in range(2):  # the first call fills the per-type table, the second reads it
        for event, want in cases:
            assert order_of(event) == want == _order_of_any(event), type(event).__name__
