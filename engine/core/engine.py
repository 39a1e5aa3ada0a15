"""The Engine: the one owner of trading state, its inbox, its dispatch table,
its timers, start and stop.

One asyncio task applies every change in order: commands from front ends,
results of broker calls, stream traffic, signal batches and timers all arrive on
the inbox, and each message type has one handler (the table in `Engine.__init__`).
The inbox (engine.core.inbox) has lanes: the kill switch before every other
command, commands before broker results, results before signal batches; the task
yields to the loop at least every YIELD_AFTER seconds, so the control socket is
read even while a backlog is worked off.
Broker I/O runs in tasks (and the broker's worker threads) that post a typed
result (engine.core.messages) back to the inbox; nothing else mutates state.
The work itself lives in the parts: recorder (check -> journal -> apply, and the
portfolio's projection), intents, submits, lifecycle, sync, halt, publish."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from engine import events as ev
from engine.broker.base import (
    Broker,
    CancelAllOutcome,
    ConnectivityChanged,
    RateLimitChanged,
    RequestFailed,
    StreamError,
    StreamSubscribed,
    TradeUpdate,
    VenueBar,
    VenueOrder,
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
    QueryHistory,
    RejectAll,
    RejectIntent,
    Resume,
    SetOverride,
)
from engine.config import Settings, SymbolOverride
from engine.core import messages as msg
from engine.core.common import MINUTE
from engine.core.halt import Halting
from engine.core.heap import HeapPolicy
from engine.core.history import History
from engine.core.inbox import Inbox, Lane
from engine.core.intents import Intents
from engine.core.lifecycle import Lifecycle
from engine.core.market_view import EngineMarketView
from engine.core.observe import EngineObserver
from engine.core.publish import Publisher
from engine.core.quotes import MarketData, QuotesPolled
from engine.core.recorder import Recorder
from engine.core.submits import Submits
from engine.core.sync import VenueSync
from engine.core.trade_watch import TradeStreamWatch
from engine.journal import Journal, JournalError
from engine.model import Order, OrderStatus, Side, TradingState
from engine.orders import OrderBook
from engine.portfolio import Portfolio, RiskLimits
from engine.risk import PreTradeRisk, TradingStateRules, TripCause
from engine.signals import SignalBatch
from engine.sizing import AssetFlags
from engine.snapshot import Connectivity, EngineSnapshot, EventRow, KillSwitchStatus
from engine.universe import Universe

log = logging.getLogger("execdesk.engine")

YIELD_AFTER = 0.002  # seconds of work on the inbox before the engine task lets the loop run


@dataclass
class EngineStats:
    batches: int = 0
    intents: int = 0
    submits: int = 0
    fills: int = 0
    denials: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # signal batches of a backlog superseded before they were acted on


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
        observers: Sequence[EngineObserver] = (),
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
        self.external: dict[str, VenueOrder] = {}  # venue id -> order the engine did not create
        self.session_id = ""
        self.account_number = ""
        self.last_bar_ts: datetime | None = None
        self.trading_ready = False
        self.not_ready_reason = "starting"
        self.connectivity = Connectivity()
        self.kill = KillSwitchStatus()
        self.stats = EngineStats()
        self.bars: dict[str, deque[VenueBar]] = {}
        self.bar_waiters: list[asyncio.Future] = []
        self.latest_bar_close: datetime | None = None  # close of the newest minute bar from the stream
        self.observers: list[EngineObserver] = list(observers)  # engine.core.observe
        self.stopping = False
        self.running = False  # the engine task takes items off its inbox (Engine.start)
        self.sealed = False  # the journal's session was sealed by stop()
        self.seal_error = ""  # why it could not be, if it could not
        self._inbox: Inbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0  # threading.get_ident() of the thread running _loop
        self._posted: list[Any] = []  # posted from other threads, not handed to the loop yet (post)
        self._posted_lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()
        # the parts: each holds a reference to this engine and its own private state
        self.publisher = Publisher(self, log_sink)
        self.recorder = Recorder(self)
        self.intents = Intents(self)
        self.submits = Submits(self)
        self.lifecycle = Lifecycle(self)
        self.sync = VenueSync(self)
        self.halt = Halting(self)
        self.market_data = MarketData(self)
        self.heap = HeapPolicy()  # full collections at idle moments only (engine.core.heap)
        self.trade_watch = TradeStreamWatch(self)
        # one handler per inbox message type
        self.handlers: dict[type, Callable[[Any], None]] = {
            msg.CommandEnvelope: self._on_command,
            msg.Timer: self._on_timer,
            TradeUpdate: self.lifecycle.on_trade_update,
            VenueQuote: self.intents.on_quote,
            VenueBar: self._on_bar,
            SignalBatch: self.intents.on_batch,
            ConnectivityChanged: self.sync.on_connectivity,
            RateLimitChanged: self.sync.on_rate_limit,
            RequestFailed: self.halt.on_request_failed,
            msg.Submitted: self.submits.on_submitted,
            msg.Resolved: self.submits.on_resolved,
            msg.ThrottleCleared: self.submits.on_throttle_cleared,
            msg.CancelAsked: self.submits.on_cancel_asked,
            msg.CancelUnknown: self.submits.on_cancel_unknown,
            msg.AccountRead: self.sync.on_account_read,
            msg.PositionsRead: self.sync.on_positions_read,
            msg.ReconcileRead: self.sync.on_reconcile_read,
            msg.CancelAllAnswered: self.halt.on_cancel_all_answered,
            msg.KillOpenSeen: self.halt.on_kill_open_seen,
            msg.FlattenReady: self.halt.on_flatten_ready,
            msg.SignalsSuperseded: self._on_superseded,
            StreamError: self.market_data.on_stream_error,
            StreamSubscribed: self.market_data.on_subscribed,
            QuotesPolled: self.market_data.on_polled,
        }
        self._commands: dict[type, Callable[[Any], CommandResult]] = {
            Halt: self.halt.on_halt,
            Resume: self.halt.on_resume,
            ApproveIntent: self.intents.on_approve,
            ApproveAll: self.intents.on_approve_all,
            RejectIntent: self.intents.on_reject,
            RejectAll: self.intents.on_reject_all,
            SetOverride: self.intents.set_override,
            CancelOrder: self.submits.on_cancel_command,
        }
        # commands answered later, from a task of their own, through the future
        self._commands_later: dict[type, Callable[[Any, asyncio.Future], None]] = {
            Flatten: self.halt.on_flatten,
            QueryHistory: History(self).on_query,
        }
        self._timers: dict[str, Callable[[], object]] = {
            "second": self._on_second,
            "reconcile": lambda: self.spawn(self.sync.reconcile("periodic"), "reconcile"),
            "positions": lambda: self.spawn(self.sync.refresh_positions(), "positions"),
            "risk": lambda: self.spawn(self.sync.refresh_account(evaluate=True), "account"),
            "clock": lambda: self.spawn(self.sync.refresh_clock(), "clock"),
            "in_flight": self.submits.on_in_flight_timer,
            "stops": self.halt.on_stop_timer,
            "market_data": self.market_data.on_timer,
        }

    def rate_now(self) -> datetime:
        """The time the order-rate throttle counts in: real time (the venue's limits
        are per real minute), except on a frozen venue clock, which freezes
        everything the engine times so that drills and tests are deterministic."""
        if self.clock.speed == 0:
            return self.clock.now()
        return datetime.now(UTC)

    # ------------------------------------------------------------------ public

    @property
    def started(self) -> bool:
        return self._inbox is not None

    @property
    def snapshot(self) -> EngineSnapshot:
        return self.publisher.snapshot

    def post(self, item: Any) -> None:
        """Put an item on the inbox; safe from any thread (the broker's emit). On the
        loop's own thread (the broker's REST outcomes, right after each call) it is put
        at once: no wake-up of the loop, no self-pipe write per order. From another
        thread (the trade stream's updates) items are handed over in order, in batches:
        the first of a batch wakes the loop, the ones that come before the loop has
        taken it ride along (a burst of 53 fills is one wake-up and one loop turn, not
        53 self-pipe writes, callbacks and write-behind commits)."""
        loop, inbox = self._loop, self._inbox
        if loop is None or inbox is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            inbox.put(item)
            return
        with self._posted_lock:
            self._posted.append(item)
            if len(self._posted) > 1:
                return  # a hand-over is already on its way
        try:
            loop.call_soon_threadsafe(self._take_posted)
        except RuntimeError:
            pass  # the loop closed while shutting down

    def _take_posted(self) -> None:
        """On the loop: what other threads posted since the last hand-over, in order."""
        with self._posted_lock:
            items, self._posted = self._posted, []
        inbox = self._inbox
        if inbox is None:
            return
        for item in items:
            inbox.put(item)

    def put(self, item: Any) -> None:
        """Put an item on the inbox from the engine's own loop."""
        assert self._inbox is not None
        self._inbox.put(item)

    async def execute(self, command: Command) -> CommandResult:
        """Run a command inside the engine task (call from the engine's loop); the
        kill switch at once (halt_now)."""
        if isinstance(command, Halt):
            result = self.halt_now(command)
            if result is not None:
                return result
        fut = asyncio.get_running_loop().create_future()
        self.put(msg.CommandEnvelope(command, fut))
        return await fut

    def halt_now(
        self, command: Halt, sent: Coroutine[Any, Any, CancelAllOutcome] | None = None
    ) -> CommandResult | None:
        """The kill switch, run by its caller on the loop's thread instead of waiting
        for the engine task to wake and take it off the inbox (a turn of the loop behind
        everything already scheduled, e.g. a batch's 53 answers). This is the engine
        task's own handler and as safe: the engine task is between two items whenever
        anything else on the loop runs (its handlers never await). None before the
        engine task runs (start-up: the journal may not be open yet): then the Halt
        goes through the inbox's KILL lane, first of everything. `sent`: the cancel-all
        already sent ahead by the command's thread (Halting.send_ahead)."""
        if not self.running or self.stopping:
            return None
        try:
            result = self.halt.on_halt(command, sent)
        except Exception as exc:  # as _run_loop does with a failing item
            log.exception("engine failed on the kill switch")
            self.note("error", None, f"internal error on Halt: {exc!r}")
            result = CommandResult(False, f"internal error: {exc!r}")
        self.publisher.dirty = True
        return result

    async def submit_batch(self, batch: SignalBatch) -> None:
        """Queue a signal batch; waits while the inbox's signal lane is full of
        batches that cannot be collapsed (engine.core.inbox)."""
        assert self._inbox is not None
        await self._inbox.put_signal(batch)

    def observe(self, observer: EngineObserver) -> None:
        """Add an observer (engine.core.observe); from the engine's loop once it runs."""
        self.observers.append(observer)

    def unobserve(self, observer: EngineObserver) -> None:
        if observer in self.observers:
            self.observers.remove(observer)

    def tell(self, method: str, *args: Any) -> None:
        """Call `method` on every observer; one that raises is logged and skipped."""
        for obs in self.observers:
            try:
                getattr(obs, method)(*args)
            except Exception:
                log.exception("observer %r failed in %s", obs, method)

    def market_view(self) -> EngineMarketView:
        return EngineMarketView(self)

    def open_orders(self) -> list[Order]:
        return [o for o in self.book.iter_open() if not o.external]

    def held_outside(self) -> dict[str, tuple[Decimal, Decimal]]:
        """By symbol, the (buy, sell) quantity still open in external orders (at the
        venue, not ours): the venue holds a position's shares for them too."""
        held: dict[str, tuple[Decimal, Decimal]] = {}
        for o in self.external.values():
            if o.qty is None or o.status.is_final:
                continue
            left = max(o.qty - o.filled_qty, Decimal(0))
            buy, sell = held.get(o.symbol, (Decimal(0), Decimal(0)))
            held[o.symbol] = (buy + left, sell) if o.side is Side.BUY else (buy, sell + left)
        return held

    def note(self, kind: str, symbol: str | None, text: str) -> None:
        """One line in the event log (and the log sink)."""
        self.publisher.note(kind, symbol, text)

    def publish(self) -> None:
        self.publisher.publish()

    # --------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        with self._posted_lock:
            self._posted = []  # a hand-over a closed loop never ran is not waited for
        self._inbox = Inbox(self.lane_of)
        self.sync.reconcile_lock = asyncio.Lock()
        await self.broker.start(self.post, self.symbols)
        await self.sync.refresh_clock()
        t = time.perf_counter()
        self.recorder.open_journal()
        self.tell("start_phase", "journal", time.perf_counter() - t)
        await self.sync.load_assets()
        await self.sync.refresh_account()
        await self.sync.seed_market()
        self.spawn(self._run_loop(), "engine-loop")
        self.running = True
        t = time.perf_counter()
        await self.sync.reconcile("startup")
        self.tell("start_phase", "reconcile", time.perf_counter() - t)
        for name, seconds, venue in self.timer_intervals():
            self.spawn(self._ticker(name, seconds, venue), f"tick-{name.replace('_', '-')}")
        self.spawn(self.publisher.run(), "publisher")
        self.publish()
        self.heap.on_start()

    async def stop(self, how: str = "stopped") -> None:
        """Stop in order: no new orders, open orders left working (and said so),
        journal sealed."""
        if self.stopping:
            return
        self.stopping = True
        working = [
            o for o in self.open_orders() if o.status not in (OrderStatus.CREATED, OrderStatus.AWAITING_APPROVAL)
        ]
        self.note("info", None, f"stopping: no new orders; {len(working)} open order(s) left working at the venue")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.heap.on_stop()
        try:
            await self.broker.stop()
        except Exception:  # pragma: no cover - best effort on the way out
            log.exception("broker stop failed")
        try:
            self.journal.seal(how)
            self.sealed = True
        except (JournalError, RuntimeError) as exc:
            self.seal_error = str(exc)
            self.note("error", None, f"journal NOT sealed: {exc}")
        self.publish()

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self.stopping:
            exc = task.exception()
            log.error("task %s failed: %r", task.get_name(), exc)
            self.note("error", None, f"internal task {task.get_name()} failed: {exc!r}")

    # --------------------------------------------------------------- the loop

    @staticmethod
    def lane_of(item: Any) -> Lane:
        """The inbox lane of an item: the kill switch first, then commands, then
        everything the venue and the timers say, then signal batches."""
        if isinstance(item, msg.CommandEnvelope):
            return Lane.KILL if isinstance(item.command, Halt) else Lane.COMMANDS
        if isinstance(item, (SignalBatch, msg.SignalsSuperseded)):
            return Lane.SIGNALS
        return Lane.RESULTS

    async def _run_loop(self) -> None:
        assert self._inbox is not None
        loop = asyncio.get_running_loop()
        since = loop.time()
        while True:
            if loop.time() - since >= YIELD_AFTER:
                # a backlog is being worked off: let the loop read sockets (a halt on the
                # control socket) and run tasks; the next item is then taken by lane
                await asyncio.sleep(0)
                since = loop.time()
            item = self._inbox.take()
            if item is None:  # nothing waiting: sleep until something comes
                item = await self._inbox.get()
                since = loop.time()
            try:
                self.handle(item)
            except Exception as exc:  # one bad item must not stop the engine
                log.exception("engine failed on %s", type(item).__name__)
                self.note("error", None, f"internal error on {type(item).__name__}: {exc!r}")
                if isinstance(item, msg.CommandEnvelope) and not item.future.done():
                    item.future.set_result(CommandResult(False, f"internal error: {exc!r}"))
            self.publisher.dirty = True

    def handle(self, item: Any) -> None:
        """Apply one inbox item through its handler (inside the engine task)."""
        handler = self.handlers.get(type(item))
        if handler is None:
            # a subclass of a known message is handled as that message
            handler = next((self.handlers[c] for c in type(item).__mro__[1:] if c in self.handlers), None)
            if handler is None:
                log.debug("no handler for %s: ignored", type(item).__name__)
                return
        handler(item)

    def _on_command(self, env: msg.CommandEnvelope) -> None:
        cmd = env.command
        later = self._commands_later.get(type(cmd))
        if later is not None:
            later(cmd, env.future)
            return
        handler = self._commands.get(type(cmd))
        result = handler(cmd) if handler is not None else CommandResult(False, f"unknown command {type(cmd).__name__}")
        if not env.future.done():
            env.future.set_result(result)

    def _on_superseded(self, item: msg.SignalsSuperseded) -> None:
        """A backlog collapsed: the batches a newer one superseded are journaled as
        skipped, with their count (docs/signals.md)."""
        span = f"{item.first_ts.isoformat()} .. {item.last_ts.isoformat()}"
        if self.recorder.journal(ev.SignalsSkipped(count=item.count, first_ts=item.first_ts, last_ts=item.last_ts)):
            self.stats.skipped += item.count
            self.note(
                "info",
                None,
                f"signal backlog: {item.count} batch(es) ({span}) superseded by a newer one, not acted on",
            )
        else:
            self.note("error", None, f"signal backlog: {item.count} batch(es) ({span}) skipped, NOT journaled")

    # ----------------------------------------------------------------- timers

    def timer_intervals(self) -> list[tuple[str, float, bool]]:
        """Every timer: its name, its interval, and whether that is venue time
        (scaled by the venue's speed) or wall time."""
        om, mon = self.settings.order_management, self.settings.monitoring
        return [
            ("second", 1.0, False),
            ("reconcile", mon.order_reconciliation_interval, True),
            ("positions", mon.position_update_interval, True),
            ("risk", mon.risk_check_interval, True),
            ("clock", 5.0, False),
            ("in_flight", om.in_flight_query_after, True),
            ("stops", mon.stop_check_interval, True),
            ("market_data", self.market_data.poll_gap(), False),  # poll_interval at the venue speed, in budget
        ]

    async def _ticker(self, name: str, seconds: float, venue: bool = True) -> None:
        wall = self.clock.wall_seconds(seconds) if venue else seconds
        while True:
            await asyncio.sleep(wall)
            self.put(msg.Timer(name))

    def _on_timer(self, item: msg.Timer) -> None:
        self._timers[item.name]()

    def _on_second(self) -> None:
        self.intents.expire_approvals()
        self.halt.check_kill_progress()
        self.halt.check_venue_status()
        self.trade_watch.check()
        self.heap.on_second(self.idle)

    @property
    def idle(self) -> bool:
        """Nothing on the wire, nothing waiting: a pause now delays no order."""
        inbox = self._inbox
        return self.submits.on_wire == 0 and not self.submits.pending and (inbox is None or len(inbox) == 0)

    # ------------------------------------------------------------- market data

    def _on_bar(self, bar: VenueBar) -> None:
        self.bars.setdefault(bar.symbol, deque(maxlen=240)).append(bar)
        close = bar.ts + MINUTE
        if self.latest_bar_close is None or close > self.latest_bar_close:
            self.latest_bar_close = close
            self.clock.at_least(close)  # the venue's time is past the bar's close
        waiters, self.bar_waiters = self.bar_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(bar.ts)
