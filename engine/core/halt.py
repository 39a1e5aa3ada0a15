"""Stopping risk: automatic trips (daily loss, venue outage, error rate), the
journaled trading state (ACTIVE / REDUCING / HALTED), the kill switch (one
cancel-all, tracked until the venue confirmed every cancel), resume, the
operator-confirmed flatten (followed up until the venue reports flat), and the
stop-loss exits (on every quote and on a timer, on trusted prices only).

Risk-reducing actions are never stranded by machinery meant to stop new exposure
(house rule 14, docs/risk.md "Exits")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.backoff import Backoff
from engine.broker.base import BrokerUnavailable, CancelAllOutcome, RequestFailed, VenueQuote
from engine.commands import CommandResult, Flatten, Halt, Resume
from engine.core import messages as msg
from engine.core.common import CANCEL_ALL_RETRY, KILL_POLL, MINUTE, SEQ_FLATTEN, SEQ_STOP, q, replace
from engine.model import Order, OrderStatus, Side, TradingState
from engine.orders import make_client_order_id
from engine.risk import Trip, TripCause, flatten_plan, stop_loss_plan, stop_triggered
from engine.sizing import ProposedOrder
from engine.snapshot import KillSwitchStatus

if TYPE_CHECKING:
    from engine.broker.base import VenuePosition
    from engine.core.engine import Engine

#: A flatten is followed up for at most this many rounds (send, wait, re-read the
#: venue's positions, send again for what is left).
FLATTEN_ROUNDS = 5
#: How long one round waits (wall seconds) for its closing orders to be final.
FLATTEN_ROUND_WAIT = 10.0
FLATTEN_POLL = Backoff(initial=0.2, factor=1.5, cap=1.0)  # watching a round's closing orders
#: A stop exit that was denied is proposed again at most this often (wall seconds).
STOP_RETRY_AFTER = 5.0


def trip_state_cause(trip: Trip) -> str:
    """The state cause an automatic trip journals and publishes: 'automatic:
    <cause>: <detail>' (front ends word it from the cause; never the kill switch's)."""
    return f"automatic: {trip.cause.value}: {trip.detail}"


class Halting:
    def __init__(self, engine: Engine):
        self.e = engine
        self.kill_ids: set[str] = set()  # venue ids the kill switch's cancel-all took
        self.kill_open: set[str] = set()  # of kill_ids, those not confirmed canceled yet
        self.poor_quotes: dict[str, str] = {}  # symbol -> why its quote is not used (said once)
        self.stop_denied_at: dict[str, float] = {}  # symbol -> monotonic time of a denied stop exit
        self.flatten_campaign = 0  # numbers the operator's flattens; a new one supersedes
        self.exit_behind_since: dict[str, float] = {}  # stop exit cid -> monotonic time the market left it
        self.halts = 0  # kill switches pulled: a submit released before the last one is not sent
        # a Halt from another thread has sent its cancel-all ahead (send_ahead) and is on
        # its way to kill_switch: meanwhile no submit leaves either (Submits.submit_task)
        self.arriving = False
        self.stop_held_said: dict[str, Decimal] = {}  # symbol -> shares external orders hold, said for its stop

    # ------------------------------------------------------------------ trips

    def trip(self, trip: Trip) -> None:
        e = self.e
        e.trip_cause = trip.cause
        if trip.state is TradingState.HALTED:
            self.kill_switch(trip_state_cause(trip))
        else:
            self.set_state(trip.state, trip_state_cause(trip))
            # working orders that add exposure are cancelled; reducing ones may stay
            for o in e.open_orders():
                if not o.reduce_only and o.venue_order_id and not o.status.is_local:
                    e.spawn(e.submits.cancel_one(o.client_order_id, "REDUCING"), "cancel-reducing")

    def _maybe_trip(self, trip) -> None:
        if trip is not None:
            self.trip(trip)

    def on_request_failed(self, item: RequestFailed) -> None:
        """The error-rate trip counts trading requests only: a market-data request
        (quotes, bars) that fails has its own event and fallback (core/quotes.py), and
        the polls' many successes must not dilute the trading errors."""
        if item.market_data:
            return
        self._maybe_trip(self.e.rules.record_request(item.ok, self.e.state, item.count))

    def venue_status(self, up: bool, now: float) -> None:
        self._maybe_trip(self.e.rules.venue_status(up, now, self.e.state))

    def check_venue_status(self) -> None:
        self.venue_status(self.e.connectivity.rest != "down", time.monotonic())

    def check_daily_loss(self) -> None:
        e = self.e
        self._maybe_trip(e.rules.evaluate_daily_loss(e.portfolio.equity, e.portfolio.last_equity, e.state))

    def set_state(self, state: TradingState, cause: str) -> None:
        e = self.e
        prev = e.state
        if prev is state and e.state_cause == cause:
            return
        e.state, e.state_cause = state, cause
        e.recorder.journal(ev.TradingStateChanged(state=state, cause=cause, previous=prev), durable=True)
        e.note("state", None, f"{prev.value} -> {state.value}: {cause}")
        e.publish()

    # -------------------------------------------------------------- commands

    def on_halt(self, cmd: Halt, sent: Coroutine[Any, Any, CancelAllOutcome] | None = None) -> CommandResult:
        return self.kill_switch(f"kill switch: {cmd.cause}", sent)

    def send_ahead(self, loop: asyncio.AbstractEventLoop) -> Coroutine[Any, Any, CancelAllOutcome] | None:
        """In the thread a Halt comes from, before the loop runs it (Session's
        _halt_from_thread): first no submit may leave any more (`arriving`, read by every
        submit right before it would leave), then the cancel-all is handed to the
        broker's cancel worker (AlpacaBroker.cancel_all_from_thread), so it does not
        wait for the loop to get to the Halt. Its outcome, for kill_switch to await;
        None when it could not be sent ahead (then kill_switch sends it)."""
        self.arriving = True  # until kill_switch raises the count
        start = getattr(self.e.broker, "cancel_all_from_thread", None)
        return start(loop) if start is not None else None

    def on_resume(self, cmd: Resume) -> CommandResult:
        e = self.e
        if e.state is TradingState.ACTIVE:
            return CommandResult(False, "already ACTIVE")
        if e.recorder.failed:
            return CommandResult(False, "the journal cannot be written: cannot resume")
        e.rules.reset()
        e.trip_cause = None
        self.set_state(TradingState.ACTIVE, f"resumed by {cmd.cause}")
        return CommandResult(True, "ACTIVE")

    # ------------------------------------------------------------ kill switch

    def kill_switch(self, cause: str, sent: Coroutine[Any, Any, CancelAllOutcome] | None = None) -> CommandResult:
        """HALTED at once; one cancel-all to the venue, tracked until the venue has
        confirmed every cancel; pending intents dropped. Answers once HALTED is on
        disk (docs/risk.md "The kill switch: the order of its steps")."""
        e = self.e
        self.halts += 1  # read by submits not yet on the wire (Submits.submit_task)
        self.arriving = False  # the count says it from here
        prev = e.state
        changed = prev is not TradingState.HALTED
        if changed:
            if not cause.startswith("automatic"):
                e.trip_cause = TripCause.OPERATOR
            # in memory first: nothing is released or sent from here (the submits'
            # withhold reads `halts`; every new intent sees HALTED)
            e.state, e.state_cause = TradingState.HALTED, cause
        e.kill = KillSwitchStatus(phase="requested", requested_at=e.clock.now(), detail=cause)
        # The cancel-all before the durable write: `sent` when the command's thread
        # already handed it to the broker (send_ahead); else calling broker.cancel_all
        # hands it to the broker's cancel worker now (AlpacaBroker, when its permit is
        # free at once), so it is on its way while HALTED is fsynced below. It only
        # reduces risk; the answer (and the first snapshot saying HALTED) waits for the
        # write.
        e.spawn(self._cancel_all(sending=sent or e.broker.cancel_all()), "kill-cancel-all")
        if changed:
            e.recorder.journal(
                ev.TradingStateChanged(state=TradingState.HALTED, cause=cause, previous=prev), durable=True
            )
            e.note("state", None, f"{prev.value} -> {TradingState.HALTED.value}: {cause}")
            e.publish()
        # the rest (a second durable write, a snapshot of every order) a turn later
        asyncio.get_running_loop().call_soon(self._after_kill_sent, cause)
        return CommandResult(True, "HALTED: cancel-all sent to the venue")

    def _after_kill_sent(self, cause: str) -> None:
        e = self.e
        e.intents.reject_all_pending(by="kill switch", detail="trading halted")
        e.recorder.journal(ev.KillSwitch(phase="requested", detail=cause), durable=True)
        e.note("kill", None, "KILL SWITCH: HALTED, cancel-all sent to the venue")
        e.publish()

    async def _cancel_all(self, attempt: int = 0, sending: Awaitable[CancelAllOutcome] | None = None) -> None:
        out = await (sending if sending is not None else self.e.broker.cancel_all())
        self.e.post(msg.CancelAllAnswered(out, attempt))

    async def _retry_cancel_all(self, attempt: int) -> None:
        await asyncio.sleep(CANCEL_ALL_RETRY.delay(attempt - 1))
        await self._cancel_all(attempt)

    def on_cancel_all_answered(self, item: msg.CancelAllAnswered) -> None:
        e, out = self.e, item.outcome
        if not out.ok:
            e.kill = replace(e.kill, phase="failed", detail=f"cancel-all failed: {out.message}")
            e.note("error", None, f"kill switch: cancel-all failed ({out.message}): retrying")
            e.spawn(self._retry_cancel_all(item.attempt + 1), "kill-retry")
            return
        ids = {vid for vid, status in out.results if 200 <= status < 300}
        self.kill_ids |= ids
        self.kill_open |= ids
        refused = len(out.results) - len(ids)
        e.kill = replace(e.kill, phase="sent", cancels_requested=len(self.kill_ids))
        e.recorder.journal(ev.KillSwitch(phase="sent", counts={"requested": len(ids), "refused": refused}))
        e.note(
            "kill",
            None,
            f"kill switch: the venue took {len(ids)} cancel(s)" + (f", refused {refused}" if refused else ""),
        )
        self.check_kill_progress()
        if e.kill.phase == "sent":
            e.spawn(self._kill_poll(), "kill-poll")

    async def _kill_poll(self) -> None:
        """The stream may be down: ask the venue until every cancel is confirmed."""
        e = self.e
        delays = KILL_POLL.delays()
        while e.kill.phase == "sent":
            await asyncio.sleep(next(delays))
            try:
                open_orders = await e.broker.list_orders(status="open")
            except BrokerUnavailable:
                continue
            e.post(msg.KillOpenSeen({o.id for o in open_orders}))

    def on_kill_open_seen(self, item: msg.KillOpenSeen) -> None:
        e, open_ids = self.e, item.open_ids
        if e.kill.phase != "sent":
            return
        self.kill_open &= open_ids
        confirmed = sum(1 for vid in self.kill_ids if vid not in open_ids)
        if confirmed >= len(self.kill_ids):
            # every one is closed at the venue; how each ended (canceled, or filled
            # first) is known once the book has it: the reconciliation below brings it
            self.check_kill_progress()
        elif confirmed > e.kill.cancels_confirmed:
            e.kill = replace(e.kill, cancels_confirmed=confirmed)
        if confirmed >= len(self.kill_ids) or confirmed:
            e.spawn(e.sync.reconcile("kill switch"), "reconcile-kill")

    def check_kill_progress(self, order: Order | None = None) -> None:
        """Count the kill switch's confirmed cancels. Given `order` (it just became
        final), only that order is looked at: a stream of n cancels costs O(n), not
        O(n^2). Without, every cancel still awaited is checked (timers, reconciliation)."""
        e = self.e
        if e.kill.phase != "sent":
            return
        pending = self.kill_open
        if order is not None:
            if order.venue_order_id not in pending:
                return
            pending.discard(order.venue_order_id)
        else:
            for vid in list(pending):
                o = e.book.by_venue_id(vid)
                if (o is None and vid not in e.external) or (o is not None and o.status.is_final):
                    pending.discard(vid)
        confirmed = len(self.kill_ids) - len(pending)
        if confirmed > e.kill.cancels_confirmed:
            e.kill = replace(e.kill, cancels_confirmed=confirmed)
        if confirmed >= len(self.kill_ids):
            self.finish_kill()

    def finish_kill(self) -> None:
        """Every order the cancel-all took is closed: say how many the venue canceled,
        and how the others ended (filled before their cancel, ...), as the book has them."""
        e = self.e
        ended: dict[str, int] = {}
        for vid in self.kill_ids:
            o = e.book.by_venue_id(vid)
            how = "canceled" if o is None or o.status is OrderStatus.CANCELED else o.status.value
            ended[how] = ended.get(how, 0) + 1
        canceled = ended.pop("canceled", 0)
        others = "".join(f", {k} {how.replace('_', ' ')} before its cancel" for how, k in sorted(ended.items()))
        self.kill_open.clear()
        text = f"venue confirmed {canceled} cancels{others}"
        e.kill = replace(e.kill, phase="confirmed", cancels_confirmed=canceled, detail=text)
        e.recorder.journal(ev.KillSwitch(phase="confirmed", counts={"confirmed": canceled, **ended}))
        e.note("kill", None, f"kill switch: {text}")
        e.publish()

    # ------------------------------------------------------------ stop losses

    def on_quote(self, quote: VenueQuote) -> None:
        """A quote re-marks the portfolio (a poor one is kept but not used as a price,
        and said once until it recovers); past a position's stop, a reduce-only exit."""
        e = self.e
        b = e.portfolio.on_quote(quote.symbol, quote.bid, quote.ask, quote.ts)
        self._say_quote(quote.symbol, b)
        if b.qty:
            self.evaluate_stop(quote.symbol)

    def _say_quote(self, symbol: str, b) -> None:
        e = self.e
        if b.quote_issue:
            if self.poor_quotes.get(symbol) is None:
                self.poor_quotes[symbol] = b.quote_issue
                choice = b.price()
                instead = (
                    f"prices from the {choice.source} {q(choice.price)} until it recovers"
                    if choice is not None
                    else "no other price yet: orders that need one are denied"
                )
                e.note("info", symbol, f"QUOTE not used for {symbol}: {b.quote_issue}; {instead}")
        elif self.poor_quotes.pop(symbol, None) is not None:
            e.note("info", symbol, f"QUOTE usable again for {symbol}: bid {q(b.bid)}, ask {q(b.ask)}")

    def on_stop_timer(self) -> None:
        """Every stop, whether quotes arrive or not (a silent stream must not keep a
        stop from firing): the newest bar close is taken as a price, held symbols
        without a fresh quote are asked of the market-data module (they join its REST
        polls; the answer arrives as quotes, which evaluate the stop again), and every
        position's stop is evaluated on what is trusted now."""
        e = self.e
        if not e.trading_ready or e.stopping:
            return
        pf = e.portfolio
        now = e.clock.now()
        max_age = timedelta(seconds=e.limits.max_quote_age)
        held = [s for s, b in pf.books.items() if b.qty]
        stale = []
        for sym in held:
            bars = e.bars.get(sym)
            if bars:
                last = bars[-1]
                pf.on_price(sym, last.close, last.ts + MINUTE, "bar close")
            b = pf.books[sym]
            if b.quote_ts is None or now - b.quote_ts > max_age:
                stale.append(sym)
        # the market-data module is the one REST reader of quotes: they join its polls
        e.market_data.need_fresh(stale)
        self._chase_stop_exits(now, max_age)
        for sym in held:
            self.evaluate_stop(sym)

    def _chase_stop_exits(self, now: datetime, max_age: timedelta) -> None:
        """A stop exit the market left behind (its limit no longer marketable against a
        usable fresh quote, or a limit while there is no such quote) is cancelled
        after STOP_RETRY_AFTER seconds in regular hours; the next evaluation sends
        the rest again at the current price (a market order without a fresh quote)."""
        e = self.e
        if not e.clock.market_open():
            return
        behind_now: set[str] = set()
        for o in e.open_orders():
            if o.reason != "stop_loss" or o.limit_price is None or not o.venue_order_id or o.status.is_local:
                continue
            b = e.portfolio.books.get(o.symbol)
            if b is None:
                continue
            if b.fresh_quote(now, max_age) and b.bid is not None and b.ask is not None:
                behind = o.limit_price > b.bid if o.side is Side.SELL else o.limit_price < b.ask
            else:
                behind = True
            if not behind:
                continue
            behind_now.add(o.client_order_id)
            since = self.exit_behind_since.setdefault(o.client_order_id, time.monotonic())
            if time.monotonic() - since >= STOP_RETRY_AFTER:
                e.spawn(
                    e.submits.cancel_one(o.client_order_id, "stop exit left behind by the market: sent again"),
                    "cancel-stop-behind",
                )
        self.exit_behind_since = {c: t for c, t in self.exit_behind_since.items() if c in behind_now}

    def evaluate_stop(self, symbol: str) -> None:
        e = self.e
        if not e.trading_ready:
            return
        market_open = e.clock.market_open()
        if not market_open:
            return  # stops act in the regular session (docs/risk.md); the timer fires them at the open
        pf, now = e.portfolio, e.clock.now()
        # external open orders on the exit side hold shares the venue will not let an
        # exit sell (they are left alone, rule 6): the exit is for the rest. Looked up
        # only for a crossed stop, so a quote costs nothing more.
        held_outside = e.held_outside() if e.external and stop_triggered(pf, symbol, now) else None
        plan = stop_loss_plan(
            pf,
            symbol,
            assets=e.asset_flags,
            limits=e.limits,
            now=now,
            market_open=market_open,
            held_outside=held_outside,
        )
        if plan is None:
            return
        if not plan.held:
            self.stop_held_said.pop(symbol, None)  # said again if shares are held again
        exit_ = plan.order
        if exit_ is None:
            if plan.held > 0:
                self._say_stop_held(symbol, plan.held, sent=False)
            return
        if any(o.reduce_only and o.reason == "stop_loss" for o in e.book.open_orders(symbol)):
            return
        denied_at = self.stop_denied_at.get(symbol)
        if denied_at is not None and time.monotonic() - denied_at < STOP_RETRY_AFTER:
            return
        how = "market" if exit_.limit_price is None else f"limit {q(exit_.limit_price)}"
        e.note(
            "info",
            symbol,
            f"STOP crossed in {symbol}: reduce-only exit {exit_.side.value} {q(exit_.qty)} ({how})",
        )
        if plan.held > 0:
            self._say_stop_held(symbol, plan.held, sent=True)
        # other working orders in the symbol would block the exit (duplicate / wash
        # trade), and an exit-side one (a signal's reducing limit the market left
        # behind) holds shares the exit cannot sell: all but stop exits are cancelled
        for o in e.book.open_orders(symbol):
            if o.reason != "stop_loss" and o.venue_order_id and not o.status.is_local:
                e.spawn(e.submits.cancel_one(o.client_order_id, "stop loss"), "cancel-for-stop")
        [cid] = self._create([exit_], SEQ_STOP + e.intents.next_aux_seq())
        e.submits.flush()
        order = e.book.get(cid)
        if order is not None and order.status is OrderStatus.DENIED:
            self.stop_denied_at[symbol] = time.monotonic()
        else:
            self.stop_denied_at.pop(symbol, None)

    def _say_stop_held(self, symbol: str, held: Decimal, *, sent: bool) -> None:
        """Once per symbol and quantity: the stop exit leaves shares that external open
        orders hold at the venue (it cannot close them, and does not cancel them)."""
        if self.stop_held_said.get(symbol) == held:
            return
        self.stop_held_said[symbol] = held
        b = self.e.portfolio.books[symbol]
        side = "sell" if b.qty > 0 else "buy"
        what = "the exit closes the rest" if sent else "no exit can be sent for them"
        self.e.note(
            "error",
            symbol,
            f"STOP in {symbol}: {q(held)} of the position held by open {side} order(s) at the venue "
            f"the engine did not create (left alone; the venue refuses to close them while they are open): "
            f"{what}; reduced as far as the venue allows",
        )

    def _create(self, proposals: list[ProposedOrder], base_seq: int) -> list[str]:
        """Create (check, journal, release) exit intents; their client_order_ids."""
        e = self.e
        bar_seq = e.intents.current_bar_seq()
        e.intents.create(proposals, bar_seq=bar_seq, base_seq=base_seq)
        return [make_client_order_id(e.session_id, bar_seq, p.symbol, base_seq + i) for i, p in enumerate(proposals)]

    # ---------------------------------------------------------------- flatten

    def on_flatten(self, cmd: Flatten, future: asyncio.Future) -> None:
        self.flatten_campaign += 1
        self.e.spawn(self._flatten(cmd.cause, future, self.flatten_campaign), "flatten")

    async def _flatten(self, cause: str, future: asyncio.Future, campaign: int) -> None:
        """Operator-confirmed: cancel what is working, then one reduce-only order per
        position for all of it — limit orders with extended hours when the market is
        closed (the only kind Alpaca takes then), marketable limits or market orders
        when open. Runs as a task of its own: the engine keeps applying events while it
        waits for the venue; the closing orders are created inside the engine task.
        Then it follows up (_follow_flatten) until the venue reports flat."""
        e = self.e
        if not e.portfolio.positions:
            await e.sync.reconcile("flatten")  # the venue is authoritative: ask it before saying "none"
        if not e.portfolio.positions:
            _answer(future, CommandResult(True, "no positions to flatten"))
            return
        e.note("kill", None, f"FLATTEN ({cause}): cancelling open orders first")
        out = await e.broker.cancel_all()
        if not out.ok:
            _answer(future, CommandResult(False, f"flatten: cancel-all failed ({out.message}); nothing sent"))
            return
        # wait (briefly) for the venue to confirm the cancels before closing
        for _ in range(40):
            try:
                still = await e.broker.list_orders(status="open")
            except BrokerUnavailable:
                still = []
            if not [o for o in still if o.symbol in e.portfolio.positions]:
                break
            await asyncio.sleep(0.1)
        await e.sync.reconcile("flatten")
        await self._prices_for_exits()
        e.post(msg.FlattenReady(cause, future, round=1, campaign=campaign))

    async def _prices_for_exits(self) -> None:
        """Fresh quotes from REST for the positions without one (e.g. a symbol that is
        not streamed, or no longer in the universe), before closing orders are priced."""
        e = self.e
        now = e.clock.now()
        max_age = timedelta(seconds=e.limits.max_quote_age)
        need = [s for s, b in e.portfolio.books.items() if b.qty and not b.fresh_quote(now, max_age)]
        if need:
            await e.market_data.read_now(need)

    def _flatten_working(self) -> list[Order]:
        return [o for o in self.e.open_orders() if o.reason == "flatten"]

    def on_flatten_ready(self, item: msg.FlattenReady) -> None:
        """One round: apply the venue's positions (from the second round on), stop
        when flat, else send a closing order for everything still open and not
        covered, and say exactly what is left open and why."""
        e, cause, round_ = self.e, item.cause, item.round
        if item.campaign != self.flatten_campaign:
            return  # a newer flatten took over
        if item.positions is not None:
            e.sync.apply_positions(item.positions, e.sync.moved_since(item.since))
        pf = e.portfolio
        if round_ > 1 and not pf.positions:
            e.recorder.journal(
                ev.KillSwitch(phase="flatten", counts={"round": round_, "open": 0}, detail=f"flat ({cause})")
            )
            e.note("kill", None, f"FLATTEN ({cause}): the venue reports flat")
            return
        plan = flatten_plan(
            pf,
            assets=e.asset_flags,
            limits=e.limits,
            now=e.clock.now(),
            market_open=e.clock.market_open(),
            held_outside=e.held_outside(),
        )
        left = dict(plan.left_open)
        e.recorder.journal(
            ev.KillSwitch(
                phase="flatten",
                counts={"positions": len(pf.positions), "orders": len(plan.orders), "round": round_},
                detail=cause,
            ),
            durable=True,
        )
        cids = self._create(plan.orders, SEQ_FLATTEN + 100 * (e.intents.next_aux_seq() % 20))
        sent = len(e.submits.pending)
        e.submits.flush()
        for cid, p in zip(cids, plan.orders, strict=True):
            order = e.book.get(cid)
            if order is not None and order.status is OrderStatus.DENIED:
                reason = order.denial.value if order.denial is not None else "DENIED"
                left[p.symbol] = f"{reason}: {order.denial_detail or ''}".rstrip(": ")
        npos = len(pf.positions)
        text = f"flatten: {sent} closing order(s) sent for {npos} position(s)"
        if left:
            text += "; left open: " + "; ".join(f"{s} ({why})" for s, why in sorted(left.items()))
        if plan.held:
            text += "; sent once their cancels are confirmed: " + "; ".join(
                f"{s} {q(n)} (held by open orders at the venue the engine did not create)"
                for s, n in sorted(plan.held.items())
            )
        if round_ == 1:
            e.note("error" if left else "kill", None, f"FLATTEN ({cause}): {text}")
            _answer(
                item.future,
                CommandResult(not left, text + "; following up until the venue reports flat", sent),
            )
        elif sent or left or plan.held:
            e.note("error" if left else "kill", None, f"FLATTEN ({cause}) round {round_}: {text}")
        working = self._flatten_working()
        if round_ > 1 and not sent and not plan.held:
            # nothing more a new order can do: say what stays open, and why
            self._flatten_done(cause, round_, left, working)
            return
        if round_ >= FLATTEN_ROUNDS:
            self._flatten_done(cause, round_, left, working, plan.held)
            return
        e.spawn(self._follow_flatten(cause, item.campaign, round_ + 1), "flatten-follow")

    def _flatten_done(
        self,
        cause: str,
        round_: int,
        left: dict[str, str],
        working: list[Order],
        held: dict[str, Decimal] | None = None,
    ) -> None:
        e = self.e
        pf = e.portfolio
        if not pf.positions:
            e.note("kill", None, f"FLATTEN ({cause}): the venue reports flat")
            e.recorder.journal(
                ev.KillSwitch(phase="flatten", counts={"round": round_, "open": 0}, detail=f"flat ({cause})")
            )
            return
        resting = {o.symbol for o in working}
        why = {}
        for sym, pos in sorted(pf.positions.items()):
            if sym in left:
                why[sym] = f"{q(pos.qty)} ({left[sym]})"
            elif held and sym in held:
                why[sym] = (
                    f"{q(pos.qty)} ({q(held[sym])} held by open orders at the venue the engine did not create: "
                    f"their cancel is not confirmed)"
                )
            elif sym in resting:
                market = "market closed: an extended-hours limit" if not e.clock.market_open() else "a limit"
                why[sym] = f"{q(pos.qty)} (a closing order is working at the venue: {market} not filled yet)"
            else:
                why[sym] = f"{q(pos.qty)} (the venue still reports it after {round_} round(s))"
        detail = "; ".join(f"{s} {w}" for s, w in why.items())
        only_resting = all(s in resting and s not in left for s in why)
        e.recorder.journal(
            ev.KillSwitch(phase="flatten", counts={"round": round_, "open": len(why)}, detail=f"still open: {detail}"),
            durable=True,
        )
        e.note(
            "kill" if only_resting else "error",
            None,
            f"FLATTEN ({cause}): still open at the venue: {detail}",
        )

    def _held_by_others(self) -> bool:
        """Whether open orders other than the flatten's closing orders still hold shares
        of a position on its exit side: external ones, or the engine's own whose cancel
        (the flatten's cancel-all) is not confirmed yet. Their shares can be closed only
        once they are gone."""
        e = self.e
        books = e.portfolio.books

        def exit_side(symbol: str) -> Side | None:
            b = books.get(symbol)
            if b is None or not b.qty:
                return None
            return Side.SELL if b.qty > 0 else Side.BUY

        for sym, (buy, sell) in e.held_outside().items():
            side = exit_side(sym)
            if side is not None and (sell if side is Side.SELL else buy) > 0:
                return True
        return any(
            o.reason != "flatten" and o.side is exit_side(o.symbol) for o in e.open_orders() if o.remaining_qty > 0
        )

    async def _wait_flatten_orders(self, campaign: int) -> None:
        """Until no closing order of the flatten is working and no other open order
        holds a position's shares, for FLATTEN_ROUND_WAIT at most."""
        deadline = time.monotonic() + FLATTEN_ROUND_WAIT
        for delay in FLATTEN_POLL.delays():
            if campaign != self.flatten_campaign or time.monotonic() >= deadline:
                return
            if not self._flatten_working() and not self._held_by_others():
                return
            await asyncio.sleep(delay)

    async def _follow_flatten(self, cause: str, campaign: int, round_: int) -> None:
        """Wait (bounded) for the round's closing orders to be final; in regular hours
        cancel the ones the market left behind (they go again at a fresh price); then
        read the venue's positions and run the next round inside the engine task."""
        e = self.e
        await self._wait_flatten_orders(campaign)
        if campaign != self.flatten_campaign:
            return
        stuck = self._flatten_working()
        if stuck and e.clock.market_open():
            await asyncio.gather(
                *(e.submits.cancel_one(o.client_order_id, "flatten: not filled, sending again") for o in stuck)
            )
            await self._wait_flatten_orders(campaign)
        positions: Sequence[VenuePosition] | None
        since = e.portfolio.fills_applied
        try:
            positions = await e.broker.positions()
        except BrokerUnavailable as exc:
            e.note("error", None, f"flatten: positions unavailable ({exc}): the engine's own view is used")
            positions = None
        await self._prices_for_exits()
        e.post(msg.FlattenReady(cause, None, round=round_, positions=positions, campaign=campaign, since=since))


def _answer(future: asyncio.Future | None, result: CommandResult) -> None:
    if future is not None and not future.done():
        future.set_result(result)
