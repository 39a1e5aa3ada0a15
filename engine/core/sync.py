"""What the engine reads from the venue: clock, assets, account, positions (the
venue is authoritative for them), quotes and bar history at start-up, connectivity,
and reconciliation of orders (at start-up it fails closed). Reads run in tasks;
their results are applied inside the engine task through typed messages."""

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
    VenueBar,
    VenueOrder,
    VenuePosition,
)
from engine.core import messages as msg
from engine.core.common import EXTERNAL, replace
from engine.model import OrderStatus, Position
from engine.reconcile import plan_reconciliation
from engine.sizing import AssetFlags

if TYPE_CHECKING:
    from engine.core.engine import Engine


JOURNAL_NOT_READY = "the journal cannot be written"  # as Recorder.broken says it


class VenueSync:
    def __init__(self, engine: Engine):
        self.e = engine
        self.reconcile_lock: asyncio.Lock | None = None
        self.fills_from_rest: asyncio.Task | None = None  # while the trade stream is down

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
        try:
            acct = await e.broker.account()
        except BrokerUnavailable as exc:
            e.note("error", None, f"account refresh failed: {exc}")
            return
        read = msg.AccountRead(acct, evaluate)
        if not e.started or e.stopping:
            self.on_account_read(read)
        else:
            e.post(read)

    def on_account_read(self, item: msg.AccountRead) -> None:
        e, acct = self.e, item.account
        e.portfolio.set_account(acct.cash, acct.equity, acct.last_equity, acct.buying_power)
        e.account_number = acct.account_number
        if item.evaluate:
            e.recorder.journal(
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
            e.publisher.pl_history.append(float(e.portfolio.daily_pnl))
            e.halt.check_daily_loss()

    async def refresh_positions(self) -> None:
        e = self.e
        try:
            positions = await e.broker.positions()
        except BrokerUnavailable as exc:
            e.note("error", None, f"positions refresh failed: {exc}")
            return
        e.post(msg.PositionsRead(positions))

    def on_positions_read(self, item: msg.PositionsRead) -> None:
        self.apply_positions(item.positions)

    def apply_positions(self, positions: Sequence[VenuePosition]) -> None:
        """The broker snapshot is authoritative for positions."""
        e = self.e
        mine = {s: p.qty for s, p in e.portfolio.positions.items()}
        theirs = {p.symbol: p.qty for p in positions if p.qty != 0}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))
            if diff and e.trading_ready:
                e.note("info", None, f"positions re-synced from the venue ({len(diff)} difference(s))")
        snapshot = [
            Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price, last_price=p.current_price)
            for p in positions
            if p.qty != 0
        ]
        e.portfolio.replace_positions_from_broker(snapshot)
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
            done = asyncio.get_running_loop().create_future()
            e.post(msg.ReconcileRead(trigger, open_orders + recent, positions, lookups, unaccounted, done))
            await done

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
            self._apply(item.trigger, item.venue_orders, item.positions, item.lookups, item.unaccounted)
        finally:
            if not item.done.done():
                item.done.set_result(None)

    def _apply(
        self,
        trigger: str,
        venue_orders: list[VenueOrder],
        positions: Sequence[VenuePosition],
        lookups: dict[str, VenueOrder | None],
        unaccounted: list[str],
    ) -> None:
        e = self.e
        plan = plan_reconciliation(e.book.orders, e.open_orders(), venue_orders, e.external)
        now = e.clock.now()
        for fill in plan.fills:
            order = e.book.get(fill.client_order_id)
            if order is not None:
                e.lifecycle.apply_fill(order, fill.execution_id, fill.qty, fill.price, now, source="reconcile")
        for cid, venue in plan.status_changes:
            e.lifecycle.apply_venue_status(cid, venue, source="reconcile")
        for venue in plan.external:
            e.lifecycle.see_external(venue, "reconciliation")
        open_ids = {v.id for v in venue_orders if not v.status.is_final}
        for vid in [vid for vid in e.external if vid not in open_ids]:
            e.external.pop(vid, None)
            e.publisher.dirty_orders.add(EXTERNAL)
        for cid, found in lookups.items():
            order = e.book.get(cid)
            if found is None and order is not None and order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
                # "not there yet" is not "never": a request on the wire (a slow venue, or
                # one sent just before a crash) may still land — ask again, with patience
                e.spawn(e.submits.resolve_unknown(cid), "resolve-reconcile")
                continue
            e.submits.on_resolved(msg.Resolved(cid, found))
        self.apply_positions(positions)
        e.recorder.journal(
            ev.ReconcileCompleted(
                ok=not unaccounted,
                unaccounted=unaccounted,
                trigger=trigger,
                counts={
                    "venue_orders": len(venue_orders),
                    "fills": len(plan.fills),
                    "status_changes": len(plan.status_changes),
                    "external": len(e.external),
                    "looked_up": len(lookups),
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
                    f"reconciliation ({trigger}): {len(venue_orders)} venue order(s), "
                    f"{len(e.external)} external, {len(plan.fills)} missed fill(s) applied — trading ready",
                )
            elif plan.fills or plan.status_changes:
                e.note(
                    "info",
                    None,
                    f"reconciliation ({trigger}): {len(plan.fills)} missed fill(s), "
                    f"{len(plan.status_changes)} status change(s) applied",
                )
            e.trading_ready = True
            e.not_ready_reason = ""
        e.halt.check_kill_progress()
