"""Where a signal becomes an order: a batch is sized into proposals, each is
checked by the pre-trade risk (first denial wins) and journaled as an intent,
then released to be sent or queued for the operator's approval by the symbol's
rollout mode. Also approvals and their expiry, rollout overrides, and the
stop-loss exits a quote can trigger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from engine import events as ev
from engine.broker.base import VenueQuote
from engine.commands import ApproveAll, ApproveIntent, CommandResult, RejectAll, RejectIntent, SetOverride
from engine.config import SymbolOverride
from engine.core.common import FAR_FUTURE, first_error, q
from engine.model import DenialReason, Order, OrderStatus, RolloutMode, TimeInForce, TradingState
from engine.orders import OrderBookError, make_client_order_id
from engine.risk import CheckContext, Denial
from engine.signals import SignalBatch, SignalKind
from engine.sizing import OrderPurpose, ProposedOrder, size_batch
from engine.timezones import NEW_YORK as NY

if TYPE_CHECKING:
    from engine.core.engine import Engine


class Intents:
    def __init__(self, engine: Engine):
        self.e = engine
        self.orders_this_bar = 0
        self.aux_seq = 0  # numbers the stop-loss and flatten rounds outside the signal flow
        self.override_changed: dict[str, datetime] = {}  # symbol -> venue time of its last SetOverride

    def next_aux_seq(self) -> int:
        self.aux_seq += 1
        return self.aux_seq

    def current_bar_seq(self) -> int:
        e = self.e
        return e.book.ledger.seq_for(e.last_bar_ts) if e.last_bar_ts else 0

    # ---------------------------------------------------------------- batches

    def on_batch(self, batch: SignalBatch) -> None:
        e = self.e
        for d in batch.dropped:
            e.stats.dropped[d.reason] = e.stats.dropped.get(d.reason, 0) + 1
            e.recorder.journal(
                ev.SignalDropped(
                    symbol=d.symbol, line=str(d.line) if d.line is not None else None, reason=f"{d.reason}: {d.detail}"
                )
            )
            what = d.symbol or (f"line {d.line}" if d.line is not None else "entry")
            e.note("dropped", d.symbol, f"DROPPED {what}: {d.reason} — {d.detail}")
        if getattr(batch, "rejected", False):
            return  # a refused line or batch is not a bar
        ledger = e.book.ledger
        if ledger.is_processed(batch.ts):
            e.note("info", None, f"batch {batch.ts.isoformat()} was already processed before the restart: skipped")
            return
        seq = ledger.seq_for(batch.ts)
        e.last_bar_ts = batch.ts
        # settle what the previous bar left: pending approvals expire; unfilled orders per policy
        self._expire(FAR_FUTURE, "next bar", at=e.clock.now())
        if e.settings.order_management.unfilled_policy == "cancel":
            for o in e.open_orders():
                if (
                    o.reason == "signal"
                    and o.venue_order_id
                    and o.bar_ts is not None
                    and o.bar_ts < batch.ts
                    and not o.status.is_local
                ):
                    e.spawn(e.submits.cancel_one(o.client_order_id, "unfilled at the next bar"), "cancel-unfilled")
        self.orders_this_bar = 0
        proposals = size_batch(
            batch.signals,
            e.portfolio,
            overrides=e.overrides,
            assets=e.asset_flags,
            limits=e.limits,
            weights=batch.kind is SignalKind.WEIGHT,
            held_outside=e.held_outside(),
        )
        created = self.create(proposals, bar_seq=seq, base_seq=0, bar_ts=batch.ts)
        # the batch's submits and its BatchProcessed leave the journal in one durable write
        written = e.submits.flush(
            also=[ev.BatchProcessed(bar_ts=batch.ts, batch_seq=seq, intents=created, kind=batch.kind.value)]
        )
        e.stats.batches += 1
        n_sig = len(batch.signals)
        bar = batch.ts.astimezone(NY).strftime("%H:%M")
        what = "target weight(s)" if batch.kind is SignalKind.WEIGHT else "signal(s)"
        dropped = f", {len(batch.dropped)} dropped" if batch.dropped else ""
        if written:
            e.note("info", None, f"bar {bar}: {n_sig} {what}, {created} intent(s){dropped}")
        else:
            # said only of what the journal holds: none of this batch's intents, nothing sent
            e.note(
                "error",
                None,
                f"bar {bar}: {n_sig} {what}, 0 intent(s){dropped}: the journal cannot be written, nothing sent",
            )
        if e.observers:
            e.tell("batch_handled", batch, e.stats.submits)

    def create(
        self, proposals: Sequence[ProposedOrder], *, bar_seq: int, base_seq: int, bar_ts: datetime | None = None
    ) -> int:
        """Check every proposal; journal each intent; release what may go now (sent
        by the next Submits.flush, after one durable write), queue the rest for
        approval."""
        e = self.e
        rec = e.recorder
        if rec.deferred is None:
            rec.deferred = []
        now = e.clock.now()
        om = e.settings.order_management
        beyond_bar: list[str] = []
        created = 0
        for i, p in enumerate(proposals):
            cid = make_client_order_id(e.session_id, bar_seq, p.symbol, base_seq + i)
            if cid in e.book:
                continue  # this batch created it before a restart: same ids, not again
            order = p.as_order(cid, time_in_force=TimeInForce(om.time_in_force), bar_ts=bar_ts, created_at=now)
            if p.purpose is not OrderPurpose.SIGNAL and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                order.time_in_force = TimeInForce.DAY
            denial = self.check(p, now)
            if not rec.record(ev.IntentCreated(order=order, batch_seq=bar_seq)):
                return created
            created += 1
            e.stats.intents += 1
            if denial is not None:
                # past max_orders_per_bar: journaled one by one, said once in the log
                beyond = denial.reason is DenialReason.MAX_ORDERS_PER_BAR_EXCEEDED
                self.deny(cid, p, denial, quiet=beyond)
                if beyond:
                    beyond_bar.append(p.symbol)
                continue
            if p.purpose is OrderPurpose.SIGNAL:
                self.orders_this_bar += 1
            skip = (
                p.purpose is OrderPurpose.STOP_LOSS and e.settings.risk_management.stop_loss_skips_approval
            ) or p.purpose is OrderPurpose.FLATTEN
            if skip or e.auto_approve or self.mode(p.symbol) is RolloutMode.AUTO:
                # counts as working for the checks of the next proposal
                rec.release(cid)
                booked = e.book.get(cid)
                assert booked is not None  # recorded just above
                e.submits.queue(booked)
            else:
                expires = now + timedelta(seconds=e.settings.rollout.approval_timeout)
                rec.record(ev.ApprovalRequested(client_order_id=cid, expires_at=expires))
        if beyond_bar:
            e.note(
                "denial",
                None,
                f"DENIED {len(beyond_bar)} smaller change(s) past max_orders_per_bar = "
                f"{om.max_orders_per_bar} (MAX_ORDERS_PER_BAR_EXCEEDED): {', '.join(beyond_bar)}",
            )
        return created

    def mode(self, symbol: str) -> RolloutMode:
        ov = self.e.overrides.get(symbol)
        if ov is not None and ov.mode is not None:
            return ov.mode
        return self.e.settings.rollout.default_mode

    def check(self, p: ProposedOrder, now: datetime, at_approval: bool = False) -> Denial | None:
        e = self.e
        if not e.trading_ready and p.purpose is not OrderPurpose.FLATTEN:
            return Denial(DenialReason.TRADING_HALTED, f"trading not ready: {e.not_ready_reason}")
        ctx = CheckContext(
            now=now,
            market_open=e.clock.market_open(),
            trading_state=e.state,
            state_cause=e.trip_cause,
            overrides=e.overrides,
            orders_this_bar=self.orders_this_bar,
            at_approval=at_approval,
            wall_now=e.rate_now(),
        )
        return e.risk.check(e.portfolio, p, ctx)

    def current_verdicts(self) -> dict[str, Denial | None]:
        """The verdict each waiting intent would get if approved now: the same
        checks as at approval (against current overrides, positions, prices and the
        trading state). Nothing is journaled: an intent is denied only when the
        operator approves it (or it expires). Called by the publisher whenever
        something changed since the last snapshot."""
        now = self.e.clock.now()
        return {
            o.client_order_id: self.check(self._proposal_of(o), now, at_approval=True)
            for o in self.e.book.awaiting_approval
        }

    def deny(self, cid: str, p: ProposedOrder, denial: Denial, quiet: bool = False) -> None:
        e = self.e
        e.recorder.record(ev.IntentDenied(client_order_id=cid, reason=denial.reason, detail=denial.detail))
        e.stats.denials[denial.reason.value] = e.stats.denials.get(denial.reason.value, 0) + 1
        if not quiet:
            e.note(
                "denial",
                p.symbol,
                f"DENIED {p.side.value} {q(p.qty)} {p.symbol}: {denial.reason.value} — {denial.detail}",
            )

    # ------------------------------------------------------------- stop losses

    def on_quote(self, quote: VenueQuote) -> None:
        """Quotes re-mark the portfolio and may fire a stop: core/halt.py owns both."""
        self.e.halt.on_quote(quote)

    # ---------------------------------------------------------------- approvals

    def expire_approvals(self) -> None:
        self._expire(self.e.clock.now(), "no approval in time")

    def _expire(self, deadline: datetime, why: str, at: datetime | None = None) -> None:
        """Expire the intents whose deadline is at or before `deadline`, recorded at
        `at` (the venue clock; default the deadline itself)."""
        e = self.e
        for event in e.book.expire(deadline, at=at):
            e.recorder.record_applied(event)
            o = e.book.get(event.client_order_id)
            if o is not None:
                e.note("denial", o.symbol, f"EXPIRED intent {o.side.value} {q(o.qty)} {o.symbol} ({why})")

    def _proposal_of(self, order: Order) -> ProposedOrder:
        return ProposedOrder(
            symbol=order.symbol,
            side=order.side,
            qty=order.qty,
            limit_price=order.limit_price,
            decision_price=order.decision_price or Decimal(0),
            signal=order.signal,
            reduce_only=order.reduce_only,
            purpose=OrderPurpose(order.reason or "signal"),
        )

    def approve(self, cid: str, by: str = "operator") -> CommandResult:
        e = self.e
        order = e.book.get(cid)
        if order is None or order.status is not OrderStatus.AWAITING_APPROVAL:
            return CommandResult(False, f"no intent {cid} is awaiting approval")
        now = e.clock.now()
        try:
            event = e.book.approve(cid, by=by, now=now)
        except OrderBookError as exc:
            return CommandResult(False, str(exc))
        e.recorder.record_applied(event)
        p = self._proposal_of(order)
        denial = self.check(p, now, at_approval=True)  # again, at current prices
        if denial is not None:
            self.deny(cid, p, denial)
            return CommandResult(False, f"denied at current prices: {denial.reason.value} — {denial.detail}")
        e.recorder.release(cid)
        e.submits.send([order])
        e.note("order", order.symbol, f"APPROVED {order.side.value} {q(order.qty)} {order.symbol} by {by}")
        return CommandResult(True, f"approved {order.side.value} {q(order.qty)} {order.symbol}", 1)

    def reject(self, cid: str, by: str = "operator", detail: str = "") -> CommandResult:
        e = self.e
        order = e.book.get(cid)
        if order is None or order.status is not OrderStatus.AWAITING_APPROVAL:
            return CommandResult(False, f"no intent {cid} is awaiting approval")
        e.recorder.record_applied(e.book.reject(cid, by=by, detail=detail))
        e.note("denial", order.symbol, f"REJECTED by {by}: {order.side.value} {q(order.qty)} {order.symbol}")
        return CommandResult(True, f"rejected {order.side.value} {q(order.qty)} {order.symbol}", 1)

    def reject_all_pending(self, by: str, detail: str) -> None:
        """Drop every intent awaiting approval (the kill switch)."""
        e = self.e
        for order in list(e.book.awaiting_approval):
            e.recorder.record_applied(e.book.reject(order.client_order_id, by=by, detail=detail))

    # ----------------------------------------------------------------- commands

    def _halted(self) -> CommandResult | None:
        if self.e.state is TradingState.HALTED:
            return CommandResult(False, "HALTED: approvals are disabled until resume")
        return None

    def on_approve(self, cmd: ApproveIntent) -> CommandResult:
        return self._halted() or self.approve(cmd.intent_id)

    def on_approve_all(self, cmd: ApproveAll) -> CommandResult:
        refused = self._halted()
        if refused is not None:
            return refused
        results = [self.approve(o.client_order_id) for o in self.e.book.awaiting_approval]
        ok = sum(r.ok for r in results)
        return CommandResult(ok == len(results), f"approved {ok} of {len(results)}", ok)

    def on_reject(self, cmd: RejectIntent) -> CommandResult:
        return self.reject(cmd.intent_id)

    def on_reject_all(self, cmd: RejectAll) -> CommandResult:
        results = [self.reject(o.client_order_id) for o in self.e.book.awaiting_approval]
        return CommandResult(True, f"rejected {len(results)}", len(results))

    def set_override(self, cmd: SetOverride) -> CommandResult:
        e = self.e
        if cmd.symbol not in e.universe:
            return CommandResult(False, f"unknown symbol {cmd.symbol!r}")
        if cmd.clear:
            override = None
        else:
            try:
                override = SymbolOverride(
                    mode=cmd.mode,
                    max_position_usd=cmd.max_position_usd,
                    max_position_pct=cmd.max_position_pct,
                    size_multiplier=cmd.size_multiplier,
                    side=cmd.side,
                )
            except Exception as exc:  # pydantic ValidationError: say which field
                return CommandResult(False, f"invalid override for {cmd.symbol}: {first_error(exc)}")
        if not e.recorder.journal(ev.OverrideSet(symbol=cmd.symbol, override=override), durable=True):
            return CommandResult(False, "the journal cannot be written: override not applied")
        self.override_changed[cmd.symbol] = e.clock.now()
        if override is None:
            e.overrides.pop(cmd.symbol, None)
            desc = "cleared"
        else:
            e.overrides[cmd.symbol] = override
            desc = (
                ", ".join(f"{k}={v}" for k, v in override.model_dump(exclude_none=True, mode="json").items())
                or "no fields"
            )
        e.note("info", cmd.symbol, f"OVERRIDE {cmd.symbol}: {desc}")
        return CommandResult(True, f"override {cmd.symbol}: {desc}")
