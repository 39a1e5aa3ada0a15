"""Reconciliation with the venue: compare what the journal says with what the venue
says, and turn the differences into events. Runs at start-up (fail closed), every
order_reconciliation_interval, and after every stream reconnect (the stream does
not replay).

Pure: it reads the engine's orders and the venue's orders and returns a plan; the
Engine applies the plan as events, in order, in its one task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from engine.broker.base import VenueOrder
from engine.model import Order, OrderStatus


@dataclass(frozen=True, slots=True)
class FillCatchUp:
    """Fills the venue has that the engine has not seen: one synthetic fill for the
    difference in cumulative quantity, at the price that makes the averages agree."""

    client_order_id: str
    qty: Decimal
    price: Decimal
    execution_id: str


@dataclass
class ReconcilePlan:
    status_changes: list[tuple[str, VenueOrder]] = field(default_factory=list)
    fills: list[FillCatchUp] = field(default_factory=list)
    external: list[VenueOrder] = field(default_factory=list)
    to_lookup: list[str] = field(default_factory=list)  # in flight / unknown: ask by client id
    unaccounted: list[str] = field(default_factory=list)


def catch_up_fill(order: Order, venue: VenueOrder) -> FillCatchUp | None:
    """The fill that brings the engine's cumulative fill to the venue's, if any."""
    if venue.filled_qty <= order.filled_qty:
        return None
    qty = venue.filled_qty - order.filled_qty
    venue_value = (venue.filled_avg_price or Decimal(0)) * venue.filled_qty
    local_value = (order.filled_avg_price or Decimal(0)) * order.filled_qty
    price = (venue_value - local_value) / qty
    if price <= 0:
        price = venue.filled_avg_price or Decimal(0)
    return FillCatchUp(
        client_order_id=order.client_order_id,
        qty=qty,
        price=price.quantize(Decimal("0.000001")),
        execution_id=f"sync-{venue.id}-{venue.filled_qty.normalize()}",
    )


def plan_reconciliation(
    orders: Mapping[str, Order],
    working: Iterable[Order],
    venue_orders: Iterable[VenueOrder],
    known_external: Mapping[str, object] | None = None,
) -> ReconcilePlan:
    """Match venue orders to engine orders by client_order_id.

    - an engine order whose venue status or cumulative fill differs -> status change
      and/or a catch-up fill;
    - a venue order the engine did not create -> external (shown, never adopted);
    - an engine order in flight (submitting/unknown) or working that the venue list
      does not show -> looked up by client_order_id; the caller decides what a
      failed lookup means (at start-up: unaccounted, fail closed).
    """
    plan = ReconcilePlan()
    known_external = known_external or {}
    seen: set[str] = set()
    for venue in venue_orders:
        seen.add(venue.client_order_id)
        order = orders.get(venue.client_order_id)
        if order is None:
            if venue.id not in known_external:
                plan.external.append(venue)
            continue
        catch_up = catch_up_fill(order, venue)
        if catch_up is not None:
            plan.fills.append(catch_up)
        if venue.status is not order.status or (order.venue_order_id is None and venue.id):
            plan.status_changes.append((order.client_order_id, venue))
    for order in working:
        if order.client_order_id in seen:
            continue
        if order.status in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL):
            continue
        plan.to_lookup.append(order.client_order_id)
    return plan
