"""The main screen: status bar, approval queue, working orders, positions, risk and
the event log, with the operator's keys. Every key becomes an engine command
addressed by id; what the screen shows comes from the latest snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.keys import _character_to_key
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from console import format as fmt
from console import keys
from console.screens.confirm import ConfirmScreen
from console.screens.drill import DrillScreen
from console.screens.override import OverrideScreen
from console.widgets.event_log import EventLog
from console.widgets.risk_panel import RiskPanel
from console.widgets.status_bar import Banner, StatusBar, degraded_parts, effective_state, state_reason
from console.widgets.tables import ApprovalQueue, LiveTable, Positions, RenderContext, WorkingOrders
from console.words import operator_words
from engine.commands import (
    ApproveIntent,
    CancelOrder,
    Flatten,
    QueryHistory,
    RejectIntent,
    Resume,
    SetOverride,
)
from engine.model import TradingState
from engine.snapshot import EngineSnapshot

if TYPE_CHECKING:
    from console.app import ExecDeskApp


class MainScreen(Screen[None]):
    BINDINGS = keys.bindings("main")

    def __init__(self) -> None:
        super().__init__(id="main")
        self._enabled_signature: tuple = ()
        self._degraded: tuple[str, ...] = ()
        self._alerted_state: TradingState | None = None  # the state last rung for
        self._link_alerted = False  # the bell rang for the lost venue link

    @property
    def desk(self) -> ExecDeskApp:
        return cast("ExecDeskApp", self.app)

    def compose(self) -> ComposeResult:
        fmt.set_display_zone(self.desk.settings.console.timezone)  # before any time is written
        yield StatusBar(clock_in_view=self.desk.clock_in_view)
        yield Banner(id="banner")
        with Horizontal(id="desk"):
            with Vertical(id="books"):
                yield ApprovalQueue(new_row_guard=self.desk.settings.console.new_row_guard_ms / 1000)
                yield WorkingOrders()
                yield Positions()
            with Vertical(id="side"):
                yield RiskPanel()
                yield EventLog()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._key_actions = self._main_key_actions()
        self.status_bar = self.query_one(StatusBar)
        self.banner = self.query_one(Banner)
        self.queue = self.query_one(ApprovalQueue)
        self.orders = self.query_one(WorkingOrders)
        self.positions = self.query_one(Positions)
        self.risk = self.query_one(RiskPanel)
        self.event_log = self.query_one(EventLog)
        self.queue.focus()
        self.desk.refresh_snapshot(force=True)

    def on_screen_resume(self) -> None:
        """Back on top (a dialog closed): show what the engine has now."""
        if self.is_mounted and hasattr(self, "queue"):
            self.desk.refresh_snapshot()

    # -- rendering ------------------------------------------------------------

    def apply(self, snapshot: EngineSnapshot, *, halt_pending: bool) -> None:
        """Show a snapshot: reconcile every table in place (the caller batches)."""
        ctx = RenderContext(venue_time=snapshot.venue_time, marks=self._marks(snapshot))
        self.status_bar.show(snapshot, halt_pending=halt_pending)
        self.banner.show(snapshot, halt_pending=halt_pending)
        self.queue.reconcile(snapshot.intents, ctx)
        self.orders.reconcile(snapshot.orders, ctx)
        self.positions.reconcile(snapshot.positions, ctx)
        self.risk.show(snapshot)
        self.event_log.show(snapshot.events)
        self._share_room()
        self._note_changes(snapshot)
        self.refresh_enabled()

    def _marks(self, snapshot: EngineSnapshot) -> dict:
        """Market price by symbol: the snapshot's quotes when it carries them (a
        `quotes` mapping of symbol -> price or of rows with `last`/`mid`), else the
        last price of a held position. Rebuilt only when its sources changed."""
        quotes = getattr(snapshot, "quotes", None)
        key = (id(quotes), id(snapshot.positions))
        if key == getattr(self, "_marks_key", None):
            return self._marks_cache  # type: ignore[has-type]  # set below on the first call
        marks: dict = {sym: p.last_price for sym, p in snapshot.positions.items() if p.last_price is not None}
        for sym, quote in (quotes or {}).items():
            value = (
                quote
                if not hasattr(quote, "__dict__") and not hasattr(quote, "__slots__")
                else (getattr(quote, "last", None) or getattr(quote, "mid", None))
            )
            if value is not None:
                marks[sym] = value
        self._marks_key, self._marks_cache = key, marks
        return marks

    def on_resize(self) -> None:
        if hasattr(self, "queue"):
            self.call_after_refresh(self._share_room)

    def _share_room(self) -> None:
        """Give the books' rows to the tables that have rows, the approval queue first,
        then the positions, then the working orders (thousands of them scroll; a
        few positions must not be pushed out of view by them): an empty table keeps
        only its titled rule (its count stays in view), so at 80x24 ten waiting
        intents all show. What is left over is shared evenly."""
        books = self.query_one("#books")
        available = books.content_region.height
        if available <= 0:
            return
        narrow = self.has_class("-narrow")
        # an empty table keeps its title in view: a rule (narrow) or a border with one
        # blank line inside (Textual draws no border title on a box with no inside)
        chrome, least = (2, 1) if narrow else (3, 3)  # rule + header | border + header
        tables = [self.queue, self.orders, self.positions]
        wants = [chrome + table.row_count if table.row_count else least for table in tables]
        heights = [least] * len(tables)
        spare = available - sum(heights)
        for i in (0, 2, 1):  # in order of priority: queue, positions, orders
            want = wants[i]
            grant = max(0, min(want - heights[i], spare))
            heights[i] += grant
            spare -= grant
        with_rows = [i for i, table in enumerate(tables) if table.row_count] or list(range(len(tables)))
        for n, i in enumerate(with_rows):
            heights[i] += spare // len(with_rows) + (1 if n < spare % len(with_rows) else 0)
        for table, height in zip(tables, heights, strict=False):
            if (
                table.styles.height is None
                or table.styles.height.value != height
                or table.styles.height.unit.name != "CELLS"
            ):
                table.styles.height = height

    def _note_changes(self, snapshot: EngineSnapshot) -> None:
        """Say in the log when the venue link degrades or recovers, so nothing degrades
        silently. (State changes and the kill switch the engine logs itself.)"""
        if not snapshot.seq:
            return
        self._alert(snapshot)
        degraded = tuple(degraded_parts(snapshot.connectivity))
        if degraded != self._degraded:
            if degraded:
                detail = operator_words(snapshot.connectivity.detail)
                self.event_log.note(
                    "degraded: " + ", ".join(degraded) + (f" ({detail})" if detail else ""),
                    snapshot.venue_time,
                    kind="error",
                )
            elif self._degraded:
                self.event_log.note("connectivity restored: REST, stream and data up", snapshot.venue_time)
            self._degraded = degraded

    def _alert(self, snapshot: EngineSnapshot) -> None:
        """Ring the bell and show a notification, once each time: the desk HALTED (by
        the kill switch or a trip), tripped to REDUCING, or lost its venue link."""
        state = effective_state(snapshot, self.desk.halt_pending)
        if state is TradingState.ACTIVE:
            self._alerted_state = None
        elif state is not self._alerted_state:
            self._alerted_state = state
            pending = self.desk.halt_pending and snapshot.trading_state is not TradingState.HALTED
            reason = "kill switch sent" if pending else state_reason(snapshot) or "no new orders"
            self.app.bell()
            self.app.notify(f"{state.value}: {reason}", title="Trading state", severity="error", timeout=10)
        c = snapshot.connectivity
        lost = c.rest == "down" or c.trade_stream == "down"
        if lost and not self._link_alerted:
            self._link_alerted = True
            what = "venue unreachable" if c.rest == "down" else "trade stream down"
            self.app.bell()
            self.app.notify(
                f"{what}: {operator_words(c.detail) or 'reconnecting'}",
                title="Venue link lost",
                severity="error",
                timeout=10,
            )
        elif not lost and c.rest == "up" and c.trade_stream == "up":
            self._link_alerted = False

    # -- what can be done now ----------------------------------------------------

    def _halted(self) -> bool:
        return effective_state(self.desk.snapshot, self.desk.halt_pending) is TradingState.HALTED

    def _signature(self) -> tuple:
        snap = self.desk.snapshot
        key = self.queue.selected_key
        return (
            self._halted(),
            snap.trading_ready,
            self.queue.row_count > 0,
            key is not None and self.queue.is_new(key),
            bool(self.queue.new_keys),
            key is not None,
            self.orders.selected_key is not None,
            bool(snap.positions),
            snap.trading_state,
        )

    def refresh_enabled(self) -> None:
        """Re-check which actions apply (footer, palette) only when that changed."""
        signature = self._signature()
        if signature != self._enabled_signature:
            self._enabled_signature = signature
            self.refresh_bindings()

    @on(DataTable.RowHighlighted)
    def _row_moved(self) -> None:
        self.refresh_enabled()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """True: applies now. None: shown greyed out (e.g. approve while HALTED).
        False: does not apply in this state, left out of the footer. A key pressed for
        an action that is not True says why (on_key), never nothing."""
        snap = self.desk.snapshot
        queue_empty = not self.queue.row_count if hasattr(self, "queue") else True
        if action in ("approve", "approve_all"):
            if queue_empty:
                return False
            if self._halted() or not snap.trading_ready:
                return None
            if action == "approve":
                key = self.queue.selected_key
                return None if key is None or self.queue.is_new(key) else True
            return True if self.queue.seen_keys else None
        if action in ("reject", "reject_all"):
            if queue_empty:
                return False
            return None if action == "reject" and self.queue.selected_key is None else True
        if action == "cancel_order":
            return True if hasattr(self, "orders") and self.orders.selected_key is not None else False
        if action == "flatten":
            return True if snap.positions else False
        if action == "resume":
            return True if self._halted() or snap.trading_state is not TradingState.ACTIVE else False
        return True

    def why_not(self, action: str) -> str:
        snap = self.desk.snapshot
        if action in ("approve", "approve_all", "reject", "reject_all") and not self.queue.row_count:
            return "the approval queue is empty"
        if self._halted() and action in ("approve", "approve_all"):
            return "HALTED: nothing new is sent until you resume (U)"
        if not snap.trading_ready and action in ("approve", "approve_all"):
            return f"not ready: {snap.not_ready_reason or 'start-up reconciliation'}"
        if action == "approve":
            key = self.queue.selected_key
            if key is not None and self.queue.is_new(key):
                row = self.queue.selected_row
                return (
                    f"{row.symbol if row else key} arrived {self.queue.on_screen_for(key):.1f} s ago: "
                    "look at it first, nothing was sent"
                )
        if action == "approve_all" and not self.queue.seen_keys:
            return f"the {len(self.queue.new_keys)} intents just arrived: look at them first, nothing was sent"
        if action == "resume":
            return f"already {snap.trading_state.value}: nothing to resume"
        return {
            "approve": "no intent selected",
            "reject": "no intent selected",
            "cancel_order": "no working order selected" if snap.orders else "no working orders",
            "flatten": "no position to flatten",
        }.get(action, "not available now")

    def _allowed(self, action: str) -> bool:
        if self.check_action(action, ()):
            return True
        self.desk.say(f"{keys.BY_ID[action].label}: {self.why_not(action)}", warning=True)
        return False

    def _main_key_actions(self) -> dict[str, str]:
        """Key name -> action of this screen's bindings, as remapped by the keymap."""
        out: dict[str, str] = {}
        for key in keys.KEYS:
            if key.where != "main":
                continue
            for name in keys.effective_key(key, self.desk.keymap).split(","):
                name = name.strip()
                if len(name) == 1 and not name.isalnum():
                    name = _character_to_key(name)
                out[name] = key.action
        return out

    def on_key(self, event: events.Key) -> None:
        """A key whose action does not apply now says why (Textual would skip it silently)."""
        action = self._key_actions.get(event.key)
        if action is not None and not self.check_action(action, ()):
            event.stop()
            event.prevent_default()
            self._allowed(action)

    # -- drill-down: Enter on a row --------------------------------------------------

    @on(DataTable.RowSelected)
    def _drill_down(self, event: DataTable.RowSelected) -> None:
        """Enter on an intent, an order or a position: its history from the journal."""
        key = event.row_key.value
        table = event.data_table
        if not key or not isinstance(table, (ApprovalQueue, WorkingOrders, Positions)):
            return
        what = {ApprovalQueue: "intent", WorkingOrders: "order", Positions: "position"}[type(table)]
        if key.startswith("ext:"):
            self.desk.say(f"{key}: an order this engine did not create has no history in its journal", warning=True)
            return
        self.open_history(what, key)

    @work(group="history", exclusive=True, exit_on_error=False)
    async def open_history(self, what: str, key: str) -> None:
        result = await self.desk.handle.execute(QueryHistory(key))
        self.app.push_screen(DrillScreen(what, key, result))

    # -- actions: each an engine command addressed by id --------------------------

    def action_approve(self) -> None:
        if self._allowed("approve"):
            intent_id = cast(str, self.queue.selected_key)
            row = self.desk.snapshot.intents.get(intent_id)
            label = f"approve {row.side} {row.qty} {row.symbol}" if row else f"approve {intent_id}"
            self.desk.send(ApproveIntent(intent_id), label)

    def action_reject(self) -> None:
        if self._allowed("reject"):
            intent_id = cast(str, self.queue.selected_key)
            row = self.desk.snapshot.intents.get(intent_id)
            label = f"reject {row.side} {row.qty} {row.symbol}" if row else f"reject {intent_id}"
            self.desk.send(RejectIntent(intent_id), label)

    def _all_by_id(self, verb: str, command: type, targets: list[str]) -> None:
        """Ask, then send one command per intent the operator saw (addressed by id):
        an intent that arrives while the question is open is not swept in."""
        queue = self.queue
        new = len(queue.new_keys) if verb == "approve" else 0
        n = len(targets)

        def answered(yes: bool | None) -> None:
            if yes:
                waiting = [key for key in targets if key in self.desk.snapshot.intents]
                self.desk.send_each([command(key) for key in waiting], f"{verb} all ({len(waiting)})")

        detail = (
            "Each one is checked by risk again before it is sent to the venue."
            if verb == "approve"
            else "Nothing is sent for them; the model may propose them again at the next bar."
        )
        if new:
            detail += f" {new} that just arrived stay waiting."
        self.app.push_screen(
            ConfirmScreen(f"{verb.capitalize()} all {n} waiting intents?", detail, yes=f"{verb.capitalize()} all"),
            answered,
        )

    def action_approve_all(self) -> None:
        if self._allowed("approve_all"):
            self._all_by_id("approve", ApproveIntent, self.queue.seen_keys)

    def action_reject_all(self) -> None:
        if self._allowed("reject_all"):
            self._all_by_id("reject", RejectIntent, list(self.queue._source))

    def action_cancel_order(self) -> None:
        if self._allowed("cancel_order"):
            client_order_id = cast(str, self.orders.selected_key)
            self.desk.send(CancelOrder(client_order_id), f"cancel {client_order_id}")

    def action_flatten(self) -> None:
        if not self._allowed("flatten"):
            return
        n = len(self.desk.snapshot.positions)

        def answered(yes: bool | None) -> None:
            if yes:
                self.desk.send(Flatten(cause="operator: console"), f"flatten all ({n} positions)")

        self.app.push_screen(
            ConfirmScreen(
                f"Flatten all {n} positions?",
                "Sends an order to close every position, now, whatever the signals say. Allowed while HALTED.",
                yes="Flatten",
                danger=True,
            ),
            answered,
        )

    def action_resume(self) -> None:
        if not self._allowed("resume"):
            return
        snap = self.desk.snapshot

        def answered(yes: bool | None) -> None:
            if yes:
                self.desk.halt_pending = False
                self.desk.send(Resume(cause="operator: console"), "resume")

        reason = state_reason(snap)
        cause = f" ({reason})" if reason else ""
        self.app.push_screen(
            ConfirmScreen(
                f"Resume trading? The desk is {snap.trading_state.value}{cause}.",
                "New orders will be sent again at the next bar.",
                yes="Resume",
                danger=True,
            ),
            answered,
        )

    def selected_symbol(self) -> str:
        """The symbol of the row under the cursor in the focused table (or the positions table)."""
        focused = self.focused
        tables: list[LiveTable] = [self.positions, self.queue, self.orders]
        if isinstance(focused, LiveTable):
            tables.insert(0, focused)
        for table in tables:
            row = table.selected_row
            if row is not None:
                return row.symbol
        return ""

    def action_override(self) -> None:
        symbol = self.selected_symbol()
        current = self.desk.snapshot.overrides.get(symbol)

        def answered(command: SetOverride | None) -> None:
            if command is not None:
                what = "clear override" if command.clear else "override"
                self.desk.send(command, f"{what} {command.symbol}")

        self.app.push_screen(OverrideScreen(symbol, current), answered)

    def action_fills(self) -> None:
        from console.screens.fills import FillsScreen

        self.app.push_screen(FillsScreen())

    def action_rollout(self) -> None:
        from console.screens.rollout import RolloutScreen

        self.app.push_screen(RolloutScreen())

    def action_filter(self) -> None:
        self.event_log.open_filter()
