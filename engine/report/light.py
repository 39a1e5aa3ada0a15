"""The journal read back for the report without pydantic: rows decoded with the standard
library's json into light events (only the kinds and fields the report uses, with the
types the engine's models give them: Decimal, datetime, the enums of engine/states.py),
and a light fold of the orders that follows OrderBook's rules (engine/orders.py).

The first report of a 10,000-order journal needs neither the pydantic import nor ~44,000
validated models this way. ``KINDS`` names every event kind the journal can hold (the
report's kinds and the ones it ignores); a row of another kind is an unknown event, as
for engine.events.decode. tests/engine/report/test_report_light.py keeps ``KINDS`` equal
to engine.events.EVENT_TYPES and this fold equal to OrderBook.from_replay.

A row this decoder cannot read (a missing field, a value of the wrong type, a fill of no
quantity) raises LightDecodeError; the report then asks engine.events.decode to say what
is wrong with it, in its words."""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from engine.report.figures import MEMO_MAX, register_memo
from engine.states import (
    FINAL_STATUSES,
    TRANSITIONS,
    DenialReason,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
    fill_at_average_cost,
)

S = OrderStatus


class LightDecodeError(ValueError):
    """A journal row the light decoder cannot read (the full decoder says why)."""

    def __init__(self, seq: int, type_name: str, payload: str, why: str):
        super().__init__(f"journal row {seq} ({type_name}): {why}")
        self.seq, self.type_name, self.payload = seq, type_name, payload


class Ev:
    """A light event: its fields as attributes (the engine's names and types)."""

    __slots__ = ("__dict__",)

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    if TYPE_CHECKING:  # the fields are the event's: any name, any type

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


@dataclass(slots=True)
class Entry:
    """One journal row: where and when it was journaled, its kind and its event."""

    seq: int
    ts: datetime
    session_id: str
    kind: str  # the row's type; "" for a kind this version does not know
    event: Any


@dataclass(frozen=True, slots=True)
class Record:
    """A row of the sessions manifest (the fields of engine.journal.SessionRecord)."""

    session_id: str
    config_hash: str
    venue_date: date
    started_at: datetime
    ended_at: datetime | None
    how_ended: str | None


# ---- field decoders ---------------------------------------------------------------------

_fromiso = datetime.fromisoformat
# The same strings come back again and again (a batch's bar time, a price, a size): each
# is converted once. Both conversions are pure and their results immutable, so the memos
# are shared (bounded by MEMO_MAX).
_DT: dict[str, datetime] = {}
register_memo(_DT)
_DEC: dict[str, Decimal] = {}
register_memo(_DEC)


def _dt(v: Any) -> datetime:
    if type(v) is not str:
        return _fromiso(v)  # (raises TypeError)
    d = _DT.get(v)
    if d is None:
        d = _fromiso(v)
        if len(_DT) < MEMO_MAX:
            _DT[v] = d
    return d


def _dec(v: Any) -> Decimal:
    if type(v) is str:
        d = _DEC.get(v)
        if d is None:
            d = Decimal(v)
            if len(_DEC) < MEMO_MAX:
                _DEC[v] = d
        return d
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError(f"not a decimal: {v!r}")
    return Decimal(v if not isinstance(v, float) else str(v))


def _odec(v: Any) -> Decimal | None:
    return None if v is None else _dec(v)


def _odt(v: Any) -> datetime | None:
    return None if v is None else _dt(v)


_SIDE = {m.value: m for m in Side}
_STATUS = {m.value: m for m in OrderStatus}
_TYPE = {m.value: m for m in OrderType}
_TIF = {m.value: m for m in TimeInForce}


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"not a string: {v!r}")
    return v


#: the fields of an order as the journal writes them (all present: _order's fast path)
_ORDER_KEYS = frozenset(
    (
        "client_order_id symbol side qty order_type time_in_force limit_price status venue_order_id filled_qty "
        "filled_avg_price bar_ts signal decision_price reduce_only reason denial denial_detail external created_at "
        "submitted_at final_at expires_at fill_ids"
    ).split()
)


def _order(d: dict[str, Any]) -> Ev:
    if not _ORDER_KEYS <= d.keys():
        return _order_with_defaults(d)
    # every field there (the journal writes them all): read without defaults. The light
    # order's fields are named by this code's (interned) strings, not the decoded dict's
    # keys: the fold reads them again and again
    limit_price, filled_avg, bar_ts, signal = d["limit_price"], d["filled_avg_price"], d["bar_ts"], d["signal"]
    decision, denial, created, submitted = d["decision_price"], d["denial"], d["created_at"], d["submitted_at"]
    final, expires, fill_ids = d["final_at"], d["expires_at"], d["fill_ids"]
    e = Ev.__new__(Ev)
    e.__dict__ = {
        "client_order_id": _str(d["client_order_id"]),
        "symbol": _str(d["symbol"]),
        "side": _SIDE[d["side"]],
        "qty": _dec(d["qty"]),
        "order_type": _TYPE[d["order_type"]],
        "time_in_force": _TIF[d["time_in_force"]],
        "limit_price": None if limit_price is None else _dec(limit_price),
        "status": _STATUS[d["status"]],
        "venue_order_id": d["venue_order_id"],
        "filled_qty": _dec(d["filled_qty"]),
        "filled_avg_price": None if filled_avg is None else _dec(filled_avg),
        "bar_ts": None if bar_ts is None else _dt(bar_ts),
        "signal": None if signal is None else float(signal),
        "decision_price": None if decision is None else _dec(decision),
        "reduce_only": bool(d["reduce_only"]),
        "reason": d["reason"],
        "denial": None if denial is None else DenialReason(denial),
        "denial_detail": d["denial_detail"],
        "external": bool(d["external"]),
        "created_at": None if created is None else _dt(created),
        "submitted_at": None if submitted is None else _dt(submitted),
        "final_at": None if final is None else _dt(final),
        "expires_at": None if expires is None else _dt(expires),
        "fill_ids": [_str(x) for x in fill_ids] if fill_ids else [],
    }
    return e


def _order_with_defaults(d: dict[str, Any]) -> Ev:
    g = d.get
    denial = g("denial")
    fill_ids = g("fill_ids") or []
    signal = g("signal")
    return Ev(
        client_order_id=_str(d["client_order_id"]),
        symbol=_str(d["symbol"]),
        side=_SIDE[d["side"]],
        qty=_dec(d["qty"]),
        order_type=_TYPE[g("order_type", "limit")],
        time_in_force=_TIF[g("time_in_force", "day")],
        limit_price=_odec(g("limit_price")),
        status=_STATUS[g("status", "created")],
        venue_order_id=g("venue_order_id"),
        filled_qty=_dec(g("filled_qty", "0")),
        filled_avg_price=_odec(g("filled_avg_price")),
        bar_ts=_odt(g("bar_ts")),
        signal=float(signal) if signal is not None else None,
        decision_price=_odec(g("decision_price")),
        reduce_only=bool(g("reduce_only", False)),
        reason=g("reason"),
        denial=DenialReason(denial) if denial is not None else None,
        denial_detail=g("denial_detail"),
        external=bool(g("external", False)),
        created_at=_odt(g("created_at")),
        submitted_at=_odt(g("submitted_at")),
        final_at=_odt(g("final_at")),
        expires_at=_odt(g("expires_at")),
        fill_ids=[_str(x) for x in fill_ids],
    )


def _fill(d: dict[str, Any]) -> Ev:
    qty, price = _dec(d["qty"]), _dec(d["price"])
    if not (qty.is_finite() and qty > 0 and price.is_finite() and price > 0):
        raise ValueError("a fill needs a quantity and a price > 0")
    return Ev(
        execution_id=_str(d["execution_id"]),
        client_order_id=_str(d["client_order_id"]),
        symbol=_str(d["symbol"]),
        side=_SIDE[d["side"]],
        qty=qty,
        price=price,
        ts=_dt(d["ts"]),
    )


def _position(d: dict[str, Any]) -> Ev:
    return Ev(
        symbol=_str(d["symbol"]),
        qty=_dec(d.get("qty", "0")),
        avg_entry_price=_dec(d.get("avg_entry_price", "0")),
        last_price=_odec(d.get("last_price")),
    )


def _coid(d: dict[str, Any]) -> Ev:
    return Ev(client_order_id=_str(d["client_order_id"]))


def _ostatus(v: Any) -> OrderStatus | None:
    return None if v is None else _STATUS[v]


def _sent(d: dict[str, Any]) -> Ev:
    # (the hot kinds: a dict display, its keys this code's interned names, no Ev.__init__)
    at = d.get("at")
    e = Ev.__new__(Ev)
    e.__dict__ = {"client_order_id": _str(d["client_order_id"]), "at": None if at is None else _dt(at)}
    return e


def _acked(d: dict[str, Any]) -> Ev:
    at = d.get("at")
    e = Ev.__new__(Ev)
    e.__dict__ = {
        "client_order_id": _str(d["client_order_id"]),
        "venue_order_id": _str(d["venue_order_id"]),
        "status": _STATUS[d["status"]],
        "at": None if at is None else _dt(at),
    }
    return e


# One decoder per kind the report (or the order fold) reads.
_DECODERS: dict[str, Any] = {
    "SessionStarted": lambda d: Ev(
        session_id=_str(d["session_id"]),
        resumed=bool(d.get("resumed", False)),
        resume_reason=d.get("resume_reason", ""),
        previous_config_hash=d.get("previous_config_hash"),
    ),
    "SessionEnded": lambda d: Ev(how=_str(d["how"])),
    "IntentCreated": lambda d: Ev(order=_order(d["order"]), batch_seq=d.get("batch_seq")),
    "OrderExternal": lambda d: Ev(order=_order(d["order"])),
    "OrderRecovered": lambda d: Ev(order=_order(d["order"]), batch_seq=d.get("batch_seq")),
    "IntentDenied": lambda d: Ev(
        client_order_id=_str(d["client_order_id"]), reason=DenialReason(d["reason"]), detail=d.get("detail", "")
    ),
    "ApprovalRequested": lambda d: Ev(client_order_id=_str(d["client_order_id"]), expires_at=_dt(d["expires_at"])),
    "IntentApproved": _coid,
    "IntentRejected": lambda d: Ev(
        client_order_id=_str(d["client_order_id"]), by=d.get("by", "operator"), detail=d.get("detail", "")
    ),
    "IntentExpired": lambda d: Ev(client_order_id=_str(d["client_order_id"]), at=_dt(d["at"])),
    "SubmitSent": _sent,
    "SubmitAcked": _acked,
    "SubmitRejected": lambda d: Ev(
        client_order_id=_str(d["client_order_id"]),
        http_status=d.get("http_status"),
        code=d.get("code"),
        message=d.get("message", ""),
    ),
    "SubmitUnknown": _coid,
    "CancelRequested": lambda d: Ev(client_order_id=_str(d["client_order_id"]), cause=d.get("cause", "operator")),
    "OrderStatusChanged": lambda d: Ev(
        client_order_id=_str(d["client_order_id"]),
        status=_STATUS[d["status"]],
        venue_order_id=d.get("venue_order_id"),
        at=_odt(d.get("at")),
    ),
    "FillApplied": lambda d: Ev(fill=_fill(d["fill"]), status=_ostatus(d.get("status"))),
    "OrderVanished": lambda d: Ev(client_order_id=_str(d["client_order_id"]), detail=d.get("detail", "")),
    "TradingStateChanged": lambda d: Ev(
        state=TradingState(d["state"]),
        cause=_str(d["cause"]),
        previous=TradingState(d["previous"]) if d.get("previous") is not None else None,
    ),
    "OverrideSet": lambda d: Ev(symbol=_str(d["symbol"]), override=d.get("override")),
    "KillSwitch": lambda d: Ev(phase=_str(d["phase"]), counts=dict(d.get("counts") or {}), detail=d.get("detail", "")),
    "SignalDropped": lambda d: Ev(symbol=d.get("symbol"), line=d.get("line"), reason=_str(d["reason"])),
    "BatchProcessed": lambda d: None,  # counted; its fields decide nothing in the report
    "SignalsSkipped": lambda d: Ev(count=int(d["count"])),
    "AccountSnapshot": lambda d: Ev(
        cash=_dec(d["cash"]),
        equity=_dec(d["equity"]),
        last_equity=_dec(d["last_equity"]),
        buying_power=_dec(d["buying_power"]),
    ),
    "PositionsSnapshot": lambda d: Ev(positions=[_position(p) for p in d["positions"]]),
    "ReconcileCompleted": lambda d: Ev(
        ok=bool(d["ok"]),
        trigger=d.get("trigger", "startup"),
        unaccounted=list(d.get("unaccounted") or []),
        counts=dict(d.get("counts") or {}),
    ),
}
#: kinds the journal holds that decide nothing in the report (not decoded)
IGNORED_KINDS = frozenset({"PreflightChecked", "OperatorCommand", "VenueMismatch"})
#: every event kind the journal can hold (engine.events.EVENT_TYPES: kept equal by a test)
KINDS = frozenset(_DECODERS) | IGNORED_KINDS
_ERRORS = (KeyError, TypeError, ValueError, InvalidOperation, AttributeError)


_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the C scanner, no layers


def _loads(payload: str) -> Any:
    """json.loads of a journal payload (compact JSON, as the journal writes it)."""
    try:
        value, end = _scan(payload, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(payload):
        return json.loads(payload)  # whitespace around it, or not JSON: json says which
    return value


def decode_rows(rows: Iterable[tuple[int, str, str, str, str]]) -> Iterator[Entry]:
    """Journal rows (seq, ts, session_id, type, payload) as light entries. Kinds the
    report ignores have event None; unknown kinds have kind "" (an unknown event)."""
    decoders = _DECODERS
    loads = _loads
    for seq, ts, sid, type_name, payload in rows:
        decoder = decoders.get(type_name)
        try:
            if decoder is not None:
                event = decoder(loads(payload))
                kind = type_name
            elif type_name in IGNORED_KINDS:
                event, kind = None, type_name
            else:
                event, kind = loads(payload), ""  # as UnknownEvent: the data kept raw
            yield Entry(seq, _fromiso(ts), sid, kind, event)  # (each row's own time: no memo)
        except _ERRORS as exc:
            raise LightDecodeError(seq, type_name, payload, f"{type(exc).__name__}: {exc}") from None


# ---- the orders: OrderBook's rules, for reading ----------------------------------------


class _Skip(Exception):
    """The event does not apply (OrderBook would refuse it and a rebuild skips it)."""


def _check(current: OrderStatus, new: OrderStatus) -> None:
    if current is not new and new not in TRANSITIONS[current]:
        raise _Skip


class Book:
    """The orders in the state a replay of the whole journal gives: the fold of
    OrderBook.from_replay (engine/orders.py) over light events, the fields the report
    reads. ``orders``: client_order_id -> light order; ``skipped``: refused events."""

    def __init__(self) -> None:
        self.orders: dict[str, Ev] = {}
        self.skipped = 0
        self._executions: set[str] = set()
        self._approvals: set[str] = set()

    def get(self, client_order_id: str) -> Ev | None:
        return self.orders.get(client_order_id)

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> Book:
        book = cls()
        handlers = _BOOK
        for entry in entries:
            handler = handlers.get(entry.kind)
            if handler is not None:
                try:
                    handler(book, entry.event)
                except _Skip:
                    book.skipped += 1
        return book

    def _need(self, coid: str) -> Ev:
        order = self.orders.get(coid)
        if order is None:
            raise _Skip
        return order

    def _status(self, order: Ev, new: OrderStatus, at: datetime | None = None) -> None:
        was_open = order.status not in FINAL_STATUSES
        order.status = new
        now_open = new not in FINAL_STATUSES
        if was_open and not now_open:
            if order.final_at is None:
                order.final_at = at
        elif now_open and not was_open:
            order.final_at = None
        if new is not S.AWAITING_APPROVAL:
            self._approvals.discard(order.client_order_id)

    def _add(self, order: Ev, external: bool | None = None) -> None:
        if order.client_order_id in self.orders:
            raise _Skip
        # the light order of the event becomes the book's (nothing else reads it after
        # the fold but its id and bar), so no copy as OrderBook's immutable events need
        if external is not None:
            order.external = external
        self.orders[order.client_order_id] = order
        self._executions.update(order.fill_ids)

    def _created(self, e: Ev) -> None:
        if e.order.status is not S.CREATED:
            raise _Skip
        self._add(e.order)

    def _external(self, e: Ev) -> None:
        self._add(e.order, external=True)

    def _recovered(self, e: Ev) -> None:
        if e.order.external:
            raise _Skip
        self._add(e.order)

    def _transition(self, coid: str, new: OrderStatus) -> Ev:
        order = self._need(coid)
        _check(order.status, new)
        return order

    def _vanished(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.VANISHED)
        order.denial_detail = e.detail or "the venue no longer has it"
        self._status(order, S.VANISHED)

    def _denied(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.DENIED)
        order.denial, order.denial_detail = e.reason, e.detail
        self._status(order, S.DENIED)

    def _approval_requested(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.AWAITING_APPROVAL)
        self._status(order, S.AWAITING_APPROVAL)
        order.expires_at = e.expires_at
        self._approvals.add(order.client_order_id)

    def _pending(self, coid: str) -> Ev:
        order = self._need(coid)
        if coid not in self._approvals:
            raise _Skip
        return order

    def _approved(self, e: Ev) -> None:
        self._pending(e.client_order_id)
        self._approvals.discard(e.client_order_id)

    def _rejected(self, e: Ev) -> None:
        order = self._pending(e.client_order_id)
        _check(order.status, S.DENIED)
        order.denial = DenialReason.REJECTED_BY_OPERATOR
        order.denial_detail = e.detail or f"rejected by {e.by}"
        self._status(order, S.DENIED)

    def _expired(self, e: Ev) -> None:
        order = self._pending(e.client_order_id)
        _check(order.status, S.EXPIRED)
        order.denial = DenialReason.APPROVAL_EXPIRED
        order.denial_detail = f"not approved by {order.expires_at.isoformat() if order.expires_at else e.at}"
        self._status(order, S.EXPIRED, e.at)

    def _sent(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.SUBMITTING)
        if order.status is S.AWAITING_APPROVAL and order.client_order_id in self._approvals:
            raise _Skip
        self._status(order, S.SUBMITTING)
        order.submitted_at = e.at

    def _venue_id(self, order: Ev, venue_order_id: str | None) -> None:
        if venue_order_id:
            order.venue_order_id = venue_order_id

    def _acked(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, e.status)
        self._venue_id(order, e.venue_order_id)
        self._status(order, e.status, e.at)

    def _submit_rejected(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.REJECTED)
        order.denial_detail = e.message or None
        self._status(order, S.REJECTED)

    def _unknown(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, S.UNKNOWN)
        self._status(order, S.UNKNOWN)

    def _cancel(self, e: Ev) -> None:
        self._need(e.client_order_id)

    def _changed(self, e: Ev) -> None:
        order = self._transition(e.client_order_id, e.status)
        self._venue_id(order, e.venue_order_id)
        self._status(order, e.status, e.at)

    def _fill(self, e: Ev) -> None:
        fill = e.fill
        order = self._need(fill.client_order_id)
        if fill.execution_id in self._executions:
            return
        if fill.symbol != order.symbol or fill.side is not order.side:
            raise _Skip
        new_filled = order.filled_qty + fill.qty
        if fill.qty <= 0 or new_filled > order.qty:
            raise _Skip
        if e.status is not None:
            new_status = e.status
        elif new_filled >= order.qty:
            new_status = S.FILLED
        elif order.status in FINAL_STATUSES:
            new_status = order.status
        else:
            new_status = S.PARTIALLY_FILLED
        _check(order.status, new_status)
        if fill.execution_id not in order.fill_ids:  # Order.apply_fill
            prev_value = (order.filled_avg_price or Decimal(0)) * order.filled_qty
            order.filled_qty += fill.qty
            order.filled_avg_price = (prev_value + fill.price * fill.qty) / order.filled_qty
            order.fill_ids.append(fill.execution_id)
        self._executions.add(fill.execution_id)
        self._status(order, new_status, fill.ts)


_BOOK = {
    "IntentCreated": Book._created,
    "OrderExternal": Book._external,
    "OrderRecovered": Book._recovered,
    "OrderVanished": Book._vanished,
    "IntentDenied": Book._denied,
    "ApprovalRequested": Book._approval_requested,
    "IntentApproved": Book._approved,
    "IntentRejected": Book._rejected,
    "IntentExpired": Book._expired,
    "SubmitSent": Book._sent,
    "SubmitAcked": Book._acked,
    "SubmitRejected": Book._submit_rejected,
    "SubmitUnknown": Book._unknown,
    "CancelRequested": Book._cancel,
    "OrderStatusChanged": Book._changed,
    "FillApplied": Book._fill,
}


class Pos:
    """A position for the report's P&L: engine.model.Position.apply_fill, average cost."""

    __slots__ = ("avg_entry_price", "qty", "symbol")

    def __init__(self, symbol: str, qty: Decimal = Decimal(0), avg_entry_price: Decimal = Decimal(0)) -> None:
        self.symbol, self.qty, self.avg_entry_price = symbol, qty, avg_entry_price

    def apply_fill(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill at price; return the realized P&L it produced."""
        self.qty, self.avg_entry_price, realized = fill_at_average_cost(
            self.qty, self.avg_entry_price, side, qty, price
        )
        return realized
