"""Stopping risk: automatic trips (daily loss, venue outage, error rate), the
journaled trading state (ACTIVE / REDUCING / HALTED), the kill switch (one
cancel-all, tracked until the venue confirmed every cancel), resume, and the
operator-confirmed flatten."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from engine import events as ev
from engine.broker.base import BrokerUnavailable, RequestFailed
from engine.commands import CommandResult, Flatten, Halt, Resume
from engine.core import messages as msg
from engine.core.common import CANCEL_ALL_RETRY, KILL_POLL, SEQ_FLATTEN, replace
from engine.model import Order, TradingState
from engine.risk import Trip, TripCause, flatten_orders
from engine.snapshot import KillSwitchStatus

if TYPE_CHECKING:
    from engine.core.engine import Engine


def trip_state_cause(trip: Trip) -> str:
    """The state cause an automatic trip journals and publishes: 'automatic:
    <cause>: <detail>' (front ends word it from the cause; never the kill switch's)."""
    return f"automatic: {trip.cause.value}: {trip.detail}"


class Halting:
    def __init__(self, engine: Engine):
        self.e = engine
        self.kill_ids: set[str] = set()  # venue ids the kill switch's cancel-all took
        self.kill_open: set[str] = set()  # of kill_ids, those not confirmed canceled yet

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
        self._maybe_trip(self.e.rules.record_request(item.ok, self.e.state))

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

    def on_halt(self, cmd: Halt) -> CommandResult:
        return self.kill_switch(f"kill switch: {cmd.cause}")

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

    def kill_switch(self, cause: str) -> CommandResult:
        """HALTED at once; pending intents dropped; one cancel-all to the venue,
        tracked until the venue has confirmed every cancel."""
        e = self.e
        if e.state is not TradingState.HALTED:
            if not cause.startswith("automatic"):
                e.trip_cause = TripCause.OPERATOR
            self.set_state(TradingState.HALTED, cause)
        e.intents.reject_all_pending(by="kill switch", detail="trading halted")
        e.kill = KillSwitchStatus(phase="requested", requested_at=e.clock.now(), detail=cause)
        e.recorder.journal(ev.KillSwitch(phase="requested", detail=cause), durable=True)
        e.note("kill", None, "KILL SWITCH: HALTED, cancel-all sent to the venue")
        e.publish()
        e.spawn(self._cancel_all(), "kill-cancel-all")
        return CommandResult(True, "HALTED: cancel-all sent to the venue")

    async def _cancel_all(self, attempt: int = 0) -> None:
        out = await self.e.broker.cancel_all()
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
            self.finish_kill()
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
        e = self.e
        n = len(self.kill_ids)
        self.kill_open.clear()
        e.kill = replace(e.kill, phase="confirmed", cancels_confirmed=n, detail=f"venue confirmed {n} cancels")
        e.recorder.journal(ev.KillSwitch(phase="confirmed", counts={"confirmed": n}))
        e.note("kill", None, f"kill switch: venue confirmed {n} cancels")
        e.publish()

    # ---------------------------------------------------------------- flatten

    def on_flatten(self, cmd: Flatten, future: asyncio.Future) -> None:
        self.e.spawn(self._flatten(cmd.cause, future), "flatten")

    async def _flatten(self, cause: str, future: asyncio.Future) -> None:
        """Operator-confirmed: cancel what is working, then one reduce-only order per
        position — limit orders with extended hours when the market is closed (the
        only kind Alpaca takes then), marketable limits or market orders when open.
        Runs as a task of its own: the engine keeps applying events while it waits
        for the venue; the closing orders are created inside the engine task."""
        e = self.e
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
        e.post(msg.FlattenReady(cause, future))

    def on_flatten_ready(self, item: msg.FlattenReady) -> None:
        e, cause = self.e, item.cause
        proposals = flatten_orders(e.portfolio, assets=e.asset_flags, limits=e.limits)
        e.recorder.journal(
            ev.KillSwitch(phase="flatten", counts={"positions": len(proposals)}, detail=cause), durable=True
        )
        round_ = e.intents.next_aux_seq()
        denials_before = sum(e.stats.denials.values())
        e.intents.create(proposals, bar_seq=e.intents.current_bar_seq(), base_seq=SEQ_FLATTEN + 100 * (round_ % 20))
        sent = len(e.submits.pending)
        e.submits.flush()
        denied = sum(e.stats.denials.values()) - denials_before
        text = f"flatten: {sent} closing order(s) sent for {len(proposals)} position(s)" + (
            f", {denied} denied (see the event log)" if denied else ""
        )
        e.note("kill", None, f"FLATTEN ({cause}): {text}")
        _answer(item.future, CommandResult(denied == 0, text, sent))


def _answer(future: asyncio.Future, result: CommandResult) -> None:
    if not future.done():
        future.set_result(result)
