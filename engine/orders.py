"""Order lifecycle: the OrderBook (orders by client_order_id and venue id, the
approval queue, fills de-duplicated by execution id), the deterministic
client_order_id, and the batch ledger that keeps a restart from processing a
bar twice. State changes only by applying journal events, so the book rebuilt
by replay is the book that was live.

How the Engine uses it: build an event, ``book.check(event)`` if it wants to
know before journaling, ``journal.append(event)``, ``book.apply(event)``. The
approval primitives (``approve``, ``reject``, ``expire``) apply their events
and return them: journal what they return, at once. ``apply`` validates
everything before it mutates anything, so an event that raises leaves the book
unchanged; ``rebuild`` skips such events the same way (and lists them in
``skipped``), so replay yields the live state even if one was journaled.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from engine import events as ev
from engine.errors import ExecdeskError
from engine.model import (
    FINAL_STATUSES,
    DenialReason,
    Fill,
    InvalidStateTransition,
    Order,
    OrderStatus,
    Side,
    check_transition,
)

S = OrderStatus

# ---- client order ids ---------------------------------------------------------

CLIENT_ORDER_ID_MAX = 48
CLIENT_ORDER_ID_PREFIX = "xd"
_SESSION_ID_RE = re.compile(r"^(\d{2})(\d{6})-([a-z2-7]{8})$")
_SYMBOL_SAFE = re.compile(r"[A-Za-z0-9]")
_MAX_SYMBOL_PART = 16


def _b32(data: bytes, n: int) -> str:
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")[:n]


def session_short(session_id: str) -> str:
    """A compact, id-safe form of a session id. Session ids made by the journal
    ("YYYYMMDD-xxxxxxxx") become "YYMMDDxxxxxxxx" (14 chars, starts with a digit);
    any other id becomes "h" + 13 chars of its hash (never the same form)."""
    m = _SESSION_ID_RE.match(session_id)
    if m:
        return m.group(2) + m.group(3)
    if not session_id:
        raise ValueError("session_id must not be empty")
    return "h" + _b32(hashlib.blake2b(session_id.encode(), digest_size=10).digest(), 13)


def _symbol_part(symbol: str) -> str:
    """Letters and digits kept; anything else escaped as _XX (hex), so distinct
    symbols stay distinct ("BRK.B" -> "BRK_2EB"). A symbol too long for the
    budget becomes "__" + a hash of it (no escaped symbol starts that way)."""
    out: list[str] = []
    for ch in symbol:
        if _SYMBOL_SAFE.match(ch):
            out.append(ch)
        elif ord(ch) < 256:
            out.append(f"_{ord(ch):02X}")
        else:  # beyond Latin-1: hashed
            return "__" + _b32(hashlib.blake2b(symbol.encode(), digest_size=10).digest(), 12)
    part = "".join(out)
    if len(part) > _MAX_SYMBOL_PART:
        return "__" + _b32(hashlib.blake2b(symbol.encode(), digest_size=10).digest(), 12)
    return part


def make_client_order_id(session_id: str, bar_seq: int, symbol: str, seq: int) -> str:
    """The client_order_id of the seq-th intent for symbol in batch bar_seq of a
    session: "xd-<session short>-<bar>-<symbol>-<seq>", e.g.
    "xd-260305k3j7x2mq-12-AAPL-0". Stable for the same inputs, only
    [A-Za-z0-9_-], at most 48 characters; distinct inputs give distinct ids.
    The batch number is the bar's (``bar_number``: seconds from the session's
    date to the bar), so an id names its session and its bar even when the
    journal has lost them (``parse_client_order_id``)."""
    if not symbol:
        raise ValueError("symbol must not be empty")
    if bar_seq < 0 or seq < 0:
        raise ValueError(f"bar_seq and seq must be >= 0, got bar_seq={bar_seq} seq={seq}")
    coid = f"{CLIENT_ORDER_ID_PREFIX}-{session_short(session_id)}-{bar_seq}-{_symbol_part(symbol)}-{seq}"
    if len(coid) > CLIENT_ORDER_ID_MAX:
        raise ValueError(f"client_order_id {coid!r} is {len(coid)} characters, the limit is {CLIENT_ORDER_ID_MAX}")
    return coid


_CLIENT_ORDER_ID_RE = re.compile(r"^xd-(\d{6}[a-z2-7]{8}|h[a-z2-7]{13})-(\d{1,12})-([A-Za-z0-9_]{1,16})-(\d{1,6})$")
# the order's purpose by the range its seq number is in (core/common.py: SEQ_STOP, SEQ_FLATTEN)
_SEQ_PURPOSES = ((7000, "flatten"), (5000, "stop_loss"), (0, "signal"))


@dataclass(frozen=True, slots=True)
class ParsedClientOrderId:
    """What an id made by make_client_order_id says: its session (short form), its
    batch, its symbol (as written in the id) and its seq within the batch."""

    session_short: str
    bar_seq: int
    symbol_part: str
    seq: int

    @property
    def purpose(self) -> str:
        return next(p for floor, p in _SEQ_PURPOSES if self.seq >= floor)


def parse_client_order_id(client_order_id: str) -> ParsedClientOrderId | None:
    """The parts of an id this engine made, or None for anybody else's id."""
    m = _CLIENT_ORDER_ID_RE.match(client_order_id)
    if m is None:
        return None
    return ParsedClientOrderId(m.group(1), int(m.group(2)), m.group(3), int(m.group(4)))


def session_date(session_id: str | None) -> datetime | None:
    """Midnight (UTC) of the date a journal-made session id carries, if it carries one."""
    m = _SESSION_ID_RE.match(session_id or "")
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1) + m.group(2), "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def bar_number(session_id: str | None, bar_ts: datetime) -> int | None:
    """The batch number of a bar in a session: whole seconds from the session's date
    (midnight UTC) to the bar's time. Derived from the bar alone, so a batch keeps
    its number (and its orders their ids) even if the journal lost it. None for a
    session id without a date or a bar before it."""
    anchor = session_date(session_id)
    if anchor is None or bar_ts.tzinfo is None:
        return None
    seconds = int((bar_ts - anchor).total_seconds() // 1)
    return seconds if seconds >= 0 else None


def bar_of_number(session_id: str | None, bar_seq: int) -> datetime | None:
    """The bar (to the second) a batch number names, if the session id has a date."""
    anchor = session_date(session_id)
    return anchor + timedelta(seconds=bar_seq) if anchor is not None else None


# ---- errors -------------------------------------------------------------------------


class OrderBookError(ExecdeskError):
    """An event that does not fit the book (unknown order, duplicate intent, ...)."""


class UnknownOrder(OrderBookError):
    def __init__(self, client_order_id: str, what: str):
        super().__init__(f"{what}: no order with client_order_id {client_order_id!r} in the book")
        self.client_order_id = client_order_id


class DuplicateOrder(OrderBookError):
    def __init__(self, client_order_id: str):
        super().__init__(f"an order with client_order_id {client_order_id!r} is already in the book")
        self.client_order_id = client_order_id


# ---- batch ledger ------------------------------------------------------------------------


class BatchLedger:
    """Which batches (bars) the current session has seen and processed. A batch's
    number is its bar's (``bar_number``): the same bar always gets the same number,
    so after a crash, or after the journal lost its tail, the same batch yields the
    same client_order_ids. Two bars in the same second: the later one takes the next
    free number. A batch known only from orders of it found at the venue
    (``note_recovered``) counts as processed."""

    def __init__(self, session_id: str | None = None, processed_before: set[datetime] | None = None):
        self.session_id = session_id
        #: bars an earlier session of the journal processed: not acted on twice either
        self._processed_before: set[datetime] = processed_before if processed_before is not None else set()
        self._seq_by_bar: dict[datetime, int] = {}
        self._bar_by_seq: dict[int, datetime] = {}
        self._processed: set[datetime] = set()
        self._processed_seqs: set[int] = set()
        self._recovered: set[int] = set()  # processed batches whose bar the journal lost
        self._next = 0

    def _peek(self, bar_ts: datetime) -> int:
        seq = self._seq_by_bar.get(bar_ts)
        if seq is not None:
            return seq
        preferred = bar_number(self.session_id, bar_ts)
        seq = preferred if preferred is not None else self._next
        while seq in self._bar_by_seq:
            seq += 1
        return seq

    def seq_for(self, bar_ts: datetime) -> int:
        """The batch_seq of this bar: the one already used, or its own."""
        seq = self._seq_by_bar.get(bar_ts)
        if seq is None:
            seq = self._peek(bar_ts)
            self._register(bar_ts, seq)
        return seq

    def _register(self, bar_ts: datetime, seq: int) -> None:
        self._seq_by_bar[bar_ts] = seq
        self._bar_by_seq.setdefault(seq, bar_ts)
        self._next = max(self._next, seq + 1)

    def is_processed(self, bar_ts: datetime) -> bool:
        return (
            bar_ts in self._processed or bar_ts in self._processed_before or self._peek(bar_ts) in self._processed_seqs
        )

    @property
    def processed_count(self) -> int:
        return len(self._processed_seqs)

    @property
    def last_processed(self) -> datetime | None:
        """The latest bar already processed, if any (to the second, for a recovered one)."""
        bars = set(self._processed)
        for seq in self._recovered:
            bar = self._bar_by_seq.get(seq) or bar_of_number(self.session_id, seq)
            if bar is not None:
                bars.add(bar)
        return max(bars, default=None)

    def note(self, bar_ts: datetime | None, batch_seq: int | None, processed: bool = False) -> None:
        if bar_ts is None or batch_seq is None:
            return
        if bar_ts not in self._seq_by_bar:
            self._register(bar_ts, batch_seq)
        if processed:
            self._processed.add(bar_ts)
            self._processed_seqs.add(batch_seq)

    def note_recovered(self, batch_seq: int) -> None:
        """Orders of batch batch_seq are at the venue: the batch was processed."""
        if batch_seq not in self._processed_seqs:
            self._recovered.add(batch_seq)
            self._processed_seqs.add(batch_seq)
        self._next = max(self._next, batch_seq + 1)


# ---- the book -------------------------------------------------------------------------------


@dataclass
class _Approval:
    client_order_id: str
    expires_at: datetime


class OrderBook:
    """Every order this engine knows (its own and external ones), indexed by
    client_order_id, by venue order id, and (open orders) by symbol and side.
    Every operation is O(1) in the number of open orders (the approval queue's
    heap is O(log n)). ``orders`` is for reading: change it only by events."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        #: events a rebuild skipped because they did not apply (with the reason)
        self.skipped: list[tuple[object, str]] = []
        self._by_venue: dict[str, str] = {}
        self._open: dict[tuple[str, Side], dict[str, Order]] = {}
        self._open_count = 0
        self._executions: set[str] = set()
        self._approvals: dict[str, _Approval] = {}
        self._approval_heap: list[tuple[datetime, str]] = []
        self._bars_processed: set[datetime] = set()  # by any session of the journal
        self.ledger = BatchLedger(processed_before=self._bars_processed)

    def __repr__(self) -> str:
        return (
            f"OrderBook({len(self.orders)} orders, {self._open_count} open, {len(self._approvals)} awaiting approval)"
        )

    # -- queries ------------------------------------------------------------------------

    def get(self, client_order_id: str) -> Order | None:
        return self.orders.get(client_order_id)

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self.orders

    def __len__(self) -> int:
        return len(self.orders)

    def by_venue_id(self, venue_order_id: str) -> Order | None:
        coid = self._by_venue.get(venue_order_id)
        return self.orders.get(coid) if coid is not None else None

    @property
    def open_count(self) -> int:
        """Orders not in a final status (intents, in flight, working, external)."""
        return self._open_count

    def open_orders(self, symbol: str, side: Side | None = None) -> list[Order]:
        """Open (not final) orders in symbol, on one side or both."""
        sides = (side,) if side is not None else (Side.BUY, Side.SELL)
        out: list[Order] = []
        for s in sides:
            bucket = self._open.get((symbol, s))
            if bucket:
                out.extend(bucket.values())
        return out

    def iter_open(self) -> Iterator[Order]:
        for bucket in self._open.values():
            yield from bucket.values()

    def has_execution(self, execution_id: str) -> bool:
        return execution_id in self._executions

    # -- approval queue ------------------------------------------------------------------

    @property
    def awaiting_approval(self) -> list[Order]:
        """Intents waiting for the operator, oldest deadline first."""
        pending = sorted(self._approvals.values(), key=lambda a: (a.expires_at, a.client_order_id))
        return [self.orders[a.client_order_id] for a in pending]

    def approval_deadline(self, client_order_id: str) -> datetime | None:
        a = self._approvals.get(client_order_id)
        return a.expires_at if a else None

    def approve(self, client_order_id: str, by: str = "operator", now: datetime | None = None) -> ev.IntentApproved:
        """Take an intent off the approval queue. Applied; journal the result.
        The order stays AWAITING_APPROVAL until SubmitSent. With now, an intent
        past its deadline cannot be approved (call expire(now))."""
        deadline = self.approval_deadline(client_order_id)
        if now is not None and deadline is not None and deadline <= now:
            raise OrderBookError(f"intent {client_order_id}: approval deadline {deadline.isoformat()} has passed")
        event = ev.IntentApproved(client_order_id=client_order_id, by=by)
        self.apply(event)
        return event

    def reject(self, client_order_id: str, by: str = "operator", detail: str = "") -> ev.IntentRejected:
        """The operator said no: DENIED (REJECTED_BY_OPERATOR). Applied; journal the result."""
        event = ev.IntentRejected(client_order_id=client_order_id, by=by, detail=detail)
        self.apply(event)
        return event

    def expire(self, now: datetime, at: datetime | None = None) -> list[ev.IntentExpired]:
        """Expire every intent whose approval deadline is at or before now:
        EXPIRED (APPROVAL_EXPIRED) at `at` (default: now; a deadline far in the
        future expires everything, but the time recorded is the real one).
        Applied; journal the results."""
        out: list[ev.IntentExpired] = []
        heap = self._approval_heap
        while heap and heap[0][0] <= now:
            deadline, coid = heapq.heappop(heap)
            pending = self._approvals.get(coid)
            if pending is None or pending.expires_at != deadline:
                continue  # approved, rejected or re-requested since: stale heap entry
            event = ev.IntentExpired(client_order_id=coid, at=at or now)
            self.apply(event)
            out.append(event)
        return out

    # -- applying events -------------------------------------------------------------------

    def check(self, event: ev.Event) -> None:
        """Raise (InvalidStateTransition, OrderBookError) if apply(event) would."""
        self._apply(event, commit=False)

    def apply(self, event: ev.Event) -> bool:
        """Apply one journal event. Returns False when it changed nothing (a
        duplicate fill, an event the book does not track). Raises before
        changing anything when the event does not fit."""
        return self._apply(event, commit=True)

    def rebuild(self, entries: Iterable[object], session_id: str | None = None) -> OrderBook:
        """Apply every event of a replay (events or JournalEntry records with
        .event and .session_id). Events that raise are skipped (the live book
        refused them too) and listed in ``skipped``. The batch ledger follows
        session_id (default: the last SessionStarted's)."""
        for entry in entries:
            event = getattr(entry, "event", entry)
            if isinstance(event, ev.SessionStarted):
                if session_id is None or event.session_id == session_id:
                    if self.ledger.session_id != event.session_id:
                        self.ledger = BatchLedger(event.session_id, processed_before=self._bars_processed)
                continue
            entry_session = getattr(entry, "session_id", None)
            try:
                self._apply(event, commit=True, session_id=entry_session)
            except (InvalidStateTransition, OrderBookError) as exc:
                self.skipped.append((event, str(exc)))
        return self

    @classmethod
    def from_replay(cls, entries: Iterable[object], session_id: str | None = None) -> OrderBook:
        return cls().rebuild(entries, session_id)

    # -- internals ---------------------------------------------------------------------------

    def _need(self, client_order_id: str, what: str) -> Order:
        order = self.orders.get(client_order_id)
        if order is None:
            raise UnknownOrder(client_order_id, what)
        return order

    def _apply(self, event: object, *, commit: bool, session_id: str | None = None) -> bool:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            return False
        return handler(self, event, commit, session_id)

    def _index_add(self, order: Order) -> None:
        if order.status not in FINAL_STATUSES:
            self._open.setdefault((order.symbol, order.side), {})[order.client_order_id] = order
            self._open_count += 1
        if order.venue_order_id:
            self._by_venue[order.venue_order_id] = order.client_order_id

    def _set_status(self, order: Order, new: OrderStatus, at: datetime | None = None) -> None:
        """Move to new (already checked). Keeps the open index in step."""
        was_open = order.status not in FINAL_STATUSES
        order.status = new
        now_open = new not in FINAL_STATUSES
        if was_open and not now_open:
            bucket = self._open.get((order.symbol, order.side))
            if bucket is not None and bucket.pop(order.client_order_id, None) is not None:
                self._open_count -= 1
            if order.final_at is None:
                order.final_at = at
        elif now_open and not was_open:
            self._open.setdefault((order.symbol, order.side), {})[order.client_order_id] = order
            self._open_count += 1
            order.final_at = None
        if new is not S.AWAITING_APPROVAL:
            self._approvals.pop(order.client_order_id, None)

    def _set_venue_id(self, order: Order, venue_order_id: str | None) -> None:
        if venue_order_id and order.venue_order_id != venue_order_id:
            if order.venue_order_id:
                self._by_venue.pop(order.venue_order_id, None)
            order.venue_order_id = venue_order_id
            self._by_venue[venue_order_id] = order.client_order_id

    def _add_order(self, order: Order, commit: bool) -> bool:
        if order.client_order_id in self.orders:
            raise DuplicateOrder(order.client_order_id)
        if not commit:
            return True
        # the event stays immutable: a shallow copy with its own fill list (the only
        # mutable field) is enough, and ten times cheaper than a deep copy on replay
        order = order.model_copy(update={"fill_ids": list(order.fill_ids)})
        self.orders[order.client_order_id] = order
        self._index_add(order)
        for execution_id in order.fill_ids:
            self._executions.add(execution_id)
        return True

    # one handler per event type -------------------------------------------------------------

    def _on_intent_created(self, e: ev.IntentCreated, commit: bool, session_id: str | None) -> bool:
        if e.order.status is not S.CREATED:
            raise OrderBookError(
                f"intent {e.order.client_order_id}: expected status created, found {e.order.status.value}"
            )
        self._add_order(e.order, commit)
        if commit and e.order.bar_ts is not None and self._ledger_follows(session_id):
            self.ledger.note(e.order.bar_ts, e.batch_seq)
        return True

    def _on_external(self, e: ev.OrderExternal, commit: bool, session_id: str | None) -> bool:
        if commit:
            self._add_order(e.order.model_copy(update={"external": True}), commit)
        elif e.order.client_order_id in self.orders:
            raise DuplicateOrder(e.order.client_order_id)
        return True

    def _on_recovered(self, e: ev.OrderRecovered, commit: bool, session_id: str | None) -> bool:
        if e.order.external:
            raise OrderBookError(f"OrderRecovered: {e.order.client_order_id} is marked external")
        self._add_order(e.order, commit)
        if commit and e.batch_seq is not None and self._ledger_follows(session_id):
            parsed = parse_client_order_id(e.order.client_order_id)
            if (
                parsed is not None
                and self.ledger.session_id is not None
                and parsed.session_short == session_short(self.ledger.session_id)
            ):
                self.ledger.note_recovered(e.batch_seq)
        return True

    def _on_vanished(self, e: ev.OrderVanished, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.VANISHED, "OrderVanished")
        if commit:
            order.denial_detail = e.detail or "the venue no longer has it"
            self._set_status(order, S.VANISHED)
        return True

    def _transition(self, coid: str, new: OrderStatus, what: str) -> Order:
        order = self._need(coid, what)
        check_transition(coid, order.status, new)
        return order

    def _on_denied(self, e: ev.IntentDenied, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.DENIED, "IntentDenied")
        if commit:
            order.denial, order.denial_detail = e.reason, e.detail
            self._set_status(order, S.DENIED)
        return True

    def _on_approval_requested(self, e: ev.ApprovalRequested, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.AWAITING_APPROVAL, "ApprovalRequested")
        if commit:
            self._set_status(order, S.AWAITING_APPROVAL)
            order.expires_at = e.expires_at
            self._approvals[order.client_order_id] = _Approval(order.client_order_id, e.expires_at)
            heapq.heappush(self._approval_heap, (e.expires_at, order.client_order_id))
        return True

    def _pending_approval(self, coid: str, what: str) -> Order:
        order = self._need(coid, what)
        if coid not in self._approvals:
            raise OrderBookError(f"{what}: intent {coid} is not awaiting approval (status {order.status.value})")
        return order

    def _on_approved(self, e: ev.IntentApproved, commit: bool, session_id: str | None) -> bool:
        self._pending_approval(e.client_order_id, "IntentApproved")
        if commit:
            del self._approvals[e.client_order_id]
        return True

    def _on_rejected(self, e: ev.IntentRejected, commit: bool, session_id: str | None) -> bool:
        order = self._pending_approval(e.client_order_id, "IntentRejected")
        check_transition(order.client_order_id, order.status, S.DENIED)
        if commit:
            order.denial = DenialReason.REJECTED_BY_OPERATOR
            order.denial_detail = e.detail or f"rejected by {e.by}"
            self._set_status(order, S.DENIED)
        return True

    def _on_expired(self, e: ev.IntentExpired, commit: bool, session_id: str | None) -> bool:
        order = self._pending_approval(e.client_order_id, "IntentExpired")
        check_transition(order.client_order_id, order.status, S.EXPIRED)
        if commit:
            order.denial = DenialReason.APPROVAL_EXPIRED
            order.denial_detail = f"not approved by {order.expires_at.isoformat() if order.expires_at else e.at}"
            self._set_status(order, S.EXPIRED, e.at)
        return True

    def _on_submit_sent(self, e: ev.SubmitSent, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.SUBMITTING, "SubmitSent")
        if order.status is S.AWAITING_APPROVAL and order.client_order_id in self._approvals:
            raise OrderBookError(f"SubmitSent: intent {order.client_order_id} has not been approved")
        if commit:
            self._set_status(order, S.SUBMITTING)
            order.submitted_at = e.at
        return True

    def _on_submit_acked(self, e: ev.SubmitAcked, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, e.status, "SubmitAcked")
        if commit:
            self._set_venue_id(order, e.venue_order_id)
            order.acked_at = e.at
            self._set_status(order, e.status, e.at)
        return True

    def _on_submit_rejected(self, e: ev.SubmitRejected, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.REJECTED, "SubmitRejected")
        if commit:
            order.denial_detail = e.message or None
            self._set_status(order, S.REJECTED)
        return True

    def _on_submit_unknown(self, e: ev.SubmitUnknown, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, S.UNKNOWN, "SubmitUnknown")
        if commit:
            self._set_status(order, S.UNKNOWN)
        return True

    def _on_cancel_requested(self, e: ev.CancelRequested, commit: bool, session_id: str | None) -> bool:
        self._need(e.client_order_id, "CancelRequested")
        return False  # the venue's answer changes the status, not the request

    def _on_status(self, e: ev.OrderStatusChanged, commit: bool, session_id: str | None) -> bool:
        order = self._transition(e.client_order_id, e.status, "OrderStatusChanged")
        if commit:
            self._set_venue_id(order, e.venue_order_id)
            self._set_status(order, e.status, e.at)
        return True

    def _on_fill(self, e: ev.FillApplied, commit: bool, session_id: str | None) -> bool:
        fill: Fill = e.fill
        order = self._need(fill.client_order_id, "FillApplied")
        if fill.execution_id in self._executions:
            return False  # seen before: de-duplicated by execution id
        if fill.symbol != order.symbol or fill.side != order.side:
            raise OrderBookError(
                f"fill {fill.execution_id}: {fill.side.value} {fill.symbol} does not match order "
                f"{order.client_order_id} ({order.side.value} {order.symbol})"
            )
        new_filled = order.filled_qty + fill.qty
        if fill.qty <= 0 or new_filled > order.qty:
            # no venue fills an order past its quantity: a fill that would is counted twice
            raise OrderBookError(
                f"fill {fill.execution_id}: {fill.qty} more of {order.client_order_id} would fill "
                f"{new_filled} of {order.qty}"
            )
        if e.status is not None:
            new_status = e.status
        elif new_filled >= order.qty:
            new_status = S.FILLED
        elif order.status.is_final:
            new_status = order.status  # a late partial fill after cancel/expiry: stays final
        else:
            new_status = S.PARTIALLY_FILLED
        check_transition(order.client_order_id, order.status, new_status)
        if commit:
            order.apply_fill(fill)
            self._executions.add(fill.execution_id)
            self._set_status(order, new_status, fill.ts)
        return True

    def _ledger_follows(self, session_id: str | None) -> bool:
        return session_id is None or self.ledger.session_id is None or session_id == self.ledger.session_id

    def _on_batch(self, e: ev.BatchProcessed, commit: bool, session_id: str | None) -> bool:
        if commit:
            self._bars_processed.add(e.bar_ts)
            if self._ledger_follows(session_id):
                self.ledger.note(e.bar_ts, e.batch_seq, processed=True)
        return True


_HANDLERS: dict[type, Callable[[OrderBook, Any, bool, str | None], bool]] = {
    ev.IntentCreated: OrderBook._on_intent_created,
    ev.OrderExternal: OrderBook._on_external,
    ev.IntentDenied: OrderBook._on_denied,
    ev.ApprovalRequested: OrderBook._on_approval_requested,
    ev.IntentApproved: OrderBook._on_approved,
    ev.IntentRejected: OrderBook._on_rejected,
    ev.IntentExpired: OrderBook._on_expired,
    ev.SubmitSent: OrderBook._on_submit_sent,
    ev.SubmitAcked: OrderBook._on_submit_acked,
    ev.SubmitRejected: OrderBook._on_submit_rejected,
    ev.SubmitUnknown: OrderBook._on_submit_unknown,
    ev.CancelRequested: OrderBook._on_cancel_requested,
    ev.OrderStatusChanged: OrderBook._on_status,
    ev.FillApplied: OrderBook._on_fill,
    ev.BatchProcessed: OrderBook._on_batch,
    ev.OrderRecovered: OrderBook._on_recovered,
    ev.OrderVanished: OrderBook._on_vanished,
}
