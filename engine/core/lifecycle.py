"""Where a fill lands: what the venue says about orders — acks, fills (de-duplicated
by execution id and the venue's cumulative fill), status changes — becomes journal
events through the recorder; orders the engine did not create are shown as
external and left alone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from engine import events as ev
from engine.broker.base import TradeUpdate, VenueOrder
from engine.core.common import EXTERNAL, q
from engine.model import Fill, Order, OrderStatus
from engine.reconcile import catch_up_fill

if TYPE_CHECKING:
    from engine.core.engine import Engine


class Lifecycle:
    def __init__(self, engine: Engine):
        self.e = engine

    def on_trade_update(self, upd: TradeUpdate) -> None:
        venue = upd.order
        order = self.e.book.get(venue.client_order_id)
        if order is None or order.external:
            if order is None and self.e.sync.is_own(venue.client_order_id):
                # ours, but the journal does not know it (a lost tail): reconciliation adopts it
                self.e.spawn(self.e.sync.reconcile("periodic"), "reconcile-recover")
                return
            self.see_external(venue, "the trade stream")
            return
        if upd.event.is_fill and upd.execution_id and upd.qty and upd.price is not None:
            # the venue's cumulative fill says whether this execution is new to us
            if order.filled_qty + upd.qty <= venue.filled_qty:
                self.apply_fill(
                    order, upd.execution_id, upd.qty, upd.price, upd.timestamp, source="stream", status=venue.status
                )
        catch = catch_up_fill(order, venue)
        if catch is not None:
            self.apply_fill(order, catch.execution_id, catch.qty, catch.price, upd.timestamp, source="stream")
        self.apply_venue_status(order.client_order_id, venue, source="stream")

    def acked(self, order: Order, venue: VenueOrder, source: str) -> None:
        """The venue has the order (a submit's answer, or a lookup)."""
        e = self.e
        status = venue.status
        if order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
            if e.recorder.record(
                ev.SubmitAcked(client_order_id=order.client_order_id, venue_order_id=venue.id, status=status)
            ):
                order.acked_at = datetime.now(UTC)
        catch = catch_up_fill(order, venue)
        if catch is not None:
            self.apply_fill(order, catch.execution_id, catch.qty, catch.price, e.clock.now(), source=source)
        self.apply_venue_status(order.client_order_id, venue, source=source)
        self.after_status(order)

    def apply_fill(
        self,
        order: Order,
        execution_id: str,
        qty: Decimal,
        price: Decimal,
        ts: datetime,
        source: str,
        status: OrderStatus | None = None,
    ) -> None:
        e = self.e
        if e.book.has_execution(execution_id) or qty <= 0:
            return
        fill = Fill(
            execution_id=execution_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            ts=ts,
        )
        st = status
        if not e.recorder.record(ev.FillApplied(fill=fill, status=st)):
            # the status in the event did not fit (reordered stream): apply the fill alone
            if st is None or not e.recorder.record(ev.FillApplied(fill=fill)):
                return
        e.stats.fills += 1
        self.after_status(order)
        e.note(
            "fill",
            order.symbol,
            f"{order.side.value} {q(qty)} {order.symbol} @ {q(price)} "
            f"({q(order.filled_qty)}/{q(order.qty)})" + ("" if source == "stream" else f" [{source}]"),
        )

    def apply_venue_status(self, cid: str, venue: VenueOrder, source: str) -> None:
        e = self.e
        order = e.book.get(cid)
        if order is None:
            return
        new = venue.status
        if venue.filled_qty < order.filled_qty:
            # an older picture than the fills already applied (a REST answer overtaken by the
            # stream): keep the newer status, take only the venue id
            new = order.status
        if new == order.status and order.venue_order_id == venue.id:
            return
        event = ev.OrderStatusChanged(client_order_id=cid, status=new, source=source, venue_order_id=venue.id)
        if not e.recorder.record(event):
            return  # stale (reordered/duplicated) status: fills were applied from cumulative counts
        self.after_status(order)
        if new in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.DONE_FOR_DAY):
            e.note(
                "order",
                order.symbol,
                f"{new.value.upper()} {order.side.value} {q(order.qty)} {order.symbol} "
                f"(filled {q(order.filled_qty)}) [{source}]",
            )

    def after_status(self, order: Order) -> None:
        if order.status.is_final:
            self.e.halt.check_kill_progress(order)

    def see_external(self, venue: VenueOrder, where: str) -> None:
        e = self.e
        if venue.status.is_final:
            e.external.pop(venue.id, None)
            e.publisher.dirty_orders.add(EXTERNAL)
            return
        known = venue.id in e.external
        e.external[venue.id] = venue
        e.publisher.dirty_orders.add(EXTERNAL)
        if not known:
            e.note(
                "order",
                venue.symbol,
                f"EXTERNAL order {venue.side.value} {q(venue.qty)} {venue.symbol} "
                f"({venue.status.value}, {venue.client_order_id}) seen by {where}: shown, left alone",
            )
