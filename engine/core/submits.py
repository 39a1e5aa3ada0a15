"""Where an order is sent and its outcome settled: the durable SubmitSent before
any request leaves, the submit itself, its outcome (acked, rejected by the venue,
refused for the rate, unknown), the one resolver of unknown outcomes (a lookup by
client_order_id, never a blind resend), and cancels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.broker.base import BrokerUnavailable, CancelOutcomeKind, SubmitOutcome, SubmitOutcomeKind, SubmitRequest
from engine.commands import CancelOrder, CommandResult
from engine.core import messages as msg
from engine.core.common import CANCEL_RETRY, LOOKUP_RETRY, THROTTLE_RETRY, q
from engine.model import Order, OrderStatus, OrderType, TimeInForce, TradingState

if TYPE_CHECKING:
    from engine.core.engine import Engine


class Submits:
    def __init__(self, engine: Engine):
        self.e = engine
        self.pending: list[Order] = []  # released by Intents.create, sent by the next flush
        self.throttled: dict[str, int] = {}  # client_order_id -> resends after a 429
        self.resolving: set[str] = set()
        self.cancelling: set[str] = set()
        self.on_wire = 0  # submits between their task's start and their answer

    # ---------------------------------------------------------------- sending

    def queue(self, order: Order) -> None:
        self.pending.append(order)

    def flush(self, also: Sequence[Any] = ()) -> bool:
        """Send what Intents.create queued (and journal `also` with it). False when
        the journal write failed: then nothing of it is journaled and nothing sent."""
        orders, self.pending = self.pending, []
        written = self.send(orders, also)
        self.e.recorder.deferred = None
        return written

    def send(self, orders: list[Order], also: Sequence[Any] = ()) -> bool:
        """Journal every SubmitSent (and `also`, e.g. the batch's BatchProcessed)
        durably — one fsync for the lot — then send. False if the journal failed."""
        e = self.e
        if not orders and not also and not e.recorder.deferred:
            return not e.recorder.failed
        sent = e.recorder.write_sends(orders, also)
        if sent is None:
            return False
        wall = e.rate_now()
        halts = e.halt.halts
        for o in orders:
            e.risk.record_submit(wall)
            e.stats.submits += 1
            e.spawn(self.submit_task(o, halts), "submit")
        return True

    async def submit_task(self, order: Order, halts: int | None = None) -> None:
        """Send one order, unless the kill switch was pulled since it was released
        (`halts`, the kill-switch count then): a request not yet on the wire when
        HALTED is never sent (asked again in the broker's worker, right before it
        would leave)."""
        e = self.e
        halts = e.halt.halts if halts is None else halts

        def withhold() -> bool:
            return e.halt.halts != halts or e.halt.arriving

        if withhold():
            e.put(msg.Submitted(order.client_order_id, SubmitOutcome(SubmitOutcomeKind.WITHHELD), 0.0))
            return
        extended = (
            order.reason == "flatten"
            and order.order_type is OrderType.LIMIT
            and order.time_in_force is TimeInForce.DAY
            and not e.clock.market_open()
        )
        req = SubmitRequest(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            limit_price=order.limit_price,
            extended_hours=extended,
        )
        t0 = time.perf_counter()
        self.on_wire += 1
        try:
            outcome = await e.broker.submit(req, withhold)
        finally:
            self.on_wire -= 1
        e.put(msg.Submitted(order.client_order_id, outcome, (time.perf_counter() - t0) * 1000))

    # ---------------------------------------------------------------- outcomes

    def on_submitted(self, item: msg.Submitted) -> None:
        self._apply_answer(item)
        if self.e.observers:
            self.e.tell("submit_answered", item.client_order_id, item.outcome)

    def _apply_answer(self, item: msg.Submitted) -> None:
        e = self.e
        order = e.book.get(item.client_order_id)
        if order is None:
            return
        out = item.outcome
        cid = order.client_order_id
        if out.kind is SubmitOutcomeKind.ACKED and out.order is not None:
            e.lifecycle.acked(order, out.order, "rest")
        elif out.kind is SubmitOutcomeKind.WITHHELD:
            if e.recorder.record(
                ev.SubmitRejected(client_order_id=cid, message="not sent: trading HALTED before the request left")
            ):
                e.halt.check_kill_progress()
            e.note("order", order.symbol, f"{cid} not sent: the kill switch was pulled before the request left")
        elif out.kind is SubmitOutcomeKind.REJECTED:
            if e.recorder.record(
                ev.SubmitRejected(client_order_id=cid, http_status=out.http_status, code=out.code, message=out.message)
            ):
                e.halt.check_kill_progress()
            e.note(
                "order",
                order.symbol,
                f"REJECTED by the venue: {order.side.value} {q(order.qty)} {order.symbol}: {out.message}",
            )
        elif out.http_status == 429:
            # Refused for the rate before anything happened at the venue: looked up
            # first, then sent again under the same client_order_id (the venue would
            # refuse a duplicate) once the limiter allows.
            e.recorder.record(ev.SubmitUnknown(client_order_id=cid, cause=f"rate limited (429): {out.message}"))
            e.note(
                "error",
                order.symbol,
                f"{cid} refused for the rate (429): will look it up, then send it again under the same id",
            )
            e.spawn(self._after_throttle(cid, self.throttled.get(cid, 0)), "after-429")
        else:
            e.recorder.record(ev.SubmitUnknown(client_order_id=cid, cause=out.message or "unknown"))
            e.note(
                "error",
                order.symbol,
                f"submit outcome unknown for {cid} ({out.message}): looking it up by client_order_id, never resending",
            )
            e.spawn(self.resolve_unknown(cid), "resolve")

    async def _after_throttle(self, cid: str, attempt: int) -> None:
        await asyncio.sleep(THROTTLE_RETRY.delay(attempt))
        try:
            found = await self.e.broker.lookup(cid)
        except BrokerUnavailable:
            self.e.spawn(self.resolve_unknown(cid), "resolve")
            return
        if found is not None:
            self.e.post(msg.Resolved(cid, found))
            return
        self.e.post(msg.ThrottleCleared(cid, attempt + 1))

    def on_throttle_cleared(self, item: msg.ThrottleCleared) -> None:
        """Not at the venue after a 429: send again under the same id, a few times."""
        e = self.e
        cid, attempt = item.client_order_id, item.attempt
        order = e.book.get(cid)
        if order is None or order.status is not OrderStatus.UNKNOWN:
            return
        if e.state is TradingState.HALTED or attempt > 5:
            why = (
                "trading HALTED" if e.state is TradingState.HALTED else f"still rate limited after {attempt - 1} tries"
            )
            e.recorder.record(
                ev.SubmitRejected(
                    client_order_id=cid, http_status=429, message=f"not sent: refused for the rate, then {why}"
                )
            )
            e.note("order", order.symbol, f"{cid} not sent: refused for the rate (429), then {why}")
            return
        self.throttled[cid] = attempt
        if not e.recorder.journal(
            ev.SubmitUnknown(
                client_order_id=cid, cause=f"sending again after 429 (try {attempt + 1}); lookup: not at the venue"
            ),
            durable=True,
        ):
            return
        e.spawn(self.submit_task(order), "resubmit")

    async def resolve_unknown(self, cid: str) -> None:
        """Ask the venue by client_order_id until it says yes or no. 'No' is only
        believed after twice the request timeout, so a slow request cannot land
        after we declared it absent."""
        if cid in self.resolving:
            return
        self.resolving.add(cid)
        try:
            delays = LOOKUP_RETRY.delays()
            loop = asyncio.get_running_loop()
            absent_since: float | None = None
            patience = 2 * self.e.settings.broker.request_timeout
            while True:
                try:
                    found = await self.e.broker.lookup(cid)
                    unavailable = False
                except BrokerUnavailable:
                    found, unavailable = None, True
                if found is not None:
                    self.e.post(msg.Resolved(cid, found))
                    return
                if not unavailable:
                    absent_since = absent_since if absent_since is not None else loop.time()
                    if loop.time() - absent_since >= patience:
                        self.e.post(msg.Resolved(cid, None))
                        return
                await asyncio.sleep(next(delays))
        finally:
            self.resolving.discard(cid)

    def on_resolved(self, item: msg.Resolved) -> None:
        e = self.e
        order = e.book.get(item.client_order_id)
        if order is None:
            return
        if item.order is not None:
            e.lifecycle.acked(order, item.order, "lookup")
        elif order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
            e.recorder.record(
                ev.SubmitRejected(
                    client_order_id=order.client_order_id,
                    message="never reached the venue (lookup by client_order_id: not found)",
                )
            )
            e.note("order", order.symbol, f"{order.client_order_id} never reached the venue (lookup: not found)")

    def on_in_flight_timer(self) -> None:
        """Orders in flight for too long are looked up."""
        e = self.e
        limit = timedelta(seconds=e.settings.order_management.in_flight_query_after)
        now = e.clock.now()
        for o in e.open_orders():
            if (
                o.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN)
                and o.submitted_at
                and now - o.submitted_at > limit
            ):
                e.spawn(self.resolve_unknown(o.client_order_id), "resolve-in-flight")

    # ---------------------------------------------------------------- cancels

    async def cancel_one(self, cid: str, cause: str) -> None:
        e = self.e
        order = e.book.get(cid)
        if order is None or order.venue_order_id is None or order.status.is_final:
            return
        e.post(msg.CancelAsked(cid, cause))
        if cid in self.cancelling:
            return  # already being asked, until the venue answers
        self.cancelling.add(cid)
        try:
            # a cancel whose outcome is unknown is asked again (cancels are safe to
            # repeat) until the venue answers or the order is final
            delays = CANCEL_RETRY.delays()
            while True:
                out = await e.broker.cancel(order.venue_order_id)
                if out.kind is not CancelOutcomeKind.UNKNOWN or order.status.is_final:
                    return
                e.post(msg.CancelUnknown(cid, order.symbol, out.message))
                await asyncio.sleep(next(delays))
                if order.status.is_final:
                    return
        finally:
            self.cancelling.discard(cid)

    def on_cancel_asked(self, item: msg.CancelAsked) -> None:
        self.e.recorder.journal(ev.CancelRequested(client_order_id=item.client_order_id, cause=item.cause))
        self.e.trade_watch.cancel_asked(item.client_order_id)

    def on_cancel_unknown(self, item: msg.CancelUnknown) -> None:
        self.e.note(
            "error", item.symbol, f"cancel of {item.client_order_id}: outcome unknown ({item.message}): asking again"
        )

    def on_cancel_command(self, cmd: CancelOrder) -> CommandResult:
        e = self.e
        order = e.book.get(cmd.client_order_id)
        if order is None or order.status.is_final or order.venue_order_id is None:
            return CommandResult(False, f"no working order {cmd.client_order_id}")
        e.spawn(self.cancel_one(cmd.client_order_id, "operator"), "cancel")
        return CommandResult(True, f"cancel sent for {cmd.client_order_id}", 1)
