"""Builders shared by the journal and order-book scenarios
(``from tests.engine.journal.journal_builders import ...``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine import events as ev
from engine.model import Fill, Order, OrderStatus, Side

T0 = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def intent(
    coid: str,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    qty: str = "10",
    limit: str | None = "187.25",
    bar_ts: datetime | None = T0,
    batch_seq: int | None = 0,
) -> ev.IntentCreated:
    order = Order(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        limit_price=Decimal(limit) if limit is not None else None,
        bar_ts=bar_ts,
        signal=0.42,
        decision_price=Decimal("187.2031"),
        reason="signal",
        created_at=T0,
    )
    return ev.IntentCreated(order=order, batch_seq=batch_seq)


def external(
    coid: str, status: OrderStatus, symbol: str = "AAPL", side: Side = Side.BUY, qty: str = "10"
) -> ev.OrderExternal:
    return ev.OrderExternal(
        order=Order(
            client_order_id=coid, symbol=symbol, side=side, qty=Decimal(qty), status=status, venue_order_id=f"v-{coid}"
        )
    )


def fill(
    coid: str,
    execution_id: str,
    qty: str,
    price: str = "187.20",
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    status: OrderStatus | None = None,
    ts: datetime = T0,
) -> ev.FillApplied:
    return ev.FillApplied(
        fill=Fill(
            execution_id=execution_id,
            client_order_id=coid,
            symbol=symbol,
            side=side,
            qty=Decimal(qty),
            price=Decimal(price),
            ts=ts,
        ),
        status=status,
    )


def process_batch(journal, book, bar_ts: datetime, symbols: list[str], stop_after: int | None = None) -> list[str]:
    """What the Engine does with a signal batch, reduced to the journal's part:
    skip a processed batch, reuse the batch's number, skip intents already
    journaled, journal each new intent durably, then mark the batch processed."""
    from engine.orders import make_client_order_id

    if book.ledger.is_processed(bar_ts):
        return []
    batch_seq = book.ledger.seq_for(bar_ts)
    created = []
    for symbol in symbols:
        if stop_after is not None and len(created) == stop_after:
            return created
        coid = make_client_order_id(journal.session_id, batch_seq, symbol, 0)
        if coid in book:
            continue
        event = intent(coid, symbol=symbol, bar_ts=bar_ts, batch_seq=batch_seq)
        journal.append(event, durable=True)
        book.apply(event)
        created.append(coid)
    done = ev.BatchProcessed(bar_ts=bar_ts, batch_seq=batch_seq, intents=len(created))
    journal.append(done)
    book.apply(done)
    return created


def book_state(book) -> tuple:
    """Everything the book holds, for comparing a live book with a replayed one."""
    return (
        {k: o.model_dump() for k, o in book.orders.items()},
        book.open_count,
        sorted((k, [o.client_order_id for o in v.values()]) for k, v in book._open.items()),
        sorted(book._by_venue.items()),
        sorted(book._executions),
        sorted((k, a.expires_at) for k, a in book._approvals.items()),
        (
            book.ledger.session_id,
            sorted(book.ledger._seq_by_bar.items()),
            sorted(book.ledger._processed),
            book.ledger._next,
        ),
    )
