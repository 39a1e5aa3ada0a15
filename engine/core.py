"""The Engine: the one owner of trading state. One asyncio task applies every
change as an event, in order: commands from front ends, results of broker calls,
stream traffic, signal batches and timers all arrive on its inbox. Broker I/O
runs in tasks (and the broker's worker threads) that post their outcome back to
the inbox; nothing else mutates state.

Every change to orders is a journal event: built, checked against the OrderBook,
journaled, then applied — the same path a replay takes after a restart. Readers
see immutable EngineSnapshots."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from engine import events as ev
from engine.broker.base import (
    Broker,
    BrokerUnavailable,
    ConnectivityChanged,
    RateLimitChanged,
    RequestFailed,
    SubmitOutcome,
    SubmitRequest,
    TradeUpdate,
    VenueBar,
    VenueOrder,
    VenuePosition,
    VenueQuote,
)
from engine.clock import VenueTime
from engine.commands import (
    ApproveAll,
    ApproveIntent,
    CancelOrder,
    Command,
    CommandResult,
    Flatten,
    Halt,
    RejectAll,
    RejectIntent,
    Resume,
    SetOverride,
)
from engine.config import Settings, SymbolOverride
from engine.journal import Journal, JournalError, recover
from engine.model import (
    DenialReason,
    Fill,
    InvalidStateTransition,
    Order,
    OrderStatus,
    OrderType,
    Position,
    RolloutMode,
    TimeInForce,
    TradingState,
)
from engine.orders import OrderBook, OrderBookError, make_client_order_id
from engine.portfolio import Portfolio, RiskLimits
from engine.reconcile import catch_up_fill, plan_reconciliation
from engine.risk import CheckContext, Denial, PreTradeRisk, TradingStateRules, TripCause, flatten_orders, stop_loss_exit
from engine.signals import Bar, Quote, SignalBatch
from engine.sizing import AssetFlags, OrderPurpose, ProposedOrder, size_batch
from engine.snapshot import (
    Connectivity,
    EngineSnapshot,
    EventRow,
    IntentRow,
    KillSwitchStatus,
    OrderRow,
    OverrideRow,
    PositionRow,
)
from engine.universe import Universe

log = logging.getLogger("execdesk.engine")

_FINAL_WORDS = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "done_for_day"})
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
_MINUTE = timedelta(minutes=1)
_EXTERNAL = "\0external"  # marks a change among external orders
# seq numbers of client order ids for orders outside the signal flow
_SEQ_STOP = 5000
_SEQ_FLATTEN = 7000


@dataclass(slots=True)
class _Submitted:
    client_order_id: str
    outcome: SubmitOutcome
    wall_ms: float


@dataclass(slots=True)
class _Resolved:
    client_order_id: str
    order: VenueOrder | None


@dataclass(slots=True)
class _Timer:
    name: str


@dataclass(slots=True)
class _CommandEnvelope:
    command: Command
    future: asyncio.Future


@dataclass(slots=True)
class _Callback:
    """Run a function inside the engine task (results of background reads)."""

    fn: Callable[[], Any]


@dataclass
class EngineStats:
    batches: int = 0
    intents: int = 0
    submits: int = 0
    fills: int = 0
    denials: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)


def config_hash(settings: Settings) -> str:
    raw = settings.model_dump_json(exclude={"source_path"}).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _replace(obj, **changes):
    return dataclasses.replace(obj, **changes)


class Engine:
    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        journal: Journal,
        universe: Universe,
        *,
        venue_kind: str = "SIM",
        clock_speed: float = 1.0,
        auto_approve: bool = False,
        log_sink: Callable[[EventRow], None] | None = None,
        new_session: bool = False,
    ):
        self.settings = settings
        self.broker = broker
        self.journal = journal
        self.universe = universe
        self.venue_kind = venue_kind
        self.auto_approve = auto_approve
        self.new_session = new_session
        self.clock = VenueTime(clock_speed)
        self.limits = RiskLimits.from_settings(settings)
        self.book = OrderBook()
        self.portfolio = Portfolio(settings, {a.symbol: a.sector for a in universe.assets}, limits=self.limits)
        allow = set(settings.rollout.allowlist)
        self.symbols: tuple[str, ...] = tuple(s for s in universe.symbols if not allow or s in allow)
        self.asset_flags: dict[str, AssetFlags] = {
            a.symbol: AssetFlags(a.shortable, a.easy_to_borrow, a.fractionable, True) for a in universe.assets
        }
        self.risk = PreTradeRisk(settings, assets=self.asset_flags, limits=self.limits)
        self.rules = TradingStateRules(settings)
        self.state = TradingState.ACTIVE
        self.state_cause = "start"
        self.trip_cause: TripCause | None = None
        self.overrides: dict[str, SymbolOverride] = dict(settings.rollout.overrides)
        self.external: dict[str, VenueOrder] = {}
        self.session_id = ""
        self.account_number = ""
        self.last_bar_ts: datetime | None = None
        self.trading_ready = False
        self.not_ready_reason = "starting"
        self.connectivity = Connectivity()
        self.kill = KillSwitchStatus()
        self._kill_ids: set[str] = set()
        self._kill_open: set[str] = set()  # of _kill_ids, those not confirmed canceled yet
        self.stats = EngineStats()
        self.bars: dict[str, deque[VenueBar]] = {}
        self._bar_waiters: list[asyncio.Future] = []
        self.latest_bar_close: datetime | None = None  # close of the newest minute bar from the stream
        self._events: deque[EventRow] = deque(maxlen=500)
        self._event_seq = 0
        self._pl_history: deque[float] = deque(maxlen=120)
        self._log_sink = log_sink
        self._inbox: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._snapshot = EngineSnapshot()
        self._snap_seq = 0
        self._dirty = True
        self._rows_orders: dict[str, OrderRow] = {}
        self._rows_intents: dict[str, IntentRow] = {}
        self._rows_positions: dict[str, PositionRow] = {}
        self._listeners: list[Callable[[EngineSnapshot], None]] = []
        self._stopping = False
        self._orders_this_bar = 0
        self._pending_send: list[Order] = []
        self._throttled: dict[str, int] = {}  # client_order_id -> resends after a 429
        self._deferred: list[Any] | None = None  # journal events held for the batch's one durable write
        self._dirty_orders: set[str] = set()  # orders changed since the last snapshot
        self._rows_complete = False  # the rows were built from the whole book at least once
        self._resolving: set[str] = set()
        self._cancelling: set[str] = set()
        self._journal_failed = False
        self._aux_seq = 0
        self._reconcile_lock: asyncio.Lock | None = None
        self.on_batch_done: Callable[[SignalBatch], None] | None = None

    def _rate_now(self) -> datetime:
        """The time the order-rate throttle counts in: real time (the venue's limits
        are per real minute), except on a frozen venue clock, which freezes
        everything the engine times so that drills and tests are deterministic."""
        if self.clock.speed == 0:
            return self.clock.now()
        return datetime.now(timezone.utc)

    # ------------------------------------------------------------------ public

    @property
    def snapshot(self) -> EngineSnapshot:
        return self._snapshot

    def add_listener(self, fn: Callable[[EngineSnapshot], None]) -> None:
        self._listeners.append(fn)

    def post(self, item: Any) -> None:
        """Put an item on the inbox; safe from any thread (the broker's emit)."""
        loop, inbox = self._loop, self._inbox
        if loop is None or inbox is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, item)
        except RuntimeError:
            pass  # the loop closed while shutting down

    async def execute(self, command: Command) -> CommandResult:
        """Run a command inside the engine task (call from the engine's loop)."""
        assert self._inbox is not None
        fut = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(_CommandEnvelope(command, fut))
        return await fut

    async def submit_batch(self, batch: SignalBatch) -> None:
        assert self._inbox is not None
        self._inbox.put_nowait(batch)

    def market_view(self) -> "EngineMarketView":
        return EngineMarketView(self)

    def open_orders(self) -> list[Order]:
        return [o for o in self.book.iter_open() if not o.external]

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._reconcile_lock = asyncio.Lock()
        await self.broker.start(self.post, self.symbols)
        await self._refresh_clock()
        self._open_journal()
        await self._load_assets()
        await self._refresh_account()
        await self._seed_market()
        self._spawn(self._run_loop(), "engine-loop")
        await self._reconcile("startup")
        om, mon = self.settings.order_management, self.settings.monitoring
        self._spawn(self._ticker("second", 1.0, venue=False), "tick-second")
        self._spawn(self._ticker("reconcile", mon.order_reconciliation_interval), "tick-reconcile")
        self._spawn(self._ticker("positions", mon.position_update_interval), "tick-positions")
        self._spawn(self._ticker("risk", mon.risk_check_interval), "tick-risk")
        self._spawn(self._ticker("clock", 5.0, venue=False), "tick-clock")
        self._spawn(self._ticker("in_flight", om.in_flight_query_after), "tick-in-flight")
        self._spawn(self._publisher(), "publisher")
        self._publish()

    async def stop(self, how: str = "stopped") -> None:
        """Stop in order: no new orders, open orders left working (and said so),
        journal sealed."""
        if self._stopping:
            return
        self._stopping = True
        working = [o for o in self.open_orders() if o.status not in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL)]
        self._note("info", None, f"stopping: no new orders; {len(working)} open order(s) left working at the venue")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.broker.stop()
        except Exception:  # pragma: no cover - best effort on the way out
            log.exception("broker stop failed")
        try:
            self.journal.seal(how)
        except JournalError:
            pass
        self._publish()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self._stopping:
            exc = task.exception()
            log.error("task %s failed: %r", task.get_name(), exc)
            self._note("error", None, f"internal task {task.get_name()} failed: {exc!r}")

    # ---------------------------------------------------------------- journal

    def _open_journal(self) -> None:
        venue_date = self.clock.now().astimezone(_NY).date() if self.clock.anchored else None
        info = self.journal.open_session(config_hash(self.settings), venue_date, new=self.new_session)
        self.session_id = info.session_id
        rec = recover(self.journal.replay(), info.session_id)
        self.book = rec.book
        if rec.trading_state is not None:
            self.state, self.state_cause = rec.trading_state, rec.trading_state_cause
            if self.state is not TradingState.ACTIVE:
                self.trip_cause = _trip_cause_of(self.state_cause)
        self.overrides.update(rec.overrides)
        self.last_bar_ts = self.book.ledger.last_processed
        self.stats.batches = self.book.ledger.processed_count
        for o in self.book.iter_open():
            if not o.external and o.status not in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL):
                self.portfolio.order_opened(o.client_order_id, o.symbol, o.side, o.remaining_qty, o.limit_price, o.reduce_only)
        # approvals do not survive a restart: the operator decides on fresh intents
        for e in self.book.expire(_FAR_FUTURE):
            self._record_applied(e)
        self._note("info", None, f"session {info.session_id}: {info.reason}")
        if self.state is not TradingState.ACTIVE:
            self._note("state", None, f"restarted in {self.state.value}: {self.state_cause}")

    def _record(self, event: Any, durable: bool = False) -> bool:
        """Check, journal, apply. False if the book refused it or the journal failed."""
        try:
            self.book.check(event)
        except (InvalidStateTransition, OrderBookError) as exc:
            log.debug("event refused by the book: %s", exc)
            return False
        if not self._journal(event, durable):
            return False
        self.book.apply(event)
        self._touch(event)
        return True

    def _record_applied(self, event: Any, durable: bool = False) -> None:
        """Journal an event the book has already applied (approve/reject/expire)."""
        self._journal(event, durable)
        self._touch(event)

    def _touch(self, event: Any) -> None:
        """Note which order an applied event changed, for the next snapshot's rows."""
        cid = getattr(event, "client_order_id", None)
        if cid is None:
            inner = getattr(event, "order", None) or getattr(event, "fill", None)
            cid = getattr(inner, "client_order_id", None)
        if cid is not None:
            self._dirty_orders.add(cid)

    def _journal(self, event: Any, durable: bool = False) -> bool:
        """Write first. A journal that cannot be written halts trading."""
        if self._journal_failed:
            return False
        if self._deferred is not None:
            # inside a batch: written with the batch's one durable write, which
            # happens before any request of the batch leaves
            self._deferred.append(event)
            return True
        try:
            self.journal.append(event, durable=durable)
            return True
        except JournalError as exc:
            self._journal_broken(exc)
            return False

    def _journal_broken(self, exc: Exception) -> None:
        if self._journal_failed:
            return
        self._journal_failed = True
        self.connectivity = _replace(self.connectivity, journal_ok=False, detail=f"journal: {exc}")
        self.state, self.state_cause = TradingState.HALTED, f"journal cannot be written: {exc}"
        self._note("error", None, f"JOURNAL ERROR: {exc} — trading HALTED (no orders without an audit trail)")
        self._publish()

    # --------------------------------------------------------------- the loop

    async def _run_loop(self) -> None:
        assert self._inbox is not None
        while True:
            item = await self._inbox.get()
            try:
                await self._handle(item)
            except Exception as exc:  # one bad item must not stop the engine
                log.exception("engine failed on %s", type(item).__name__)
                self._note("error", None, f"internal error on {type(item).__name__}: {exc!r}")
                if isinstance(item, _CommandEnvelope) and not item.future.done():
                    item.future.set_result(CommandResult(False, f"internal error: {exc!r}"))
            self._dirty = True

    async def _handle(self, item: Any) -> None:
        if isinstance(item, TradeUpdate):
            self._on_trade_update(item)
        elif isinstance(item, VenueQuote):
            self._on_quote(item)
        elif isinstance(item, VenueBar):
            self._on_bar(item)
        elif isinstance(item, _Submitted):
            self._on_submitted(item)
        elif isinstance(item, _Resolved):
            self._on_resolved(item)
        elif isinstance(item, _CommandEnvelope) and isinstance(item.command, Flatten):
            self._spawn(self._flatten(item.command.cause, item.future), "flatten")
        elif isinstance(item, _CommandEnvelope):
            result = await self._on_command(item.command)
            if not item.future.done():
                item.future.set_result(result)
        elif isinstance(item, SignalBatch):
            self._on_batch(item)
        elif isinstance(item, _Timer):
            self._on_timer(item.name)
        elif isinstance(item, ConnectivityChanged):
            self._on_connectivity(item)
        elif isinstance(item, RateLimitChanged):
            if item.limited != self.connectivity.rate_limited:
                self.connectivity = _replace(self.connectivity, rate_limited=item.limited)
                self._note("error" if item.limited else "info", None,
                           "venue rate limit reached: requests held back" if item.limited else "rate limit cleared")
        elif isinstance(item, RequestFailed):
            trip = self.rules.record_request(item.ok, self.state)
            if trip is not None:
                self._trip(trip)
        elif isinstance(item, _Callback):
            result = item.fn()
            if asyncio.iscoroutine(result):
                await result

    async def _ticker(self, name: str, seconds: float, venue: bool = True) -> None:
        assert self._inbox is not None
        wall = self.clock.wall_seconds(seconds) if venue else seconds
        while True:
            await asyncio.sleep(wall)
            self._inbox.put_nowait(_Timer(name))

    def _on_timer(self, name: str) -> None:
        if name == "second":
            now = self.clock.now()
            for e in self.book.expire(now):
                self._record_applied(e)
                o = self.book.get(e.client_order_id)
                if o is not None:
                    self._note("denial", o.symbol, f"EXPIRED intent {o.side.value} {_q(o.qty)} {o.symbol} (no approval in time)")
            self._check_kill_progress()
            trip = self.rules.venue_status(self.connectivity.rest != "down", time.monotonic(), self.state)
            if trip is not None:
                self._trip(trip)
        elif name == "reconcile":
            self._spawn(self._reconcile("periodic"), "reconcile")
        elif name == "positions":
            self._spawn(self._refresh_positions(), "positions")
        elif name == "risk":
            self._spawn(self._refresh_account(evaluate=True), "account")
        elif name == "clock":
            self._spawn(self._refresh_clock(), "clock")
        elif name == "in_flight":
            limit = timedelta(seconds=self.settings.order_management.in_flight_query_after)
            now = self.clock.now()
            for o in self.open_orders():
                if o.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN) and o.submitted_at and now - o.submitted_at > limit:
                    self._spawn(self._resolve_unknown(o.client_order_id), "resolve-in-flight")

    # ------------------------------------------------------------ venue reads

    async def _refresh_clock(self) -> None:
        try:
            c = await self.broker.clock()
        except BrokerUnavailable:
            return
        self.clock.anchor(c.timestamp, c.is_open, c.next_open, c.next_close)
        self._dirty = True

    async def _load_assets(self) -> None:
        try:
            assets = await self.broker.assets(self.symbols)
        except BrokerUnavailable as exc:
            self._note("error", None, f"assets unavailable ({exc}): using the universe file's flags")
            return
        for sym, a in assets.items():
            self.asset_flags[sym] = AssetFlags(a.shortable, a.easy_to_borrow, a.fractionable, a.tradable and a.status == "active")

    async def _refresh_account(self, evaluate: bool = False) -> None:
        try:
            acct = await self.broker.account()
        except BrokerUnavailable as exc:
            self._note("error", None, f"account refresh failed: {exc}")
            return

        def apply() -> None:
            self.portfolio.set_account(acct.cash, acct.equity, acct.last_equity, acct.buying_power)
            self.account_number = acct.account_number
            if evaluate:
                self._journal(ev.AccountSnapshot(
                    account_number=acct.account_number, status=acct.status, cash=acct.cash, equity=acct.equity,
                    last_equity=acct.last_equity, buying_power=acct.buying_power,
                    long_market_value=acct.long_market_value, short_market_value=acct.short_market_value,
                    trading_blocked=acct.trading_blocked, shorting_enabled=acct.shorting_enabled))
            if evaluate:
                self._pl_history.append(float(self.portfolio.daily_pnl))
                trip = self.rules.evaluate_daily_loss(self.portfolio.equity, self.portfolio.last_equity, self.state)
                if trip is not None:
                    self._trip(trip)
        if self._inbox is None or self._stopping:
            apply()
        else:
            self.post(_Callback(apply))

    async def _refresh_positions(self) -> None:
        try:
            positions = await self.broker.positions()
        except BrokerUnavailable as exc:
            self._note("error", None, f"positions refresh failed: {exc}")
            return
        self.post(_Callback(lambda: self._apply_positions(positions)))

    def _apply_positions(self, positions: Sequence[VenuePosition]) -> None:
        """The broker snapshot is authoritative for positions."""
        mine = {s: p.qty for s, p in self.portfolio.positions.items()}
        theirs = {p.symbol: p.qty for p in positions if p.qty != 0}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))
            if diff and self.trading_ready:
                self._note("info", None, f"positions re-synced from the venue ({len(diff)} difference(s))")
        snapshot = [Position(symbol=p.symbol, qty=p.qty, avg_entry_price=p.avg_entry_price, last_price=p.current_price)
                    for p in positions if p.qty != 0]
        self.portfolio.replace_positions_from_broker(snapshot)
        if self.session_id:
            self._journal(ev.PositionsSnapshot(positions=snapshot))

    async def _seed_market(self) -> None:
        try:
            quotes = await self.broker.latest_quotes(self.symbols)
        except BrokerUnavailable as exc:
            self._note("error", None, f"quotes unavailable: {exc}")
            quotes = {}
        for q in quotes.values():
            self.portfolio.on_quote(q.symbol, q.bid, q.ask, q.ts)
        # Minute-bar history for signal models: the last hour, or (at the open, on a
        # quiet day) reach back to earlier sessions until most symbols have enough.
        now = self.clock.now()
        history: dict[str, list[VenueBar]] = {}
        for lookback in (timedelta(hours=1), timedelta(days=1), timedelta(days=4)):
            try:
                history = await self.broker.bars(self.symbols, now - lookback, now)
            except BrokerUnavailable as exc:
                self._note("error", None, f"bars unavailable: {exc}")
                break
            enough = sum(1 for s in self.symbols if len(history.get(s, ())) >= 30)
            if enough * 2 >= len(self.symbols):
                break
        for symbol, bars in history.items():
            self.bars[symbol] = deque(bars[-240:], maxlen=240)
        try:
            self._apply_positions(await self.broker.positions())
        except BrokerUnavailable as exc:
            self._note("error", None, f"positions unavailable: {exc}")

    # --------------------------------------------------------- reconciliation

    async def _reconcile(self, trigger: str) -> None:
        """Fetch open and recent orders and positions, then apply the differences
        inside the engine task. At start-up, a failure fails closed. Never call it
        from the engine task itself: it waits for the engine task to apply."""
        assert self._reconcile_lock is not None
        if self._reconcile_lock.locked():
            return
        async with self._reconcile_lock:
            self.connectivity = _replace(self.connectivity, reconciling=True)
            self._dirty = True
            try:
                open_orders = await self.broker.list_orders(status="open")
                since = self._oldest_open_time()
                recent = await self.broker.list_orders(status="closed", after=since)
                positions = await self.broker.positions()
            except BrokerUnavailable as exc:
                self.connectivity = _replace(self.connectivity, reconciling=False)
                self._note("error", None, f"reconciliation ({trigger}) failed: {exc}")
                if not self.trading_ready:
                    self.not_ready_reason = f"venue unreachable for reconciliation: {exc}"
                    self._spawn(self._retry_reconcile(), "reconcile-retry")
                return
            lookups: dict[str, VenueOrder | None] = {}
            unaccounted: list[str] = []
            listed = {o.client_order_id for o in open_orders} | {o.client_order_id for o in recent}
            for o in self.open_orders():
                if o.status in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL) or o.client_order_id in listed:
                    continue
                try:
                    lookups[o.client_order_id] = await self.broker.lookup(o.client_order_id)
                except BrokerUnavailable as exc:
                    unaccounted.append(f"{o.client_order_id}: lookup failed ({exc})")
            done = asyncio.get_running_loop().create_future()

            def apply() -> None:
                try:
                    self._apply_reconciliation(trigger, open_orders + recent, positions, lookups, unaccounted)
                finally:
                    if not done.done():
                        done.set_result(None)
            self.post(_Callback(apply))
            await done

    async def _retry_reconcile(self) -> None:
        await asyncio.sleep(2.0)
        await self._reconcile("retry")

    def _oldest_open_time(self) -> datetime:
        oldest = datetime.now(timezone.utc) - timedelta(days=1)
        for o in self.open_orders():
            if o.created_at and o.created_at < oldest:
                oldest = o.created_at
        return oldest - timedelta(minutes=5)

    def _apply_reconciliation(self, trigger: str, venue_orders: list[VenueOrder], positions, lookups, unaccounted) -> None:
        plan = plan_reconciliation(self.book.orders, self.open_orders(), venue_orders, self.external)
        now = self.clock.now()
        for fill in plan.fills:
            order = self.book.get(fill.client_order_id)
            if order is not None:
                self._apply_fill(order, fill.execution_id, fill.qty, fill.price, now, source="reconcile")
        for cid, venue in plan.status_changes:
            self._apply_venue_status(cid, venue, source="reconcile")
        for venue in plan.external:
            self._see_external(venue, "reconciliation")
        open_ids = {v.id for v in venue_orders if v.status not in _FINAL_WORDS}
        for vid in [vid for vid in self.external if vid not in open_ids]:
            self.external.pop(vid, None)
            self._dirty_orders.add(_EXTERNAL)
        for cid, found in lookups.items():
            order = self.book.get(cid)
            if found is None and order is not None and order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
                # "not there yet" is not "never": a request on the wire (a slow venue, or
                # one sent just before a crash) may still land — ask again, with patience
                self._spawn(self._resolve_unknown(cid), "resolve-reconcile")
                continue
            self._on_resolved(_Resolved(cid, found))
        self._apply_positions(positions)
        self._journal(ev.ReconcileCompleted(
            ok=not unaccounted, unaccounted=unaccounted, trigger=trigger,
            counts={"venue_orders": len(venue_orders), "fills": len(plan.fills),
                    "status_changes": len(plan.status_changes), "external": len(self.external),
                    "looked_up": len(lookups)},
        ))
        self.connectivity = _replace(self.connectivity, reconciling=False)
        if unaccounted:
            self.trading_ready = False
            self.not_ready_reason = f"{len(unaccounted)} order(s) unaccounted for: " + "; ".join(unaccounted[:3])
            self._note("error", None, f"reconciliation ({trigger}): {self.not_ready_reason} — trading held (fail closed)")
            self._spawn(self._retry_reconcile(), "reconcile-retry")
        else:
            if not self.trading_ready:
                self._note("info", None, f"reconciliation ({trigger}): {len(venue_orders)} venue order(s), "
                                         f"{len(self.external)} external, {len(plan.fills)} missed fill(s) applied — trading ready")
            elif plan.fills or plan.status_changes:
                self._note("info", None, f"reconciliation ({trigger}): {len(plan.fills)} missed fill(s), "
                                         f"{len(plan.status_changes)} status change(s) applied")
            self.trading_ready = True
            self.not_ready_reason = ""
        self._check_kill_progress()

    def _see_external(self, venue: VenueOrder, where: str) -> None:
        if venue.status in _FINAL_WORDS:
            self.external.pop(venue.id, None)
            self._dirty_orders.add(_EXTERNAL)
            return
        known = venue.id in self.external
        self.external[venue.id] = venue
        self._dirty_orders.add(_EXTERNAL)
        if not known:
            self._note("order", venue.symbol, f"EXTERNAL order {venue.side} {_q(venue.qty)} {venue.symbol} "
                                              f"({venue.status}, {venue.client_order_id}) seen by {where}: shown, left alone")

    # ------------------------------------------------------------- the stream

    def _on_trade_update(self, upd: TradeUpdate) -> None:
        venue = upd.order
        order = self.book.get(venue.client_order_id)
        if order is None or order.external:
            self._see_external(venue, "the trade stream")
            return
        if upd.event in ("fill", "partial_fill") and upd.execution_id and upd.qty and upd.price is not None:
            # the venue's cumulative fill says whether this execution is new to us
            if order.filled_qty + upd.qty <= venue.filled_qty:
                self._apply_fill(order, upd.execution_id, upd.qty, upd.price, upd.timestamp, source="stream",
                                 status=venue.status)
        catch = catch_up_fill(order, venue)
        if catch is not None:
            self._apply_fill(order, catch.execution_id, catch.qty, catch.price, upd.timestamp, source="stream")
        self._apply_venue_status(order.client_order_id, venue, source="stream")

    def _apply_fill(self, order: Order, execution_id: str, qty: Decimal, price: Decimal, ts: datetime,
                    source: str, status: str | None = None) -> None:
        if self.book.has_execution(execution_id) or qty <= 0:
            return
        fill = Fill(execution_id=execution_id, client_order_id=order.client_order_id, symbol=order.symbol,
                    side=order.side, qty=qty, price=price, ts=ts)
        st = None
        if status is not None:
            try:
                st = OrderStatus(status)
            except ValueError:
                st = None
        event = ev.FillApplied(fill=fill, status=st)
        if not self._record(event):
            # the status in the event did not fit (reordered stream): apply the fill alone
            if st is None or not self._record(ev.FillApplied(fill=fill)):
                return
        self.portfolio.apply_fill(order.symbol, order.side, qty, price, order.client_order_id)
        self.stats.fills += 1
        self._after_status(order)
        self._note("fill", order.symbol, f"{order.side.value} {_q(qty)} {order.symbol} @ {_q(price)} "
                                         f"({_q(order.filled_qty)}/{_q(order.qty)})" + ("" if source == "stream" else f" [{source}]"))

    def _apply_venue_status(self, cid: str, venue: VenueOrder, source: str) -> None:
        order = self.book.get(cid)
        if order is None:
            return
        try:
            new = OrderStatus(venue.status)
        except ValueError:
            self._note("error", order.symbol, f"{cid}: venue status {venue.status!r} is not known")
            return
        if venue.filled_qty < order.filled_qty:
            # an older picture than the fills already applied (a REST answer overtaken by the
            # stream): keep the newer status, take only the venue id
            new = order.status
        if new == order.status and order.venue_order_id == venue.id:
            return
        event = ev.OrderStatusChanged(client_order_id=cid, status=new, source=source, venue_order_id=venue.id)
        if not self._record(event):
            return  # stale (reordered/duplicated) status: fills were applied from cumulative counts
        self._after_status(order)
        if new in (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.DONE_FOR_DAY):
            self._note("order", order.symbol, f"{new.value.upper()} {order.side.value} {_q(order.qty)} {order.symbol} "
                                              f"(filled {_q(order.filled_qty)}) [{source}]")

    def _after_status(self, order: Order) -> None:
        if order.status.is_final:
            self.portfolio.order_closed(order.client_order_id)
            self._check_kill_progress(order)

    # ---------------------------------------------------------------- market

    def _on_quote(self, q: VenueQuote) -> None:
        self.portfolio.on_quote(q.symbol, q.bid, q.ask, q.ts)
        if not self.trading_ready:
            return
        exit_ = stop_loss_exit(self.portfolio, q.symbol, assets=self.asset_flags, limits=self.limits)
        if exit_ is None:
            return
        if any(o.reduce_only and o.reason == "stop_loss" for o in self.book.open_orders(q.symbol)):
            return
        self._note("info", q.symbol, f"STOP crossed in {q.symbol}: reduce-only exit {exit_.side.value} {_q(exit_.qty)}")
        # other working orders in the symbol would block the exit (duplicate / wash trade)
        for o in self.book.open_orders(q.symbol):
            if not o.reduce_only and o.venue_order_id and not o.status.is_local:
                self._spawn(self._cancel_one(o.client_order_id, "stop loss"), "cancel-for-stop")
        self._aux_seq += 1
        self._create_intents([exit_], bar_seq=self.book.ledger.seq_for(self.last_bar_ts) if self.last_bar_ts else 0,
                             base_seq=_SEQ_STOP + self._aux_seq)
        self._flush_sends()

    def _on_bar(self, bar: VenueBar) -> None:
        self.bars.setdefault(bar.symbol, deque(maxlen=240)).append(bar)
        close = bar.ts + _MINUTE
        if self.latest_bar_close is None or close > self.latest_bar_close:
            self.latest_bar_close = close
        waiters, self._bar_waiters = self._bar_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(bar.ts)

    def _trip(self, trip) -> None:
        self.trip_cause = trip.cause
        if trip.state is TradingState.HALTED:
            self._kill_switch(f"automatic: {trip.cause.value}: {trip.detail}")
        else:
            self._set_state(trip.state, f"automatic: {trip.cause.value}: {trip.detail}")
            # working orders that add exposure are cancelled; reducing ones may stay
            for o in self.open_orders():
                if not o.reduce_only and o.venue_order_id and not o.status.is_local:
                    self._spawn(self._cancel_one(o.client_order_id, "REDUCING"), "cancel-reducing")

    def _on_connectivity(self, c: ConnectivityChanged) -> None:
        if c.channel in ("rest", "trade_stream", "market_data"):
            if getattr(self.connectivity, c.channel) == c.status and not c.reconnected:
                return
            self.connectivity = _replace(self.connectivity, **{c.channel: c.status},
                                         detail=c.detail or self.connectivity.detail)
        self._note("reconnect" if c.status == "up" else "error", None,
                   f"{c.channel.replace('_', ' ')} {c.status.upper()}" + (" (reconnected)" if c.reconnected else "")
                   + (f": {c.detail}" if c.detail else ""))
        if c.reconnected and c.channel == "trade_stream":
            self._spawn(self._reconcile("reconnect"), "reconcile-reconnect")
        if c.channel == "rest":
            trip = self.rules.venue_status(c.status != "down", time.monotonic(), self.state)
            if trip is not None:
                self._trip(trip)

    # ---------------------------------------------------------------- batches

    def _on_batch(self, batch: SignalBatch) -> None:
        for d in batch.dropped:
            self.stats.dropped[d.reason] = self.stats.dropped.get(d.reason, 0) + 1
            self._journal(ev.SignalDropped(symbol=d.symbol, line=str(d.line) if d.line is not None else None,
                                           reason=f"{d.reason}: {d.detail}"))
            what = d.symbol or (f"line {d.line}" if d.line is not None else "entry")
            self._note("dropped", d.symbol, f"DROPPED {what}: {d.reason} — {d.detail}")
        if getattr(batch, "rejected", False):
            return  # a refused line or batch is not a bar
        ledger = self.book.ledger
        if ledger.is_processed(batch.ts):
            self._note("info", None, f"batch {batch.ts.isoformat()} was already processed before the restart: skipped")
            return
        seq = ledger.seq_for(batch.ts)
        self.last_bar_ts = batch.ts
        # settle what the previous bar left: pending approvals expire; unfilled orders per policy
        for e in self.book.expire(_FAR_FUTURE):
            self._record_applied(e)
            o = self.book.get(e.client_order_id)
            if o is not None:
                self._note("denial", o.symbol, f"EXPIRED intent {o.side.value} {_q(o.qty)} {o.symbol} (next bar)")
        if self.settings.order_management.unfilled_policy == "cancel":
            for o in self.open_orders():
                if o.reason == "signal" and o.venue_order_id and o.bar_ts is not None and o.bar_ts < batch.ts \
                        and not o.status.is_local:
                    self._spawn(self._cancel_one(o.client_order_id, "unfilled at the next bar"), "cancel-unfilled")
        self._orders_this_bar = 0
        proposals = size_batch(batch.signals, self.portfolio, overrides=self.overrides, assets=self.asset_flags,
                               limits=self.limits)
        created = self._create_intents(proposals, bar_seq=seq, base_seq=0, bar_ts=batch.ts)
        # the batch's submits and its BatchProcessed leave the journal in one durable write
        self._flush_sends(also=[ev.BatchProcessed(bar_ts=batch.ts, batch_seq=seq, intents=created)])
        self.stats.batches += 1
        n_sig = len(batch.signals)
        self._note("info", None, f"bar {batch.ts.astimezone(_NY).strftime('%H:%M')}: {n_sig} signal(s), {created} intent(s)"
                                 + (f", {len(batch.dropped)} dropped" if batch.dropped else ""))
        if self.on_batch_done is not None:
            self.on_batch_done(batch)

    def _create_intents(self, proposals: Sequence[ProposedOrder], *, bar_seq: int, base_seq: int,
                        bar_ts: datetime | None = None) -> int:
        """Check every proposal; journal each intent; send what may go now, queue
        the rest for approval. The batch's submits leave after one durable write."""
        if self._deferred is None:
            self._deferred = []
        now = self.clock.now()
        om = self.settings.order_management
        to_send: list[tuple[Order, ProposedOrder]] = []
        beyond_bar: list[str] = []
        created = 0
        for i, p in enumerate(proposals):
            cid = make_client_order_id(self.session_id, bar_seq, p.symbol, base_seq + i)
            if cid in self.book:
                continue  # this batch created it before a restart: same ids, not again
            order = p.as_order(cid, time_in_force=TimeInForce(om.time_in_force), bar_ts=bar_ts, created_at=now)
            if p.purpose is not OrderPurpose.SIGNAL and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                order.time_in_force = TimeInForce.DAY
            denial = self._check(p, now)
            if not self._record(ev.IntentCreated(order=order, batch_seq=bar_seq)):
                return created
            created += 1
            self.stats.intents += 1
            if denial is not None:
                # past max_orders_per_bar: journaled one by one, said once in the log
                beyond = denial.reason is DenialReason.MAX_ORDERS_PER_BAR_EXCEEDED
                self._deny(cid, p, denial, quiet=beyond)
                if beyond:
                    beyond_bar.append(p.symbol)
                continue
            if p.purpose is OrderPurpose.SIGNAL:
                self._orders_this_bar += 1
            skip = (p.purpose is OrderPurpose.STOP_LOSS and self.settings.risk_management.stop_loss_skips_approval) \
                or p.purpose is OrderPurpose.FLATTEN
            if skip or self.auto_approve or self._mode(p.symbol) is RolloutMode.AUTO:
                # counts as working for the checks of the next proposal
                self.portfolio.order_opened(cid, p.symbol, p.side, p.qty, p.limit_price, p.reduce_only)
                to_send.append((self.book.get(cid), p))
            else:
                expires = now + timedelta(seconds=self.settings.rollout.approval_timeout)
                self._record(ev.ApprovalRequested(client_order_id=cid, expires_at=expires))
        if beyond_bar:
            self._note("denial", None, f"DENIED {len(beyond_bar)} smaller change(s) past max_orders_per_bar = "
                                       f"{om.max_orders_per_bar} (MAX_ORDERS_PER_BAR_EXCEEDED): {', '.join(beyond_bar)}")
        self._pending_send.extend(o for o, _ in to_send)
        return created

    def _mode(self, symbol: str) -> RolloutMode:
        ov = self.overrides.get(symbol)
        if ov is not None and ov.mode is not None:
            return ov.mode
        return self.settings.rollout.default_mode

    def _check(self, p: ProposedOrder, now: datetime, at_approval: bool = False) -> Denial | None:
        if not self.trading_ready and not (p.purpose is OrderPurpose.FLATTEN):
            return Denial(DenialReason.TRADING_HALTED, f"trading not ready: {self.not_ready_reason}")
        ctx = CheckContext(
            now=now,
            market_open=self.clock.market_open(),
            trading_state=self.state,
            state_cause=self.trip_cause,
            overrides=self.overrides,
            orders_this_bar=self._orders_this_bar,
            at_approval=at_approval,
            wall_now=self._rate_now(),
        )
        return self.risk.check(self.portfolio, p, ctx)

    def _deny(self, cid: str, p: ProposedOrder, denial: Denial, quiet: bool = False) -> None:
        self._record(ev.IntentDenied(client_order_id=cid, reason=denial.reason, detail=denial.detail))
        self.stats.denials[denial.reason.value] = self.stats.denials.get(denial.reason.value, 0) + 1
        if not quiet:
            self._note("denial", p.symbol, f"DENIED {p.side.value} {_q(p.qty)} {p.symbol}: {denial.reason.value} — {denial.detail}")

    # -------------------------------------------------------------- submitting

    def _flush_sends(self, also: Sequence[Any] = ()) -> None:
        """Send what _create_intents queued (and journal `also` with it)."""
        orders, self._pending_send = self._pending_send, []
        self._send(orders, also)
        self._deferred = None

    def _send(self, orders: list[Order], also: Sequence[Any] = ()) -> None:
        """Journal every SubmitSent (and `also`, e.g. the batch's BatchProcessed)
        durably — one fsync for the lot — then send."""
        if not orders and not also and not self._deferred:
            return
        now = self.clock.now()
        sent = [ev.SubmitSent(client_order_id=o.client_order_id, at=now) for o in orders]
        deferred, self._deferred = self._deferred or [], None
        events = [*deferred, *sent, *also]
        for e in (*sent, *also):
            self.book.check(e)
        if self._journal_failed:
            return
        try:
            self.journal.append_many(events, durable=True)
        except JournalError as exc:
            self._journal_broken(exc)
            for o in orders:
                self.portfolio.order_closed(o.client_order_id)
            return
        for e in also:
            self.book.apply(e)
        wall = self._rate_now()
        for e, o in zip(sent, orders):
            self.book.apply(e)
            self._dirty_orders.add(o.client_order_id)
            self.risk.record_submit(wall)
            self.stats.submits += 1
            self._spawn(self._submit_task(o), "submit")

    async def _submit_task(self, order: Order) -> None:
        extended = (order.reason == "flatten" and order.order_type is OrderType.LIMIT
                    and order.time_in_force is TimeInForce.DAY and not self.clock.market_open())
        req = SubmitRequest(
            client_order_id=order.client_order_id, symbol=order.symbol, side=order.side.value, qty=order.qty,
            order_type=order.order_type.value, time_in_force=order.time_in_force.value,
            limit_price=order.limit_price, extended_hours=extended,
        )
        t0 = time.perf_counter()
        outcome = await self.broker.submit(req)
        assert self._inbox is not None
        self._inbox.put_nowait(_Submitted(order.client_order_id, outcome, (time.perf_counter() - t0) * 1000))

    def _on_submitted(self, item: _Submitted) -> None:
        order = self.book.get(item.client_order_id)
        if order is None:
            return
        out = item.outcome
        if out.kind == "acked" and out.order is not None:
            self._acked(order, out.order, "rest")
        elif out.kind == "rejected":
            if self._record(ev.SubmitRejected(client_order_id=order.client_order_id, http_status=out.http_status,
                                              code=out.code, message=out.message)):
                self.portfolio.order_closed(order.client_order_id)
                self._check_kill_progress()
            self._note("order", order.symbol, f"REJECTED by the venue: {order.side.value} {_q(order.qty)} {order.symbol}: {out.message}")
        elif out.http_status == 429:
            # Refused for the rate before anything happened at the venue: looked up
            # first, then sent again under the same client_order_id (the venue would
            # refuse a duplicate) once the limiter allows.
            self._record(ev.SubmitUnknown(client_order_id=order.client_order_id, cause=f"rate limited (429): {out.message}"))
            self._note("error", order.symbol, f"{order.client_order_id} refused for the rate (429): "
                                              "will look it up, then send it again under the same id")
            self._spawn(self._after_throttle(order.client_order_id, self._throttled.get(order.client_order_id, 0)),
                        "after-429")
        else:
            self._record(ev.SubmitUnknown(client_order_id=order.client_order_id, cause=out.message or "unknown"))
            self._note("error", order.symbol, f"submit outcome unknown for {order.client_order_id} ({out.message}): "
                                              "looking it up by client_order_id, never resending")
            self._spawn(self._resolve_unknown(order.client_order_id), "resolve")

    async def _after_throttle(self, cid: str, attempt: int) -> None:
        await asyncio.sleep(min(0.5 * 2 ** attempt, 10.0))
        try:
            found = await self.broker.lookup(cid)
        except BrokerUnavailable:
            self._spawn(self._resolve_unknown(cid), "resolve")
            return
        if found is not None:
            self.post(_Resolved(cid, found))
            return
        self.post(_Callback(lambda: self._resend_after_throttle(cid, attempt + 1)))

    def _resend_after_throttle(self, cid: str, attempt: int) -> None:
        order = self.book.get(cid)
        if order is None or order.status is not OrderStatus.UNKNOWN:
            return
        if self.state is TradingState.HALTED or attempt > 5:
            why = "trading HALTED" if self.state is TradingState.HALTED else f"still rate limited after {attempt - 1} tries"
            if self._record(ev.SubmitRejected(client_order_id=cid, http_status=429,
                                              message=f"not sent: refused for the rate, then {why}")):
                self.portfolio.order_closed(cid)
            self._note("order", order.symbol, f"{cid} not sent: refused for the rate (429), then {why}")
            return
        self._throttled[cid] = attempt
        if not self._journal(ev.SubmitUnknown(client_order_id=cid, cause=f"sending again after 429 (try {attempt + 1}); "
                                                                      "lookup: not at the venue"), durable=True):
            return
        self._spawn(self._submit_task(order), "resubmit")

    def _acked(self, order: Order, venue: VenueOrder, source: str) -> None:
        try:
            status = OrderStatus(venue.status)
        except ValueError:
            status = OrderStatus.NEW
        if order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
            if self._record(ev.SubmitAcked(client_order_id=order.client_order_id, venue_order_id=venue.id, status=status)):
                order.acked_at = datetime.now(timezone.utc)
        catch = catch_up_fill(order, venue)
        if catch is not None:
            self._apply_fill(order, catch.execution_id, catch.qty, catch.price, self.clock.now(), source=source)
        self._apply_venue_status(order.client_order_id, venue, source=source)
        self._after_status(order)

    async def _resolve_unknown(self, cid: str) -> None:
        """Ask the venue by client_order_id until it says yes or no. 'No' is only
        believed after twice the request timeout, so a slow request cannot land
        after we declared it absent."""
        if cid in self._resolving:
            return
        self._resolving.add(cid)
        try:
            delay = 0.1
            loop = asyncio.get_running_loop()
            absent_since: float | None = None
            patience = 2 * self.settings.broker.request_timeout
            while True:
                try:
                    found = await self.broker.lookup(cid)
                    unavailable = False
                except BrokerUnavailable:
                    found, unavailable = None, True
                if found is not None:
                    self.post(_Resolved(cid, found))
                    return
                if not unavailable:
                    absent_since = absent_since if absent_since is not None else loop.time()
                    if loop.time() - absent_since >= patience:
                        self.post(_Resolved(cid, None))
                        return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            self._resolving.discard(cid)

    def _on_resolved(self, item: _Resolved) -> None:
        order = self.book.get(item.client_order_id)
        if order is None:
            return
        if item.order is not None:
            self._acked(order, item.order, "lookup")
        elif order.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
            if self._record(ev.SubmitRejected(client_order_id=order.client_order_id,
                                              message="never reached the venue (lookup by client_order_id: not found)")):
                self.portfolio.order_closed(order.client_order_id)
            self._note("order", order.symbol, f"{order.client_order_id} never reached the venue (lookup: not found)")

    async def _cancel_one(self, cid: str, cause: str) -> None:
        order = self.book.get(cid)
        if order is None or order.venue_order_id is None or order.status.is_final:
            return
        self.post(_Callback(lambda: self._journal(ev.CancelRequested(client_order_id=cid, cause=cause))))
        if cid in self._cancelling:
            return  # already being asked, until the venue answers
        self._cancelling.add(cid)
        try:
            # a cancel whose outcome is unknown is asked again (cancels are safe to
            # repeat) until the venue answers or the order is final
            delay = 0.5
            while True:
                out = await self.broker.cancel(order.venue_order_id)
                if out.kind != "unknown" or order.status.is_final:
                    return
                self.post(_Callback(lambda out=out: self._note(
                    "error", order.symbol, f"cancel of {cid}: outcome unknown ({out.message}): asking again")))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                if order.status.is_final:
                    return
        finally:
            self._cancelling.discard(cid)

    # ----------------------------------------------------------------- approvals

    def _proposal_of(self, order: Order) -> ProposedOrder:
        return ProposedOrder(
            symbol=order.symbol, side=order.side, qty=order.qty, limit_price=order.limit_price,
            decision_price=order.decision_price or Decimal(0), signal=order.signal, reduce_only=order.reduce_only,
            purpose=OrderPurpose(order.reason or "signal"),
        )

    def _approve(self, cid: str, by: str = "operator") -> CommandResult:
        order = self.book.get(cid)
        if order is None or order.status is not OrderStatus.AWAITING_APPROVAL:
            return CommandResult(False, f"no intent {cid} is awaiting approval")
        now = self.clock.now()
        try:
            event = self.book.approve(cid, by=by, now=now)
        except OrderBookError as exc:
            return CommandResult(False, str(exc))
        self._record_applied(event)
        p = self._proposal_of(order)
        denial = self._check(p, now, at_approval=True)  # again, at current prices
        if denial is not None:
            self._deny(cid, p, denial)
            return CommandResult(False, f"denied at current prices: {denial.reason.value} — {denial.detail}")
        self.portfolio.order_opened(cid, p.symbol, p.side, p.qty, p.limit_price, p.reduce_only)
        self._send([order])
        self._note("order", order.symbol, f"APPROVED {order.side.value} {_q(order.qty)} {order.symbol} by {by}")
        return CommandResult(True, f"approved {order.side.value} {_q(order.qty)} {order.symbol}", 1)

    def _reject(self, cid: str, by: str = "operator", detail: str = "") -> CommandResult:
        order = self.book.get(cid)
        if order is None or order.status is not OrderStatus.AWAITING_APPROVAL:
            return CommandResult(False, f"no intent {cid} is awaiting approval")
        self._record_applied(self.book.reject(cid, by=by, detail=detail))
        self._note("denial", order.symbol, f"REJECTED by {by}: {order.side.value} {_q(order.qty)} {order.symbol}")
        return CommandResult(True, f"rejected {order.side.value} {_q(order.qty)} {order.symbol}", 1)

    # ----------------------------------------------------------------- commands

    async def _on_command(self, cmd: Command) -> CommandResult:
        if isinstance(cmd, Halt):
            return self._kill_switch(f"kill switch: {cmd.cause}")
        if isinstance(cmd, (ApproveIntent, ApproveAll)) and self.state is TradingState.HALTED:
            return CommandResult(False, "HALTED: approvals are disabled until resume")
        if isinstance(cmd, ApproveIntent):
            return self._approve(cmd.intent_id)
        if isinstance(cmd, RejectIntent):
            return self._reject(cmd.intent_id)
        if isinstance(cmd, ApproveAll):
            results = [self._approve(o.client_order_id) for o in self.book.awaiting_approval]
            ok = sum(r.ok for r in results)
            return CommandResult(ok == len(results), f"approved {ok} of {len(results)}", ok)
        if isinstance(cmd, RejectAll):
            results = [self._reject(o.client_order_id) for o in self.book.awaiting_approval]
            return CommandResult(True, f"rejected {len(results)}", len(results))
        if isinstance(cmd, CancelOrder):
            order = self.book.get(cmd.client_order_id)
            if order is None or order.status.is_final or order.venue_order_id is None:
                return CommandResult(False, f"no working order {cmd.client_order_id}")
            self._spawn(self._cancel_one(cmd.client_order_id, "operator"), "cancel")
            return CommandResult(True, f"cancel sent for {cmd.client_order_id}", 1)
        if isinstance(cmd, Resume):
            if self.state is TradingState.ACTIVE:
                return CommandResult(False, "already ACTIVE")
            if self._journal_failed:
                return CommandResult(False, "the journal cannot be written: cannot resume")
            self.rules.reset()
            self.trip_cause = None
            self._set_state(TradingState.ACTIVE, f"resumed by {cmd.cause}")
            return CommandResult(True, "ACTIVE")
        if isinstance(cmd, SetOverride):
            return self._set_override(cmd)
        return CommandResult(False, f"unknown command {type(cmd).__name__}")

    def _set_override(self, cmd: SetOverride) -> CommandResult:
        if cmd.symbol not in self.universe:
            return CommandResult(False, f"unknown symbol {cmd.symbol!r}")
        if cmd.clear:
            override = None
        else:
            try:
                override = SymbolOverride(mode=cmd.mode, max_position_usd=cmd.max_position_usd,
                                          max_position_pct=cmd.max_position_pct,
                                          size_multiplier=cmd.size_multiplier, side=cmd.side)
            except Exception as exc:  # pydantic ValidationError: say which field
                return CommandResult(False, f"invalid override for {cmd.symbol}: {_first_error(exc)}")
        if not self._journal(ev.OverrideSet(symbol=cmd.symbol, override=override), durable=True):
            return CommandResult(False, "the journal cannot be written: override not applied")
        if override is None:
            self.overrides.pop(cmd.symbol, None)
            desc = "cleared"
        else:
            self.overrides[cmd.symbol] = override
            desc = ", ".join(f"{k}={v}" for k, v in override.model_dump(exclude_none=True, mode="json").items()) or "no fields"
        self._note("info", cmd.symbol, f"OVERRIDE {cmd.symbol}: {desc}")
        return CommandResult(True, f"override {cmd.symbol}: {desc}")

    def _set_state(self, state: TradingState, cause: str) -> None:
        prev = self.state
        if prev is state and self.state_cause == cause:
            return
        self.state, self.state_cause = state, cause
        self._journal(ev.TradingStateChanged(state=state, cause=cause, previous=prev), durable=True)
        self._note("state", None, f"{prev.value} -> {state.value}: {cause}")
        self._publish()

    def _kill_switch(self, cause: str) -> CommandResult:
        """HALTED at once; pending intents dropped; one cancel-all to the venue,
        tracked until the venue has confirmed every cancel."""
        if self.state is not TradingState.HALTED:
            if not cause.startswith("automatic"):
                self.trip_cause = TripCause.OPERATOR
            self._set_state(TradingState.HALTED, cause)
        for order in list(self.book.awaiting_approval):
            self._record_applied(self.book.reject(order.client_order_id, by="kill switch", detail="trading halted"))
        self.kill = KillSwitchStatus(phase="requested", requested_at=self.clock.now(), detail=cause)
        self._journal(ev.KillSwitch(phase="requested", detail=cause), durable=True)
        self._note("kill", None, "KILL SWITCH: HALTED, cancel-all sent to the venue")
        self._publish()
        self._spawn(self._cancel_all_task(), "kill-cancel-all")
        return CommandResult(True, "HALTED: cancel-all sent to the venue")

    async def _cancel_all_task(self, attempt: int = 0) -> None:
        out = await self.broker.cancel_all()

        def apply() -> None:
            if not out.ok:
                self.kill = _replace(self.kill, phase="failed", detail=f"cancel-all failed: {out.message}")
                self._note("error", None, f"kill switch: cancel-all failed ({out.message}): retrying")
                self._spawn(self._retry_cancel_all(attempt + 1), "kill-retry")
                return
            ids = {vid for vid, status in out.results if 200 <= status < 300}
            self._kill_ids |= ids
            self._kill_open |= ids
            refused = len(out.results) - len(ids)
            self.kill = _replace(self.kill, phase="sent", cancels_requested=len(self._kill_ids))
            self._journal(ev.KillSwitch(phase="sent", counts={"requested": len(ids), "refused": refused}))
            self._note("kill", None, f"kill switch: the venue took {len(ids)} cancel(s)"
                                     + (f", refused {refused}" if refused else ""))
            self._check_kill_progress()
            if self.kill.phase == "sent":
                self._spawn(self._kill_poll(), "kill-poll")
        self.post(_Callback(apply))

    async def _retry_cancel_all(self, attempt: int) -> None:
        await asyncio.sleep(min(0.25 * attempt, 2.0))
        await self._cancel_all_task(attempt)

    async def _kill_poll(self) -> None:
        """The stream may be down: ask the venue until every cancel is confirmed."""
        delay = 0.25
        while self.kill.phase == "sent":
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            try:
                open_orders = await self.broker.list_orders(status="open")
            except BrokerUnavailable:
                continue
            open_ids = {o.id for o in open_orders}
            self.post(_Callback(lambda open_ids=open_ids: self._kill_seen_open(open_ids)))

    def _kill_seen_open(self, open_ids: set[str]) -> None:
        if self.kill.phase != "sent":
            return
        self._kill_open &= open_ids
        confirmed = sum(1 for vid in self._kill_ids if vid not in open_ids)
        if confirmed >= len(self._kill_ids):
            self._finish_kill()
        elif confirmed > self.kill.cancels_confirmed:
            self.kill = _replace(self.kill, cancels_confirmed=confirmed)
        if confirmed >= len(self._kill_ids) or confirmed:
            self._spawn(self._reconcile("kill switch"), "reconcile-kill")

    def _check_kill_progress(self, order: Order | None = None) -> None:
        """Count the kill switch's confirmed cancels. Given `order` (it just became
        final), only that order is looked at: a stream of n cancels costs O(n), not
        O(n^2). Without, every cancel still awaited is checked (timers, reconciliation)."""
        if self.kill.phase != "sent":
            return
        pending = self._kill_open
        if order is not None:
            if order.venue_order_id not in pending:
                return
            pending.discard(order.venue_order_id)
        else:
            for vid in list(pending):
                o = self.book.by_venue_id(vid)
                if (o is None and vid not in self.external) or (o is not None and o.status.is_final):
                    pending.discard(vid)
        confirmed = len(self._kill_ids) - len(pending)
        if confirmed > self.kill.cancels_confirmed:
            self.kill = _replace(self.kill, cancels_confirmed=confirmed)
        if confirmed >= len(self._kill_ids):
            self._finish_kill()

    def _finish_kill(self) -> None:
        n = len(self._kill_ids)
        self._kill_open.clear()
        self.kill = _replace(self.kill, phase="confirmed", cancels_confirmed=n, detail=f"venue confirmed {n} cancels")
        self._journal(ev.KillSwitch(phase="confirmed", counts={"confirmed": n}))
        self._note("kill", None, f"kill switch: venue confirmed {n} cancels")
        self._publish()

    async def _flatten(self, cause: str, future: asyncio.Future) -> None:
        """Operator-confirmed: cancel what is working, then one reduce-only order per
        position — limit orders with extended hours when the market is closed (the
        only kind Alpaca takes then), marketable limits or market orders when open.
        Runs as a task of its own: the engine keeps applying events while it waits
        for the venue; the closing orders are created inside the engine task."""

        def answer(result: CommandResult) -> None:
            if not future.done():
                future.set_result(result)

        if not self.portfolio.positions:
            answer(CommandResult(True, "no positions to flatten"))
            return
        self._note("kill", None, f"FLATTEN ({cause}): cancelling open orders first")
        out = await self.broker.cancel_all()
        if not out.ok:
            answer(CommandResult(False, f"flatten: cancel-all failed ({out.message}); nothing sent"))
            return
        # wait (briefly) for the venue to confirm the cancels before closing
        for _ in range(40):
            try:
                still = await self.broker.list_orders(status="open")
            except BrokerUnavailable:
                still = []
            if not [o for o in still if o.symbol in self.portfolio.positions]:
                break
            await asyncio.sleep(0.1)
        await self._reconcile("flatten")

        def close_positions() -> None:
            proposals = flatten_orders(self.portfolio, assets=self.asset_flags, limits=self.limits)
            self._journal(ev.KillSwitch(phase="flatten", counts={"positions": len(proposals)}, detail=cause),
                          durable=True)
            self._aux_seq += 1
            bar_seq = self.book.ledger.seq_for(self.last_bar_ts) if self.last_bar_ts else 0
            denials_before = sum(self.stats.denials.values())
            self._create_intents(proposals, bar_seq=bar_seq, base_seq=_SEQ_FLATTEN + 100 * (self._aux_seq % 20))
            sent = len(self._pending_send)
            self._flush_sends()
            denied = sum(self.stats.denials.values()) - denials_before
            text = f"flatten: {sent} closing order(s) sent for {len(proposals)} position(s)" + (
                f", {denied} denied (see the event log)" if denied else "")
            self._note("kill", None, f"FLATTEN ({cause}): {text}")
            answer(CommandResult(denied == 0, text, sent))

        self.post(_Callback(close_positions))

    # ----------------------------------------------------------------- events

    def _note(self, kind: str, symbol: str | None, text: str) -> None:
        self._event_seq += 1
        row = EventRow(seq=self._event_seq, ts=self.clock.now(), kind=kind, symbol=symbol, text=text)
        self._events.append(row)
        if self._log_sink is not None:
            try:
                self._log_sink(row)
            except Exception:  # pragma: no cover
                pass
        self._dirty = True

    # --------------------------------------------------------------- snapshots

    async def _publisher(self) -> None:
        interval = 1.0 / max(1.0, min(20.0, self.settings.console.max_fps * 2))
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                self._publish()

    def _publish(self) -> None:
        self._dirty = False
        self._snap_seq += 1
        p = self.portfolio
        now = self.clock.now()
        metrics = p.metrics(overrides=self.overrides, rate=self.risk.rate, now=self._rate_now(),
                            orders_this_bar=self._orders_this_bar)
        overrides = {
            s: OverrideRow(s, o.mode.value if o.mode else None, o.max_position_usd, o.max_position_pct,
                           o.size_multiplier, o.side.value if o.side else None)
            for s, o in self.overrides.items()
        }
        orders = self._order_rows()
        snap = EngineSnapshot(
            seq=self._snap_seq,
            session_id=self.session_id,
            mode="LIVE" if self.settings.is_live else "PAPER",
            venue=self.venue_kind,
            account_number=self.account_number,
            equity=p.equity.quantize(Decimal("0.01")),
            last_equity=p.last_equity,
            cash=p.cash,
            buying_power=p.buying_power,
            day_pl=p.daily_pnl.quantize(Decimal("0.01")),
            daily_loss_limit=metrics.daily_loss_limit.quantize(Decimal("0.01")),
            trading_state=self.state,
            state_cause=self.state_cause,
            connectivity=self.connectivity,
            venue_time=now,
            market_open=self.clock.market_open(),
            last_bar_ts=self.last_bar_ts,
            bars_processed=self.stats.batches,
            intents=MappingProxyType(self._intent_rows()),
            orders=MappingProxyType(orders),
            positions=MappingProxyType(self._position_rows(metrics)),
            overrides=MappingProxyType(overrides),
            limits=metrics.as_limit_usages(),
            gross_exposure=metrics.gross_exposure,
            net_exposure=metrics.net_exposure,
            pl_history=tuple(self._pl_history),
            events=tuple(self._events)[-200:],
            kill_switch=self.kill,
            trading_ready=self.trading_ready,
            not_ready_reason=self.not_ready_reason,
            open_order_count=sum(1 for r in orders.values() if not r.external),
            external_order_count=len(self.external),
        )
        self._snapshot = snap
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:  # pragma: no cover
                log.exception("snapshot listener failed")

    def _order_rows(self) -> dict[str, OrderRow]:
        """Working orders as rows, rebuilt only where an order changed since the last
        snapshot (O(changes), not O(open orders)); unchanged rows are the same objects."""
        dirty, self._dirty_orders = self._dirty_orders, set()
        if not self._rows_complete:
            rows: dict[str, OrderRow] = {}
            for o in self.book.iter_open():
                self._order_row(rows, o.client_order_id)
            self._rows_complete = True
            dirty = {_EXTERNAL}
        else:
            rows = dict(self._rows_orders)
            for cid in dirty:
                if cid != _EXTERNAL:
                    self._order_row(rows, cid)
        if _EXTERNAL in dirty:
            for key in [k for k in rows if k.startswith("ext:")]:
                del rows[key]
            for vid, v in self.external.items():
                rows[f"ext:{vid}"] = OrderRow(
                    client_order_id=v.client_order_id, venue_order_id=v.id, symbol=v.symbol, side=v.side,
                    qty=v.qty or Decimal(0), filled_qty=v.filled_qty, filled_avg_price=v.filled_avg_price,
                    limit_price=v.limit_price, order_type=v.order_type, status=v.status,
                    submitted_at=v.submitted_at, external=True,
                )
        self._rows_orders = rows
        return rows

    def _order_row(self, rows: dict[str, OrderRow], cid: str) -> None:
        o = self.book.get(cid)
        if o is None or o.external or o.status.is_final or o.status in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL):
            rows.pop(cid, None)
            return
        old = rows.get(cid)
        if (old is not None and old.status == o.status.value and old.filled_qty == o.filled_qty
                and old.venue_order_id == o.venue_order_id):
            return
        rows[cid] = OrderRow(
            client_order_id=o.client_order_id, venue_order_id=o.venue_order_id, symbol=o.symbol,
            side=o.side.value, qty=o.qty, filled_qty=o.filled_qty, filled_avg_price=o.filled_avg_price,
            limit_price=o.limit_price, order_type=o.order_type.value, status=o.status.value,
            submitted_at=o.submitted_at,
        )

    def _intent_rows(self) -> dict[str, IntentRow]:
        rows: dict[str, IntentRow] = {}
        cache = self._rows_intents
        for o in self.book.awaiting_approval:
            old = cache.get(o.client_order_id)
            if old is not None:
                rows[o.client_order_id] = old
                continue
            price = o.limit_price or o.decision_price or Decimal(0)
            rows[o.client_order_id] = IntentRow(
                intent_id=o.client_order_id, symbol=o.symbol, side=o.side.value, qty=o.qty,
                limit_price=o.limit_price, notional=(price * o.qty).quantize(Decimal("0.01")), signal=o.signal,
                verdict="ok", verdict_detail="passed the pre-trade checks", expires_at=o.expires_at,
                reason=o.reason or "signal",
            )
        self._rows_intents = rows
        return rows

    def _position_rows(self, metrics) -> dict[str, PositionRow]:
        rows: dict[str, PositionRow] = {}
        cache = self._rows_positions
        cent = Decimal("0.01")
        for pr in metrics.positions:
            override = pr.symbol in self.overrides
            old = cache.get(pr.symbol)
            if (old is not None and old.qty == pr.qty and old.last_price == pr.mark
                    and old.avg_entry_price == pr.avg_entry_price and old.override == override):
                rows[pr.symbol] = old
                continue
            rows[pr.symbol] = PositionRow(
                symbol=pr.symbol, qty=pr.qty, avg_entry_price=pr.avg_entry_price.quantize(Decimal("0.0001")),
                last_price=pr.mark, market_value=pr.market_value.quantize(cent),
                unrealized_pl=pr.unrealized_pl.quantize(cent), share_of_equity=float(pr.share_of_equity),
                stop_price=pr.stop_price.quantize(cent) if pr.stop_price is not None else None, override=override,
            )
        self._rows_positions = rows
        return rows


class EngineMarketView:
    """What signal sources see of the market (engine.signals.MarketView)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._last: datetime | None = None  # the close returned last

    def now(self) -> datetime:
        return self._engine.clock.now()

    def symbols(self) -> frozenset[str]:
        e = self._engine
        return frozenset(s for s in e.symbols if e.asset_flags.get(s) is None or e.asset_flags[s].tradable)

    def bars(self, symbol: str, n: int) -> Sequence[Bar]:
        dq = self._engine.bars.get(symbol)
        if not dq:
            return []
        return [Bar(ts=b.ts, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
                for b in list(dq)[-n:]]

    def quotes(self) -> Mapping[str, Quote]:
        out = {}
        for sym, b in self._engine.portfolio.books.items():
            if b.quote_ok and b.quote_ts is not None:
                out[sym] = Quote(bid=b.bid, ask=b.ask, ts=b.quote_ts)
        return out

    async def next_bar(self) -> datetime:
        """The close of the next bar (session.bar_interval) on the venue clock. It
        returns once the venue's minute bars up to that close have arrived on the
        data stream or, when the stream is quiet, once a running venue clock has
        passed it. The first call returns at once with the last close when the clock
        runs and bar history is there, so signal models trade from the first seconds
        of a session instead of after its first bar."""
        e = self._engine
        interval = timedelta(seconds=e.settings.session.bar_interval)
        now = e.clock.now()
        if self._last is None and e.clock.speed > 0 and any(e.bars.values()):
            self._last = _floor(now, interval)
            return self._last
        ref = now if self._last is None else max(now, self._last)
        boundary = _floor(ref, interval) + interval
        loop = asyncio.get_running_loop()
        while e.latest_bar_close is None or e.latest_bar_close < boundary:
            if e.clock.speed > 0 and e.clock.now() >= boundary + _QUIET_STREAM_GRACE:
                break  # the stream is quiet: the venue clock says the bar closed
            fut = loop.create_future()
            e._bar_waiters.append(fut)
            remaining = max((boundary + _QUIET_STREAM_GRACE - e.clock.now()).total_seconds(), 0.0)
            try:
                await asyncio.wait_for(fut, timeout=e.clock.wall_seconds(remaining) + 0.5)
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(0.05)  # the rest of that minute's bars arrive together
        self._last = boundary
        return boundary


_QUIET_STREAM_GRACE = timedelta(seconds=2)


def _floor(ts: datetime, interval: timedelta) -> datetime:
    step = interval.total_seconds()
    return datetime.fromtimestamp((ts.timestamp() // step) * step, tz=timezone.utc)


def _q(value: Decimal | None) -> str:
    if value is None:
        return "-"
    s = format(value.normalize(), "f")
    return s


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
        except Exception:  # pragma: no cover
            pass
    return str(exc)


def _trip_cause_of(cause: str) -> TripCause:
    for c in TripCause:
        if c.value in cause:
            return c
    return TripCause.OPERATOR


try:
    from zoneinfo import ZoneInfo

    _NY = ZoneInfo("America/New_York")
except Exception:  # pragma: no cover
    _NY = timezone.utc
