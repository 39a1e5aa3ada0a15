"""P&L and execution quality from the journal's fills: slippage against the decision
price, realized P&L by average cost from the opening positions, unrealized P&L at the
latest price the journal has, fill rate; and how several sessions combine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.report.figures import (
    _BPS,
    _BPS_PLACES,
    _RATE_PLACES,
    MEMO_MAX,
    _dec,
    _derived,
    _iso,
    _q,
    register_memo,
)
from engine.report.light import Book, Entry
from engine.report.light import Pos as Position
from engine.report.light import _dec as _text_dec  # Decimal(text), each text once per report
from engine.report.renderers import fill_cells_of
from engine.states import OrderStatus, Side

#: _bps of the same side, price and decision price (quantized: its result depends on the
#: values only, not on how they are written)
_BPS_OF: dict[tuple[Side, Decimal, Decimal], Decimal] = {}
register_memo(_BPS_OF)


def _bps(side: Side, price: Decimal, decision: Decimal | None) -> Decimal | None:
    """Slippage of price against decision in basis points, positive = worse
    (a buy paid above, a sell received below)."""
    if decision is None or decision <= 0:
        return None
    key = (side, price, decision)
    bps = _BPS_OF.get(key)
    if bps is None:
        bps = _q(side.sign * (price - decision) / decision * _BPS, _BPS_PLACES)
        if len(_BPS_OF) < MEMO_MAX:
            _BPS_OF[key] = bps
    return bps


def _fill_rate(orders: list[dict[str, Any]], submitted: set[str]) -> dict[str, Any]:
    """Over this engine's orders that were sent to the venue (submitted: the
    client_order_ids a SubmitSent was journaled for): filled qty / submitted qty,
    filled orders / submitted orders."""
    # (one pass: the sums add the same values in the same order as a sum() per figure)
    sent = filled = any_fill = 0
    submitted_qty = filled_qty = Decimal(0)
    filled_word = OrderStatus.FILLED.value
    for o in orders:
        if o["client_order_id"] in submitted and not o["external"]:
            sent += 1
            submitted_qty += _text_dec(o["qty"])
            qty = _text_dec(o["filled_qty"])
            filled_qty += qty
            if o["status"] == filled_word:
                filled += 1
            if qty > 0:
                any_fill += 1
    return {
        "orders_submitted": sent,
        "orders_filled": filled,
        "orders_with_fills": any_fill,
        "orders_rate": _derived(_q(Decimal(filled) / sent, _RATE_PLACES)) if sent else None,
        "submitted_qty": _derived(submitted_qty),
        "filled_qty": _derived(filled_qty),
        "qty_rate": _derived(_q(filled_qty / submitted_qty, _RATE_PLACES)) if submitted_qty else None,
    }


def _slippage_summary(fills: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fill slippage summarised: weighted by decision notional (the
    implementation shortfall of the session, in bps), the simple mean, the best
    and worst fill, and the cost in money (positive = paid)."""
    rows = [f for f in fills if f["slippage_bps"] is not None]
    if not rows:
        return {
            "fills": 0,
            "fills_without_decision_price": len(fills),
            "weighted_bps": None,
            "mean_bps": None,
            "best_bps": None,
            "worst_bps": None,
            "cost": "0",
        }
    cost = notional = total_bps = Decimal(0)
    bps = []
    for f in rows:  # (one pass: each sum adds the same values in the same order as before)
        cost += _text_dec(f["slippage_cost"])
        notional += _text_dec(f["decision_price"]) * _text_dec(f["qty"])
        b = _text_dec(f["slippage_bps"])
        total_bps += b
        bps.append(b)
    return {
        "fills": len(rows),
        "fills_without_decision_price": len(fills) - len(rows),
        "weighted_bps": _derived(_q(cost / notional * _BPS, _BPS_PLACES)) if notional else None,
        "mean_bps": _derived(_q(total_bps / len(bps), _BPS_PLACES)),
        "best_bps": _derived(min(bps)),
        "worst_bps": _derived(max(bps)),
        "cost": _derived(cost),
    }


def _combine_pnl(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One session's P&L as is; several: realized summed, positions and
    unrealized from the last session (they carry over)."""
    if len(parts) == 1:
        return parts[0]
    last = parts[-1]
    realized = sum((Decimal(p["realized"]) for p in parts), Decimal(0))
    out = dict(last)
    out["realized"] = _derived(realized)
    out["opening_positions_source"] = parts[0]["opening_positions_source"]
    out["realized_by_session"] = {p["session_id"]: p["realized"] for p in parts}
    return out


@dataclass
class _Carry:
    """A session's closing positions and last prices, the next one's opening
    when it journaled no positions snapshot before its first fill."""

    session_id: str
    positions: dict[str, Position]
    marks: dict[str, tuple[int, Decimal, str]]


def _fills_and_pnl(
    sid: str,
    fills: list[tuple[Entry, Any]],
    snapshots: list[tuple[Entry, Any]],
    book: Book,
    carry: _Carry | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], _Carry]:
    first_fill_seq = fills[0][0].seq if fills else None
    opening = None
    for entry, snap in snapshots:
        if first_fill_seq is None or entry.seq < first_fill_seq:
            opening = (entry, snap)
    positions: dict[str, Position] = {}
    if opening is not None:
        for p in opening[1].positions:
            positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
        opening_source = f"positions snapshot (journal seq {opening[0].seq})"
    elif carry is not None and any(p.qty != 0 for p in carry.positions.values()):
        for p in carry.positions.values():
            if p.qty != 0:
                positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
        opening_source = f"carried from session {carry.session_id} (no positions snapshot before the first fill)"
    else:
        opening_source = "flat: no positions snapshot before the first fill, none carried"

    # the most recent price per symbol: (seq, price, source)
    marks: dict[str, tuple[int, Decimal, str]] = dict(carry.marks) if carry is not None else {}
    for entry, snap in snapshots:
        for p in snap.positions:
            if p.last_price is not None:
                marks[p.symbol] = (entry.seq, p.last_price, "positions_snapshot")

    rows: list[dict[str, Any]] = []
    realized_by_symbol: dict[str, Decimal] = {}
    for entry, e in fills:
        f = e.fill
        order = book.get(f.client_order_id)
        decision = order.decision_price if order is not None else None
        bps = _bps(f.side, f.price, decision)
        cost = f.side.sign * (f.price - decision) * f.qty if bps is not None and decision is not None else None
        pos = positions.get(f.symbol)
        if pos is None:  # (not setdefault: one Position per symbol, not per fill)
            pos = positions[f.symbol] = Position(symbol=f.symbol)
        realized = pos.apply_fill(f.side, f.qty, f.price)
        realized_by_symbol[f.symbol] = realized_by_symbol.get(f.symbol, Decimal(0)) + realized
        prev = marks.get(f.symbol)
        if prev is None or prev[0] < entry.seq:
            marks[f.symbol] = (entry.seq, f.price, "last_fill")
        rows.append(_fill_row(sid, entry, e, decision, bps, cost, realized))

    last_fill_seq = fills[-1][0].seq if fills else 0
    broker_final = None
    if snapshots and snapshots[-1][0].seq > last_fill_seq:
        broker_final = {p.symbol: p for p in snapshots[-1][1].positions}
    pnl, closing = _positions_and_pnl(sid, positions, realized_by_symbol, marks, broker_final, opening_source)
    return rows, pnl, _Carry(sid, closing, marks)


def _fill_row(
    sid: str,
    entry: Entry,
    e: Any,
    decision: Decimal | None,
    bps: Decimal | None,
    cost: Decimal | None,
    realized: Decimal,
) -> dict[str, Any]:
    """One fill's row of the report (a FillApplied `e`, journaled at `entry`), for the
    whole-journal pass (_fills_and_pnl) and the continued fold (_PnLFold.fill) alike."""
    f = e.fill
    return {
        "session_id": sid,
        "execution_id": f.execution_id,
        "client_order_id": f.client_order_id,
        "symbol": f.symbol,
        "side": f.side._value_,  # (without Enum's descriptor, at 10,000 fills)
        "qty": _dec(f.qty),
        "price": _dec(f.price),
        "ts": _iso(f.ts),
        "journaled_at": _iso(entry.ts),
        "journal_seq": entry.seq,
        "order_status": e.status._value_ if e.status is not None else None,
        "decision_price": _dec(decision),
        "slippage_bps": _derived(bps),
        "slippage_cost": _derived(cost),
        "realized_pl": _derived(realized),
    }


def _positions_and_pnl(
    sid: str,
    positions: dict[str, Position],
    realized_by_symbol: dict[str, Decimal],
    marks: dict[str, tuple[int, Decimal, str]],
    broker_final: dict[str, Any] | None,
    opening_source: str,
) -> tuple[dict[str, Any], dict[str, Position]]:
    """The session's P&L (positions rows, realized, unrealized) and its closing
    positions, from its positions after its fills."""
    pos_rows = []
    unrealized_total = Decimal(0)
    sources: set[str] = set()
    unmarked = []
    for symbol in sorted(set(positions) | set(broker_final or {})):
        pos = positions.get(symbol, Position(symbol=symbol))
        realized = realized_by_symbol.get(symbol, Decimal(0))
        if pos.qty == 0 and realized == 0 and not (broker_final and symbol in broker_final):
            continue
        mark = marks.get(symbol)
        unrealized = None
        if pos.qty != 0:
            if mark is not None:
                unrealized = (mark[1] - pos.avg_entry_price) * pos.qty
                unrealized_total += unrealized
                sources.add(mark[2])
            else:
                unmarked.append(symbol)
        broker = broker_final.get(symbol) if broker_final is not None else None
        broker_qty = (broker.qty if broker is not None else Decimal(0)) if broker_final is not None else None
        pos_rows.append(
            {
                "symbol": symbol,
                "qty": _derived(pos.qty),
                "avg_entry_price": _derived(pos.avg_entry_price) if pos.qty != 0 else None,
                "mark_price": _dec(mark[1]) if mark is not None and pos.qty != 0 else None,
                "mark_source": mark[2] if mark is not None and pos.qty != 0 else None,
                "unrealized_pl": _derived(unrealized),
                "realized_pl": _derived(realized),
                "broker_qty": _derived(broker_qty),
                "matches_broker": None if broker_qty is None else broker_qty == pos.qty,
            }
        )
    if not sources:
        source = "none (no open position)" if not unmarked else "none (no price in the journal)"
    elif len(sources) == 1:
        source = sources.pop()
    else:
        source = "mixed (per position: mark_source)"
    realized_total = sum(realized_by_symbol.values(), Decimal(0))
    pnl = {
        "session_id": sid,
        "method": "average cost",
        "opening_positions_source": opening_source,
        "realized": _derived(realized_total),
        "unrealized": _derived(unrealized_total),
        "unrealized_source": source,
        "unmarked_symbols": unmarked,
        "positions": pos_rows,
    }
    if broker_final is not None:  # the broker's word is the closing position
        closing = {
            sym: Position(symbol=sym, qty=p.qty, avg_entry_price=p.avg_entry_price) for sym, p in broker_final.items()
        }
    else:
        closing = {sym: p for sym, p in positions.items() if p.qty != 0}
    return pnl, closing


class _PnLFold:
    """_fills_and_pnl of one session, folded one journal entry at a time (the report
    fold, engine/report/fold.py): the same rows and figures as _fills_and_pnl over the
    session's fills and positions snapshots, given the same carry. Fed in journal
    order; `carry` is the previous sessions' closing (fixed: their rows all come before
    this session's)."""

    def __init__(self, sid: str, carry: _Carry | None) -> None:
        self.sid = sid
        self.carry = carry
        self.opening: tuple[int, Any] | None = None  # the last snapshot before the first fill
        self.last_snapshot: tuple[int, Any] | None = None
        self.started = False  # a fill was applied: the opening positions are fixed
        self.positions: dict[str, Position] = {}
        self.opening_source = ""
        self.own_marks: dict[str, tuple[int, Decimal, str]] = {}  # this session's (by rising seq)
        self.rows: list[dict[str, Any]] = []
        self.cells: list[list[str]] = []  # each row's cells in the text tables (renderers.fill_cells_of)
        self.realized_by_symbol: dict[str, Decimal] = {}
        self.last_fill_seq = 0
        #: fills whose order the book did not have yet: (row index, side, price, qty, coid)
        self.orphans: list[tuple[int, Side, Decimal, Decimal, str]] = []
        self.base_len = 0  # the rows the fold's base holds (fold.Fold.set_base)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["rows"], state["cells"] = self.rows[self.base_len :], self.cells[self.base_len :]
        return state

    def snapshot(self, entry: Entry, snap: Any) -> None:
        self.last_snapshot = (entry.seq, snap)
        if not self.started:
            self.opening = (entry.seq, snap)
        for p in snap.positions:
            if p.last_price is not None:
                self.own_marks[p.symbol] = (entry.seq, p.last_price, "positions_snapshot")

    def _open(self, carry: _Carry | None) -> tuple[dict[str, Position], str]:
        positions: dict[str, Position] = {}
        if self.opening is not None:
            for p in self.opening[1].positions:
                positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
            return positions, f"positions snapshot (journal seq {self.opening[0]})"
        if carry is not None and any(p.qty != 0 for p in carry.positions.values()):
            for p in carry.positions.values():
                if p.qty != 0:
                    positions[p.symbol] = Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price)
            return positions, f"carried from session {carry.session_id} (no positions snapshot before the first fill)"
        return positions, "flat: no positions snapshot before the first fill, none carried"

    def fill(self, entry: Entry, e: Any, book: Book) -> None:
        if not self.started:
            self.positions, self.opening_source = self._open(self.carry)
            self.started = True
        f = e.fill
        order = book.get(f.client_order_id)
        decision = order.decision_price if order is not None else None
        if order is None:
            self.orphans.append((len(self.rows), f.side, f.price, f.qty, f.client_order_id))
        bps = _bps(f.side, f.price, decision)
        cost = f.side.sign * (f.price - decision) * f.qty if bps is not None and decision is not None else None
        positions = self.positions
        pos = positions.get(f.symbol)
        if pos is None:
            pos = positions[f.symbol] = Position(symbol=f.symbol)
        realized = pos.apply_fill(f.side, f.qty, f.price)
        self.realized_by_symbol[f.symbol] = self.realized_by_symbol.get(f.symbol, Decimal(0)) + realized
        self.own_marks[f.symbol] = (entry.seq, f.price, "last_fill")  # (seq rises: the latest)
        self.last_fill_seq = entry.seq
        row = _fill_row(self.sid, entry, e, decision, bps, cost, realized)
        self.rows.append(row)
        self.cells.append(fill_cells_of(row))

    def result(
        self, order_of: Callable[[str], Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any], _Carry, list[list[str]]]:
        """(fill rows, P&L, closing carry) as _fills_and_pnl gives them now (order_of: the
        whole journal's book, for the decision price of an order journaled after its fill),
        and the rows' cells in the text tables."""
        rows, cells = self.rows, self.cells
        for index, side, price, qty, coid in self.orphans:
            order = order_of(coid)
            decision = order.decision_price if order is not None else None
            if decision is None:
                continue
            if rows is self.rows:
                rows, cells = list(rows), list(cells)
            bps = _bps(side, price, decision)
            cost = side.sign * (price - decision) * qty if bps is not None else None
            rows[index] = {
                **rows[index],
                "decision_price": _dec(decision),
                "slippage_bps": _derived(bps),
                "slippage_cost": _derived(cost),
            }
            cells[index] = fill_cells_of(rows[index])
        if self.started:
            positions, opening_source = self.positions, self.opening_source
        else:
            positions, opening_source = self._open(self.carry)
        carry = self.carry
        marks: dict[str, tuple[int, Decimal, str]] = dict(carry.marks) if carry is not None else {}
        marks.update(self.own_marks)
        broker_final = None
        if self.last_snapshot is not None and self.last_snapshot[0] > self.last_fill_seq:
            broker_final = {p.symbol: p for p in self.last_snapshot[1].positions}
        pnl, closing = _positions_and_pnl(
            self.sid, positions, self.realized_by_symbol, marks, broker_final, opening_source
        )
        return rows, pnl, _Carry(self.sid, closing, marks), cells
