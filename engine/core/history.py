"""The drill-down: the full history of one intent, order or position, read from
this session's journal (signal and sizing, the pre-trade verdict, approval,
submit, venue events, fills with their slippage), and for a position a price
chart of the session: the closes of the minute bars the engine holds, its fills
as entries and exits, and its stop level. A query: it changes nothing, and the
journal is read in a worker thread so the engine keeps applying events."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from engine import events as ev
from engine.commands import CommandResult, HistoryRow, PriceChart, QueryHistory
from engine.core.common import q
from engine.journal import JournalEntry
from engine.model import Fill, Side

if TYPE_CHECKING:
    from engine.core.engine import Engine


def _bps(price: Decimal, decision: Decimal | None, side: str) -> str:
    if not decision:
        return ""
    bps = (price - decision) / decision * 10_000 * (1 if side == "buy" else -1)
    return f"; slippage {bps:+.1f} bps against decision price {decision}"


def describe(entry: JournalEntry, decisions: dict[str, Decimal | None]) -> tuple[str, str] | None:
    """(what, facts) for one journal event of an intent, order or fill; None for the rest."""
    e = entry.event
    if isinstance(e, ev.IntentCreated):
        o = e.order
        decisions[o.client_order_id] = o.decision_price
        limit = f"limit {o.limit_price}" if o.limit_price is not None else o.order_type.value
        signal = f"signal {o.signal:+.3f}" if o.signal is not None else "no signal"
        bar = f"; bar {o.bar_ts.isoformat()}" if o.bar_ts else ""
        return "intent", (
            f"{o.reason or 'signal'}: {o.side.value} {q(o.qty)} {o.symbol} {limit}; {signal}; "
            f"sized at decision price {o.decision_price}{bar}" + ("; reduce only" if o.reduce_only else "")
        )
    if isinstance(e, ev.IntentDenied):
        return "denied", f"{e.reason.value}: {e.detail}"
    if isinstance(e, ev.ApprovalRequested):
        return "checks", f"passed the pre-trade checks; waiting for approval until {e.expires_at.isoformat()}"
    if isinstance(e, ev.IntentApproved):
        return "approved", f"by {e.by} (checked again at current prices)"
    if isinstance(e, ev.IntentRejected):
        return "rejected", f"by {e.by}" + (f": {e.detail}" if e.detail else "")
    if isinstance(e, ev.IntentExpired):
        return "expired", f"no approval in time (venue time {e.at.isoformat()})"
    if isinstance(e, ev.SubmitSent):
        return "submit", "sent to the venue"
    if isinstance(e, ev.SubmitAcked):
        return "ack", f"venue order {e.venue_order_id}: {e.status.value}"
    if isinstance(e, ev.SubmitRejected):
        return "rejected", f"by the venue ({e.http_status} {e.code}): {e.message}"
    if isinstance(e, ev.SubmitUnknown):
        return "unknown", f"outcome unknown ({e.cause}): resolved by lookup, never resent"
    if isinstance(e, ev.CancelRequested):
        return "cancel", f"cancel requested ({e.cause})"
    if isinstance(e, ev.OrderStatusChanged):
        return "venue", f"{e.status.value} (from {e.source})"
    if isinstance(e, ev.FillApplied):
        f = e.fill
        slip = _bps(f.price, decisions.get(f.client_order_id), f.side.value)
        return "fill", f"{f.side.value} {q(f.qty)} {f.symbol} @ {f.price} ({f.client_order_id}){slip}"
    return None


def _cid_of(e: object) -> str | None:
    if isinstance(e, ev.FillApplied):
        return e.fill.client_order_id
    if isinstance(e, ev.IntentCreated):
        return e.order.client_order_id
    return getattr(e, "client_order_id", None)


def read_history(entries, key: str) -> list[HistoryRow]:
    """An order's events when `key` is a client order id; else, for a symbol, every
    fill in it (and the intents behind them)."""
    decisions: dict[str, Decimal | None] = {}
    by_order: list[HistoryRow] = []
    by_symbol: list[HistoryRow] = []
    for entry in entries:
        e = entry.event
        cid = _cid_of(e)
        if cid is None:
            continue
        told = describe(entry, decisions)
        if told is None:
            continue
        row = (entry.ts.isoformat(), *told)
        if cid == key:
            by_order.append(row)
        symbol = e.order.symbol if isinstance(e, ev.IntentCreated) else getattr(getattr(e, "fill", None), "symbol", "")
        if symbol == key and told[0] in ("fill", "intent"):
            by_symbol.append(row)
    return by_order or by_symbol


def symbol_fills(entries, symbol: str) -> list[Fill]:
    """The session's fills in `symbol`, in journal order."""
    return [
        entry.event.fill
        for entry in entries
        if isinstance(entry.event, ev.FillApplied) and entry.event.fill.symbol == symbol
    ]


def price_chart(symbol: str, bars, fills: list[Fill], qty_now: Decimal, stop: Decimal | None) -> PriceChart:
    """The chart of a position's session. A fill is an entry when it grew the
    position (away from zero), an exit when it shrank it; what was held before the
    session's first fill is what is held now less the session's fills."""
    signed = [f.qty if f.side is Side.BUY else -f.qty for f in fills]
    held = qty_now - sum(signed, Decimal(0))
    marks: list[tuple[datetime, str, Decimal]] = []
    for fill, delta in zip(fills, signed, strict=True):
        grows = held == 0 or (held > 0) == (delta > 0)
        marks.append((fill.ts, "entry" if grows else "exit", fill.price))
        held += delta
    prices = tuple((b.ts, b.close) for b in bars)
    # the stop as the snapshot shows it (to the cent)
    shown_stop = stop.quantize(Decimal("0.01")) if stop is not None and qty_now else None
    return PriceChart(symbol=symbol, prices=prices, marks=tuple(marks), stop=shown_stop)


class History:
    def __init__(self, engine: Engine):
        self.e = engine

    def on_query(self, cmd: QueryHistory, future: asyncio.Future) -> None:
        self.e.spawn(self._answer(cmd, future), "history")

    async def _answer(self, cmd: QueryHistory, future: asyncio.Future) -> None:
        e = self.e
        session = e.journal.session_id
        charted = cmd.key in e.symbols or cmd.key in e.portfolio.books

        def read() -> tuple[list[HistoryRow], list[Fill]]:
            entries = list(e.journal.replay(session))
            return read_history(entries, cmd.key), symbol_fills(entries, cmd.key) if charted else []

        rows, fills = await asyncio.to_thread(read)
        chart = None
        if charted:
            book = e.portfolio.books.get(cmd.key)
            qty, stop = (book.qty, book.stop_price) if book is not None else (Decimal(0), None)
            chart = price_chart(cmd.key, list(e.bars.get(cmd.key, ())), fills, qty, stop)
        verdicts = e.intents.current_verdicts()
        if cmd.key in verdicts:
            d = verdicts[cmd.key]
            now = e.clock.now().isoformat()
            rows.append((now, "verdict", "ok now: passes the pre-trade checks" if d is None else f"now {d}"))
        if not future.done():
            if rows:
                future.set_result(
                    CommandResult(
                        True, f"history of {cmd.key}: {len(rows)} entries", len(rows), tuple(rows), chart=chart
                    )
                )
            else:
                future.set_result(CommandResult(False, f"nothing in this session's journal for {cmd.key}", chart=chart))
