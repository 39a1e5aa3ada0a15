"""What the engine reads from the venue: clock, assets, account, positions (the
venue is authoritative for them), quotes and bar history at start-up, connectivity,
and reconciliation of orders (at start-up it fails closed). Reads run in tasks;
their results are applied inside the engine task through typed messages.

The venue is the truth (rule 12), and every disagreement ends in an event: an
order the venue no longer has is VANISHED (OrderVanished), an order of ours the
journal lost is adopted (OrderRecovered), fills follow the venue's cumulative
quantity per order, and a venue that is not the journal's (another account, or
none of the session's orders) fails the session closed (VenueMismatch)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from engine import events as ev
from engine.broker.base import (
    BrokerUnavailable,
    ConnectivityChanged,
    RateLimitChanged,
    VenueAccount,
    VenueBar,
    VenueOrder,
    VenuePosition,
)
from engine.core import messages as msg
from engine.core.common import EXTERNAL, q, replace
from engine.model import Order, OrderStatus, Position, TradingState
from engine.orders import parse_client_order_id, session_short
from engine.reconcile import catch_up_fill, plan_reconciliation
from engine.sizing import AssetFlags

if TYPE_CHECKING:
    from engine.core.engine import Engine

#: reconciliations that also ask who the venue is (account, the session's orders)
IDENTITY_TRIGGERS = frozenset({"startup", "retry", "reconnect"})
SESSION_PROBE = 3  # the session's newest orders looked up when the listing shows none of them
NEVER = datetime.min.replace(tzinfo=UTC)


JOURNAL_NOT_READY = "the journal cannot be written"  # as Recorder.broken says it


class VenueSync:
    def __init__(self, engine: Engine):
        self.e = engine
        self.reconcile_lock: asyncio.Lock | None = None
        self.fills_from_rest: asyncio.Task | None = None  # while the trade stream is down
        self.journal_account = ""  # the account number the journal last recorded (set at open)
        self.mismatch = ""  # why this venue is not the journal's: trading stays held
        self.foreign = False  # the venue answers for another account than the journal's
        self._own_sessions: dict[str, str] | None = None
        self._session_listed = False  # the last pass listed some of this session's orders

    def venue_starts_empty(self) -> bool:
        """The built-in venue is made fresh in this process (no orders, no positions):
        a session cannot continue on it, so every start on it is a new session."""
        e = self.e
        if e.venue_kind != "SIM" or e.journal.latest_session() is None:
            return False
        e.note("info", None, "the built-in venue starts empty: a new session (orders of earlier ones are settled)")
        return True

    def own_sessions(self) -> dict[str, str]:
        """Session short -> session id, for every session of this journal: whose
        client_order_ids are this engine's own."""
        if self._own_sessions is None or session_short(self.e.session_id) not in self._own_sessions:
            self._own_sessions = {session_short(r.session_id): r.session_id for r in self.e.journal.sessions()}
        return self._own_sessions

    def is_own(self, client_order_id: str) -> bool:
        parsed = parse_client_order_id(client_order_id)
        return parsed is not None and parsed.session_short in self.own_sessions()

    # ------------------------------------------------------------------ reads

    async def refresh_clock(self) -> None:
        e = self.e
        try:
            c = await e.broker.clock()
        except BrokerUnavailable:
            return
        e.clock.anchor(c.timestamp, c.is_open, c.next_open, c.next_close)
        e.publisher.dirty = True

    async def load_assets(self) -> None:
        e = self.e
        try:
            assets = await e.broker.assets(e.symbols)
        except BrokerUnavailable as exc:
            e.note("error", None, f"assets unavailable ({exc}): using the universe file's flags")
            return
        for sym, a in assets.items():
            e.asset_flags[sym] = AssetFlags(
                a.shortable, a.easy_to_borrow, a.fractionable, a.tradable and a.status == "active"
            )

    async def refresh_account(self, evaluate: bool = False) -> None:
        e = self.e
        since = e.portfolio.fills_applied if e.started else None
        try:
            acct = await e.broker.account()
        except BrokerUnavailable as exc:
            e.note("error", None, f"account refresh failed: {exc}")
            return
        read = msg.AccountRead(acct, evaluate, since)
        if not e.started or e.stopping:
            self.on_account_read(read)
        else:
            e.post(read)

    def on_account_read(self, item: msg.AccountRead) -> None:
        e, acct = self.e, item.account
        if e.session_id and not self.account_is_the_journals(acct.account_number):
            return  # another account's money is not this session's
        keep_cash = self.cash_unsettled(item.since)
        e.portfolio.set_account(acct.cash, acct.equity, acct.last_equity, acct.buying_power, keep_cash=keep_cash)
        e.account_number = acct.account_number
        if item.evaluate:
            self.journal_account_snapshot(acct)
            e.publisher.pl_history.append(float(e.portfolio.daily_pnl))
            e.halt.check_daily_loss()

    def cash_unsettled(self, since: int | None) -> bool:
        """Whether an account read may not agree with the engine's fills about cash (as
        unsettled() for a symbol's position): a fill was applied while the read was under
        way, or an order of ours is working (the venue may have filled it, and moved its
        cash, before the fill's trade update reaches the engine: the update would then
        move it again). The engine's cash is then kept; the next read with nothing in
        flight takes the venue's (docs/risk.md "Positions read from the venue")."""
        e = self.e
        if since is None or not e.trading_ready:
            return False
        return e.portfolio.fills_applied != since or bool(e.portfolio.working)

    def journal_account_snapshot(self, acct: VenueAccount) -> None:
        self.e.recorder.journal(
            ev.AccountSnapshot(
                account_number=acct.account_number,
                status=acct.status,
                cash=acct.cash,
                equity=acct.equity,
                last_equity=acct.last_equity,
                buying_power=acct.buying_power,
                long_market_value=acct.long_market_value,
                short_market_value=acct.short_market_value,
                trading_blocked=acct.trading_blocked,
                shorting_enabled=acct.shorting_enabled,
            )
        )
        if acct.account_number:
            self.journal_account = acct.account_number

    async def refresh_positions(self) -> None:
        e = self.e
        since = e.portfolio.fills_applied
        try:
            positions = await e.broker.positions()
        except BrokerUnavailable as exc:
            e.note("error", None, f"positions refresh failed: {exc}")
            return
        e.post(msg.PositionsRead(positions, since))

    def on_positions_read(self, item: msg.PositionsRead) -> None:
        if self.foreign:
            return  # another account's positions are not this session's
        self.apply_positions(item.positions, self.moved_since(item.since))

    def moved_since(self, since: int | None) -> set[str] | None:
        """The symbols with a fill applied since the portfolio's fills_applied was
        `since` (None: None, a read to be taken whole)."""
        return None if since is None else self.e.portfolio.moved_since(since)

    def unsettled(self, moved: set[str] | None) -> set[str]:
        """The symbols a positions read may not agree with the engine's fills about:
        one with a fill applied while the read was under way (`moved`: the list may
        predate it), or with an order of ours working (the venue may have filled it,
        and counted it in the list, before its trade update reaches the engine: the
        update would then count it again). Empty at start-up and while trading is not
        ready (moved None, or not trading_ready): then the venue's list is taken whole."""
        e = self.e
        if moved is None or not e.trading_ready:
            return set()
        working = {s for s, b in e.portfolio.books.items() if b.buy_count or b.sell_count}
        return moved | working

    def apply_positions(self, positions: Sequence[VenuePosition], moved: set[str] | None = None) -> None:
        """The broker snapshot is authoritative for positions, except in the symbols
        it may not agree with the engine's fills about yet (unsettled(moved)): those
        keep the engine's count until a read finds them settled (docs/risk.md,
        "Positions read from the venue")."""
        e = self.e
        keep = self.unsettled(moved)
        mine = {s: p.qty for s, p in e.portfolio.positions.items() if s not in keep}
        theirs = {p.symbol: p.qty for p in positions if p.qty != 0 and p.symbol not in keep}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))
            if diff and e.trading_ready:
                e.note("info", None, f"positions re-synced from the venue ({len(diff)} difference(s))")
        snapshot = [
            Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price, last_price=p.current_price)
            for p in positions
            if p.qty != 0
        ]
        e.portfolio.replace_positions_from_broker(snapshot, keep)
        if e.session_id:
            e.recorder.journal(ev.PositionsSnapshot(positions=snapshot))

    async def seed_market(self) -> None:
        e = self.e
        try:
            quotes = await e.broker.latest_quotes(e.symbols)
        except BrokerUnavailable as exc:
            e.note("error", None, f"quotes unavailable: {exc}")
            quotes = {}
        for quote in quotes.values():
            e.portfolio.on_quote(quote.symbol, quote.bid, quote.ask, quote.ts)
        # Minute-bar history for signal models: the last hour, or (at the open, on a
        # quiet day) reach back to earlier sessions until most symbols have enough.
        now = e.clock.now()
        history: dict[str, list[VenueBar]] = {}
        for lookback in (timedelta(hours=1), timedelta(days=1), timedelta(days=4)):
            try:
                history = await e.broker.bars(e.symbols, now - lookback, now)
            except BrokerUnavailable as exc:
                e.note("error", None, f"bars unavailable: {exc}")
                break
            enough = sum(1 for s in e.symbols if len(history.get(s, ())) >= 30)
            if enough * 2 >= len(e.symbols):
                break
        for symbol, bars in history.items():
            e.bars[symbol] = deque(bars[-240:], maxlen=240)
        try:
            self.apply_positions(await e.broker.positions())
        except BrokerUnavailable as exc:
            e.note("error", None, f"positions unavailable: {exc}")

    # ------------------------------------------------------------ connectivity

    def on_connectivity(self, c: ConnectivityChanged) -> None:
        e = self.e
        if c.channel in ("rest", "trade_stream", "market_data"):
            if getattr(e.connectivity, c.channel) == c.status and not c.reconnected:
                return
            e.connectivity = replace(e.connectivity, **{c.channel: c.status}, detail=c.detail or e.connectivity.detail)
        e.note(
            "reconnect" if c.status == "up" else "error",
            None,
            f"{c.channel.replace('_', ' ')} {c.status.upper()}"
            + (" (reconnected)" if c.reconnected else "")
            + (f": {c.detail}" if c.detail else ""),
        )
        if c.reconnected and c.channel == "trade_stream":
            e.spawn(self.reconcile("reconnect"), "reconcile-reconnect")
        if c.channel == "trade_stream" and c.status != "up":
            self.take_fills_from_rest()
        if c.channel == "rest":
            e.halt.venue_status(c.status != "down", time.monotonic())

    # ------------------------------------------- fills while the trade stream is down

    def take_fills_from_rest(self) -> None:
        """While the trade stream is down nothing tells the engine of fills: read the
        orders from REST every market_data.fills_poll_interval (the reconciliation's
        read, which applies missed fills and status changes) until it is back."""
        e = self.e
        if self.fills_from_rest is not None and not self.fills_from_rest.done():
            return
        e.note(
            "info",
            None,
            f"trade stream down: fills are read from the venue's orders every "
            f"{e.settings.market_data.fills_poll_interval:g} s until it is back",
        )
        self.fills_from_rest = e.spawn(self._fills_from_rest(), "fills-from-rest")

    async def _fills_from_rest(self) -> None:
        e = self.e
        while not e.stopping:
            await asyncio.sleep(e.settings.market_data.fills_poll_interval)
            if e.connectivity.trade_stream == "up":
                return  # the reconnect's reconciliation takes it from here
            if e.trading_ready:
                await self.reconcile("trade stream down")

    def on_rate_limit(self, item: RateLimitChanged) -> None:
        e = self.e
        if item.limited != e.connectivity.rate_limited:
            e.connectivity = replace(e.connectivity, rate_limited=item.limited)
            e.note(
                "error" if item.limited else "info",
                None,
                "venue rate limit reached: requests held back" if item.limited else "rate limit cleared",
            )

    # --------------------------------------------------------- reconciliation

    async def reconcile(self, trigger: str) -> None:
        """Fetch open and recent orders and positions, then apply the differences
        inside the engine task. At start-up, a failure fails closed. Never call it
        from the engine task itself: it waits for the engine task to apply."""
        e = self.e
        assert self.reconcile_lock is not None
        if self.reconcile_lock.locked():
            return
        async with self.reconcile_lock:
            e.connectivity = replace(e.connectivity, reconciling=True)
            e.publisher.dirty = True
            mark = e.portfolio.fills_applied
            try:
                open_orders = await e.broker.list_orders(status="open")
                since = self._oldest_open_time()
                recent = await e.broker.list_orders(status="closed", after=since)
                positions = await e.broker.positions()
            except BrokerUnavailable as exc:
                e.connectivity = replace(e.connectivity, reconciling=False)
                e.note("error", None, f"reconciliation ({trigger}) failed: {exc}")
                if not e.trading_ready:
                    e.not_ready_reason = f"venue unreachable for reconciliation: {exc}"
                    e.spawn(self._retry(), "reconcile-retry")
                return
            lookups: dict[str, VenueOrder | None] = {}
            unaccounted: list[str] = []
            listed = {o.client_order_id for o in open_orders} | {o.client_order_id for o in recent}
            for o in e.open_orders():
                if o.status in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL) or o.client_order_id in listed:
                    continue
                try:
                    lookups[o.client_order_id] = await e.broker.lookup(o.client_order_id)
                except BrokerUnavailable as exc:
                    unaccounted.append(f"{o.client_order_id}: lookup failed ({exc})")
            account = None
            probed: list[str] = []
            if trigger in IDENTITY_TRIGGERS:
                try:
                    account = await e.broker.account()
                except BrokerUnavailable as exc:
                    unaccounted.append(f"account: read failed ({exc})")
            were_listed = self._session_listed
            candidates = self._session_probe(listed)
            if trigger in IDENTITY_TRIGGERS or were_listed or any(self._of_session(cid) for cid in lookups):
                # at start-up, after reconnects, and whenever the session's orders are
                # suddenly all gone from the listing (a venue reset under a live stream)
                probed = candidates
                for cid in probed:
                    if cid in lookups:
                        continue
                    try:
                        lookups[cid] = await e.broker.lookup(cid)
                    except BrokerUnavailable as exc:
                        unaccounted.append(f"{cid}: lookup failed ({exc})")
            done = asyncio.get_running_loop().create_future()
            e.post(
                msg.ReconcileRead(
                    trigger,
                    open_orders + recent,
                    positions,
                    lookups,
                    unaccounted,
                    done,
                    account,
                    tuple(probed),
                    mark,
                )
            )
            await done

    def _session_probe(self, listed: set[str]) -> list[str]:
        """When none of this session's orders that reached the venue is in its listing,
        the newest few of them, to be looked up one by one: if the venue knows none of
        them, it is not the venue this session traded with (a reset, a restart)."""
        e = self.e
        mine: list[Order] = []
        for o in reversed(e.book.orders.values()):  # newest first: a listed one ends the search soon
            if o.external or not o.venue_order_id or not self._of_session(o.client_order_id):
                continue
            if o.client_order_id in listed:
                self._session_listed = True
                return []
            mine.append(o)
        self._session_listed = False
        mine.sort(key=lambda o: o.acked_at or o.submitted_at or o.created_at or NEVER, reverse=True)
        return [o.client_order_id for o in mine[:SESSION_PROBE]]

    def _of_session(self, client_order_id: str) -> bool:
        parsed = parse_client_order_id(client_order_id)
        return (
            parsed is not None and bool(self.e.session_id) and parsed.session_short == session_short(self.e.session_id)
        )

    async def _retry(self) -> None:
        await asyncio.sleep(2.0)
        await self.reconcile("retry")

    def _oldest_open_time(self) -> datetime:
        oldest = datetime.now(UTC) - timedelta(days=1)
        for o in self.e.open_orders():
            if o.created_at and o.created_at < oldest:
                oldest = o.created_at
        return oldest - timedelta(minutes=5)

    def on_reconcile_read(self, item: msg.ReconcileRead) -> None:
        try:
            if self.foreign:
                return  # another account: nothing of it is reconciled into this journal
            if item.account is not None:
                if not self.account_is_the_journals(item.account.account_number):
                    return
                self.journal_account_snapshot(item.account)
            self._apply(
                item.trigger,
                item.venue_orders,
                item.positions,
                item.lookups,
                item.unaccounted,
                item.probed,
                self.moved_since(item.since),
            )
        finally:
            if not item.done.done():
                item.done.set_result(None)

    def account_is_the_journals(self, number: str) -> bool:
        """A venue that answers for another account than the one this journal traded
        is not this session's venue: nothing of it is reconciled (its orders and
        positions are somebody else's) and the session fails closed. The account is
        journaled at every start-up and reconnect (and every risk check)."""
        if number and self.journal_account and number != self.journal_account:
            self.foreign = True
            self.fail_closed(
                "account",
                f"the venue answers for account {number}, the journal traded account {self.journal_account}: "
                "trading held (one journal per account: use another journal for another account)",
                journal_account=self.journal_account,
                venue_account=number,
            )
            return False
        return True

    def fail_closed(self, what: str, detail: str, journal_account: str = "", venue_account: str = "") -> None:
        """This venue is not the journal's: HALTED, not trading-ready, said once, journaled.
        Nothing is cancelled (the orders there may be somebody else's); it stays so for
        the life of the process."""
        e = self.e
        e.connectivity = replace(e.connectivity, reconciling=False)
        e.trading_ready = False
        e.not_ready_reason = detail
        if self.mismatch == detail:
            return
        self.mismatch = detail
        e.recorder.journal(
            ev.VenueMismatch(what=what, detail=detail, journal_account=journal_account, venue_account=venue_account),
            durable=True,
        )
        e.note("error", None, f"VENUE MISMATCH: {detail}")
        if e.state is not TradingState.HALTED:
            e.halt.set_state(TradingState.HALTED, f"venue mismatch: {detail}")

    def _apply(
        self,
        trigger: str,
        venue_orders: list[VenueOrder],
        positions: Sequence[VenuePosition],
        lookups: dict[str, VenueOrder | None],
        unaccounted: list[str],
        probed: Sequence[str] = (),
        moved: set[str] | None = None,
    ) -> None:
        """moved: the symbols with fills applied while the reads were under way, taken
        before this applies the catch-up fills (those come from the orders listed, read
        before the positions: the positions count them)."""
        e = self.e
        plan = plan_reconciliation(e.book.orders, e.open_orders(), venue_orders, e.external, self.own_sessions())
        now = e.clock.now()
        for rec in plan.recovered:
            self._adopt(rec.order, rec.batch_seq, plan.venue[rec.order.client_order_id], trigger)
        for fill in plan.fills:
            order = e.book.get(fill.client_order_id)
            venue = plan.venue.get(fill.client_order_id)
            # derived now from the venue's cumulative quantity, not from the plan's
            # snapshot of the book: nothing can push an order past what the venue says
            catch = catch_up_fill(order, venue) if order is not None and venue is not None else None
            if order is not None and catch is not None:
                e.lifecycle.apply_fill(order, catch.execution_id, catch.qty, catch.price, now, source="reconcile")
        for cid, venue in plan.status_changes:
            e.lifecycle.apply_venue_status(cid, venue, source="reconcile")
        for venue in plan.external:
            e.lifecycle.see_external(venue, "reconciliation")
        open_ids = {v.id for v in venue_orders if not v.status.is_final}
        for vid in [vid for vid in e.external if vid not in open_ids]:
            e.external.pop(vid, None)
            e.publisher.dirty_orders.add(EXTERNAL)
        vanished = 0
        for cid, found in lookups.items():
            order = e.book.get(cid)
            if found is None and order is not None and order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
                # "not there yet" is not "never": a request on the wire (a slow venue, or
                # one sent just before a crash) may still land — ask again, with patience
                e.spawn(e.submits.resolve_unknown(cid), "resolve-reconcile")
                continue
            if found is None and order is not None and not order.status.is_final and not order.status.is_local:
                vanished += self._vanish(order, trigger)
                continue
            e.submits.on_resolved(msg.Resolved(cid, found))
        if probed and all(lookups.get(cid) is None and cid in lookups for cid in probed):
            self.fail_closed(
                "orders",
                f"the venue has none of this session's orders (looked up {len(probed)}, e.g. {probed[0]}: not found): "
                "it was reset or restarted, or is another venue — trading held; "
                "their open orders are settled as vanished",
            )
        self.apply_positions(positions, moved)
        e.recorder.journal(
            ev.ReconcileCompleted(
                ok=not unaccounted and not self.mismatch,
                unaccounted=unaccounted + ([self.mismatch] if self.mismatch else []),
                trigger=trigger,
                counts={
                    "venue_orders": len(plan.venue) + len(plan.external),
                    "fills": len(plan.fills),
                    "status_changes": len(plan.status_changes),
                    "external": len(e.external),
                    "looked_up": len(lookups),
                    "recovered": len(plan.recovered),
                    "vanished": vanished,
                },
            )
        )
        e.connectivity = replace(e.connectivity, reconciling=False)
        if e.recorder.failed:
            # its outcome could not be journaled: never "trading ready" without an audit trail
            said = e.not_ready_reason == JOURNAL_NOT_READY
            e.trading_ready, e.not_ready_reason = False, JOURNAL_NOT_READY
            if not said:
                e.note("error", None, f"reconciliation ({trigger}): {JOURNAL_NOT_READY} — trading stays HALTED")
        elif self.mismatch:
            e.trading_ready = False
            e.not_ready_reason = self.mismatch
        elif unaccounted:
            e.trading_ready = False
            e.not_ready_reason = f"{len(unaccounted)} order(s) unaccounted for: " + "; ".join(unaccounted[:3])
            e.note("error", None, f"reconciliation ({trigger}): {e.not_ready_reason} — trading held (fail closed)")
            e.spawn(self._retry(), "reconcile-retry")
        else:
            if not e.trading_ready:
                e.note(
                    "info",
                    None,
                    f"reconciliation ({trigger}): {len(plan.venue) + len(plan.external)} venue order(s), "
                    f"{len(e.external)} external, {len(plan.fills)} missed fill(s) applied"
                    + (f", {len(plan.recovered)} recovered" if plan.recovered else "")
                    + (f", {vanished} vanished" if vanished else "")
                    + " — trading ready",
                )
            elif plan.fills or plan.status_changes or plan.recovered or vanished:
                e.note(
                    "info",
                    None,
                    f"reconciliation ({trigger}): {len(plan.fills)} missed fill(s), "
                    f"{len(plan.status_changes)} status change(s), {len(plan.recovered)} recovered, "
                    f"{vanished} vanished",
                )
            e.trading_ready = True
            e.not_ready_reason = ""
        e.halt.check_kill_progress()

    def _adopt(self, order: Order, batch_seq: int, venue: VenueOrder, trigger: str) -> None:
        """An order of ours the journal lost: journaled as recovered (it counts as the
        engine's own from now on), then brought to the venue's fill and status."""
        e = self.e
        if not e.recorder.record(
            ev.OrderRecovered(
                order=order, batch_seq=batch_seq, detail=f"at the venue, unknown to the journal ({trigger})"
            )
        ):
            return
        if e.external.pop(venue.id, None) is not None:
            e.publisher.dirty_orders.add(EXTERNAL)
        e.note(
            "order",
            order.symbol,
            f"RECOVERED {order.side.value} {q(order.qty)} {order.symbol} ({venue.status.value}, "
            f"{order.client_order_id}): ours, unknown to the journal — adopted, counted against the limits",
        )
        adopted = e.book.get(order.client_order_id)
        if adopted is None:
            return
        catch = catch_up_fill(adopted, venue)
        if catch is not None:
            e.lifecycle.apply_fill(
                adopted, catch.execution_id, catch.qty, catch.price, e.clock.now(), source="recovered"
            )
        e.lifecycle.apply_venue_status(adopted.client_order_id, venue, source="reconcile")

    def _vanish(self, order: Order, trigger: str) -> int:
        """A working order the venue says it does not have (not in its complete open and
        closed listing, 404 by client_order_id): VANISHED, out of every count."""
        e = self.e
        detail = f"not in the venue's open or closed orders and not found by client_order_id ({trigger})"
        if not e.recorder.record(ev.OrderVanished(client_order_id=order.client_order_id, detail=detail)):
            return 0
        e.lifecycle.after_status(order)
        e.note(
            "order",
            order.symbol,
            f"VANISHED {order.side.value} {q(order.qty)} {order.symbol} ({order.client_order_id}, "
            f"filled {q(order.filled_qty)}): the venue no longer has it — out of every count",
        )
        return 1
