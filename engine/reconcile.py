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
from engine.orders import bar_of_number, parse_client_order_id


@dataclass(frozen=True, slots=True)
class FillCatchUp:
    """Fills the venue has that the engine has not seen: one synthetic fill for the
    difference in cumulative quantity, at the price that makes the averages agree."""

    client_order_id: str
    qty: Decimal
    price: Decimal
    execution_id: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """An order of ours at the venue that the journal does not know (a lost tail):
    the order to adopt and the batch its id names."""

    order: Order
    batch_seq: int
    session_id: str


@dataclass
class ReconcilePlan:
    status_changes: list[tuple[str, VenueOrder]] = field(default_factory=list)
    fills: list[FillCatchUp] = field(default_factory=list)
    external: list[VenueOrder] = field(default_factory=list)
    recovered: list[Recovery] = field(default_factory=list)
    to_lookup: list[str] = field(default_factory=list)  # in flight / unknown: ask by client id
    unaccounted: list[str] = field(default_factory=list)
    #: the venue's one picture of each order (the most advanced, when a pass saw two)
    venue: dict[str, VenueOrder] = field(default_factory=dict)


def _advance(v: VenueOrder) -> tuple:
    return (v.filled_qty, v.status.is_final, v.updated_at or v.created_at)


def latest_pictures(venue_orders: Iterable[VenueOrder]) -> list[VenueOrder]:
    """One picture per venue order: the most advanced one (largest cumulative fill,
    then final over open, then the latest update). One pass lists open orders, then
    closed ones; an order that moved between the two requests is in both, and must
    not count twice. Order of first appearance is kept."""
    best: dict[str, VenueOrder] = {}
    for v in venue_orders:
        seen = best.get(v.id)
        if seen is None or _advance(v) > _advance(seen):
            best[v.id] = v
    return list(best.values())


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


def recovered_order(venue: VenueOrder, session_id: str, bar_seq: int) -> Order:
    """The engine's own order rebuilt from the venue's picture of it: what the venue
    knows (symbol, side, quantity, type, price, venue id), at NEW with nothing filled
    yet (the catch-up fill and the venue's status follow as events of their own), and
    the bar and purpose its id names."""
    parsed = parse_client_order_id(venue.client_order_id)
    purpose = parsed.purpose if parsed is not None else "signal"
    return Order(
        client_order_id=venue.client_order_id,
        symbol=venue.symbol,
        side=venue.side,
        qty=venue.qty if venue.qty is not None else venue.filled_qty,
        order_type=venue.order_type,
        time_in_force=venue.time_in_force,
        limit_price=venue.limit_price,
        status=OrderStatus.NEW,
        venue_order_id=venue.id,
        bar_ts=bar_of_number(session_id, bar_seq) if purpose == "signal" else None,
        reduce_only=purpose != "signal",
        reason=purpose,
        created_at=venue.created_at,
        submitted_at=venue.submitted_at,
    )


def plan_reconciliation(
    orders: Mapping[str, Order],
    working: Iterable[Order],
    venue_orders: Iterable[VenueOrder],
    known_external: Mapping[str, object] | None = None,
    own_sessions: Mapping[str, str] | None = None,
) -> ReconcilePlan:
    """Match venue orders to engine orders by client_order_id.

    - each venue order is taken once, at its most advanced picture (latest_pictures);
    - an engine order whose venue status or cumulative fill differs -> status change
      and/or a catch-up fill up to the venue's cumulative quantity;
    - a venue order the engine did not create -> external (shown, never adopted),
      unless its client_order_id names a session of this journal (own_sessions:
      session short -> session id): then it is ours and the journal lost it -> recovered;
    - an engine order in flight (submitting/unknown) or working that the venue list
      does not show -> looked up by client_order_id; the caller decides what a
      failed lookup means (in flight: never reached the venue; working: vanished;
      at start-up a failed lookup is unaccounted, fail closed).
    """
    plan = ReconcilePlan()
    known_external = known_external or {}
    own_sessions = own_sessions or {}
    seen: set[str] = set()
    for venue in latest_pictures(venue_orders):
        seen.add(venue.client_order_id)
        order = orders.get(venue.client_order_id)
        if order is None:
            parsed = parse_client_order_id(venue.client_order_id)
            session_id = own_sessions.get(parsed.session_short) if parsed is not None else None
            if parsed is not None and session_id is not None:
                plan.recovered.append(
                    Recovery(recovered_order(venue, session_id, parsed.bar_seq), parsed.bar_seq, session_id)
                )
                plan.venue[venue.client_order_id] = venue
            elif venue.id not in known_external:
                plan.external.append(venue)
            continue
        plan.venue[order.client_order_id] = venue
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
