"""The write path: every order change is an event that is checked against the
OrderBook, journaled, then applied — the same path a replay takes after a
restart. After each applied event the portfolio's projection is updated in one
place (`Recorder.project`): fills move positions and cash, and the portfolio's
working orders follow the book, so the two cannot drift."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.core.common import FAR_FUTURE, config_hash, replace, trip_cause_of
from engine.journal import JournalError, recover
from engine.model import InvalidStateTransition, Order, TradingState
from engine.orders import OrderBookError
from engine.timezones import NEW_YORK as NY

if TYPE_CHECKING:
    from engine.core.engine import Engine

log = logging.getLogger("execdesk.engine")


#: event type -> whether it has client_order_id, order, fill (for order_of): a missing
#: attribute of a pydantic model is an AttributeError raised and caught inside pydantic
#: (~3 us each, two of them for every FillApplied), so it is looked up once per type
_ORDER_ATTRS: dict[type, tuple[bool, bool, bool]] = {}


def order_of(event: Any) -> str | None:
    """The client_order_id an event changes, if any."""
    kind = type(event)
    has = _ORDER_ATTRS.get(kind)
    if has is None:
        fields = getattr(kind, "model_fields", None)
        if not isinstance(fields, dict):
            return _order_of_any(event)
        has = _ORDER_ATTRS[kind] = tuple(  # type: ignore[assignment]
            name in fields or hasattr(kind, name) for name in ("client_order_id", "order", "fill")
        )
    has_cid, has_order, has_fill = has  # type: ignore[misc]
    cid = event.client_order_id if has_cid else None
    if cid is None:
        inner = (event.order if has_order else None) or (event.fill if has_fill else None)
        cid = getattr(inner, "client_order_id", None)
    return cid


def _order_of_any(event: Any) -> str | None:
    cid = getattr(event, "client_order_id", None)
    if cid is None:
        inner = getattr(event, "order", None) or getattr(event, "fill", None)
        cid = getattr(inner, "client_order_id", None)
    return cid


class Recorder:
    def __init__(self, engine: Engine):
        self.e = engine
        self.failed = False  # the journal could not be written: trading is HALTED for good
        self.deferred: list[Any] | None = None  # events held for the batch's one durable write
        self.releasing: set[str] = set()  # released to be sent, SubmitSent not applied yet
        self.flush_scheduled = False  # a flush of the journal's write-behind rows is on the loop

    # ------------------------------------------------------------ the session

    def open_journal(self) -> None:
        """Open (or continue) the journal's session and rebuild the book from it."""
        e = self.e
        venue_date = e.clock.now().astimezone(NY).date() if e.clock.anchored else None
        new = e.new_session or e.sync.venue_starts_empty()
        info = e.journal.open_session(config_hash(e.settings), venue_date, new=new)
        e.session_id = info.session_id
        rec = recover(e.journal.replay(), info.session_id)
        e.book = rec.book
        e.sync.journal_account = rec.account.account_number if rec.account is not None else ""
        if rec.trading_state is not None:
            e.state, e.state_cause = rec.trading_state, rec.trading_state_cause
            if e.state is not TradingState.ACTIVE:
                e.trip_cause = trip_cause_of(e.state_cause)
        e.overrides.update(rec.overrides)
        e.last_bar_ts = e.book.ledger.last_processed
        e.stats.batches = e.book.ledger.processed_count
        for o in list(e.book.iter_open()):
            self.track(o.client_order_id)
        # approvals do not survive a restart: the operator decides on fresh intents
        for event in e.book.expire(FAR_FUTURE):
            self.record_applied(event)
        e.note("info", None, f"session {info.session_id}: {info.reason}")
        if e.state is not TradingState.ACTIVE:
            e.note("state", None, f"restarted in {e.state.value}: {e.state_cause}")

    # -------------------------------------------------------------- recording

    def record(self, event: Any, durable: bool = False) -> bool:
        """Check, journal, apply. False if the book refused it or the journal failed."""
        try:
            self.e.book.check(event)
        except (InvalidStateTransition, OrderBookError) as exc:
            log.debug("event refused by the book: %s", exc)
            return False
        if not self.journal(event, durable):
            return False
        self.e.book.apply(event)
        self.project(event)
        return True

    def record_applied(self, event: Any, durable: bool = False) -> None:
        """Journal an event the book has already applied (approve/reject/expire)."""
        self.journal(event, durable)
        self.project(event)

    def journal(self, event: Any, durable: bool = False) -> bool:
        """Write first. A journal that cannot be written halts trading."""
        if self.failed:
            return False
        if self.deferred is not None:
            # inside a batch: written with the batch's one durable write, which
            # happens before any request of the batch leaves
            self.deferred.append(event)
            return True
        try:
            if durable:
                self.e.journal.append(event, durable=True)
                return True
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the engine's loop (start-up, tests): at once
                self.e.journal.append(event)
                return True
            # write-behind: committed at the end of this loop turn, with whatever else
            # the turn journals (a burst of fills is one transaction), and before any
            # task the turn starts (a request) runs: call_soon keeps that order
            self.e.journal.append_later(event)
            if not self.flush_scheduled:
                self.flush_scheduled = True
                loop.call_soon(self.flush)
            return True
        except JournalError as exc:
            self.broken(exc)
            return False

    def flush(self) -> None:
        """Commit the journal's write-behind rows; a failure halts as a failed append does."""
        self.flush_scheduled = False
        if self.failed:
            return
        try:
            self.e.journal.flush()
        except JournalError as exc:
            self.broken(exc)

    def write_sends(self, orders: Sequence[Order], also: Sequence[Any] = ()) -> list[ev.SubmitSent] | None:
        """Journal a SubmitSent for each order (with the deferred events and `also`)
        durably — one fsync for the lot — then apply them. None if nothing may be
        sent (the journal failed)."""
        e = self.e
        now = e.clock.now()
        sent = [ev.SubmitSent(client_order_id=o.client_order_id, at=now) for o in orders]
        deferred, self.deferred = self.deferred or [], None
        for event in (*sent, *also):
            e.book.check(event)
        if self.failed:
            return None
        try:
            e.journal.append_many([*deferred, *sent, *also], durable=True)
        except JournalError as exc:
            self.broken(exc)
            self.withhold(o.client_order_id for o in orders)
            return None
        for event in also:
            e.book.apply(event)
        for event in sent:
            e.book.apply(event)
            self.releasing.discard(event.client_order_id)
            self.project(event)
        return sent

    def broken(self, exc: Exception) -> None:
        e = self.e
        if self.failed:
            return
        self.failed = True
        e.connectivity = replace(e.connectivity, journal_ok=False, detail=f"journal: {exc}")
        e.state, e.state_cause = TradingState.HALTED, f"journal cannot be written: {exc}"
        e.trading_ready, e.not_ready_reason = False, "the journal cannot be written"
        e.note("error", None, f"JOURNAL ERROR: {exc} — trading HALTED (no orders without an audit trail)")
        e.publish()

    # ------------------------------------------------------------- projection

    def project(self, event: Any) -> None:
        """What an applied event changes outside the book: the snapshot's rows, the
        portfolio's positions and cash (a fill), its working orders (any event)."""
        if isinstance(event, ev.FillApplied):
            f = event.fill
            realized = self.e.portfolio.apply_fill(f.symbol, f.side, f.qty, f.price, f.client_order_id)
            self.e.publisher.fill_applied(f, realized)
        cid = order_of(event)
        if cid is not None:
            self.e.publisher.dirty_orders.add(cid)
            self.track(cid)

    def release(self, cid: str) -> None:
        """The order passed its last check and will be sent with the next durable
        write: from now it counts as working (for the checks of the next proposal)."""
        self.releasing.add(cid)
        self.track(cid)

    def withhold(self, cids: Iterable[str]) -> None:
        """Released orders that will not be sent after all."""
        for cid in cids:
            self.releasing.discard(cid)
            self.track(cid)

    def track(self, cid: str) -> None:
        """Make the portfolio's working order `cid` what the book says it is: working
        (at the venue, in flight, or released to be sent) with its remaining
        quantity, or gone."""
        o = self.e.book.get(cid)
        pf = self.e.portfolio
        if o is None:
            return
        wo = pf.working.get(cid)
        if not o.external and (o.status.is_working or cid in self.releasing):
            if wo is None:
                pf.order_opened(cid, o.symbol, o.side, o.remaining_qty, o.limit_price, o.reduce_only)
            elif wo.remaining != o.remaining_qty:
                pf.order_changed(cid, o.remaining_qty)
        elif wo is not None:
            pf.order_closed(cid)
