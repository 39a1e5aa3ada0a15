"""The main screen: status bar, approval queue, working orders, positions, risk and
the event log, with the operator's keys. Every key becomes an engine command
addressed by id; what the screen shows comes from the latest snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from console import keys
from console.screens.confirm import ConfirmScreen
from console.screens.override import OverrideScreen
from console.widgets.event_log import EventLog
from console.widgets.risk_panel import RiskPanel
from console.widgets.status_bar import Banner, StatusBar, degraded_parts, effective_state
from console.widgets.tables import ApprovalQueue, LiveTable, Positions, RenderContext, WorkingOrders
from engine.commands import (
    ApproveAll,
    ApproveIntent,
    CancelOrder,
    Flatten,
    RejectAll,
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

    @property
    def desk(self) -> "ExecDeskApp":
        return cast("ExecDeskApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(clock_in_view=self.desk.clock_in_view)
        yield Banner(id="banner")
        with Horizontal(id="desk"):
            with Vertical(id="books"):
                yield ApprovalQueue()
                yield WorkingOrders()
                yield Positions()
            with Vertical(id="side"):
                yield RiskPanel()
                yield EventLog()
        yield Footer()

    def on_mount(self) -> None:
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
        ctx = RenderContext(venue_time=snapshot.venue_time)
        self.status_bar.show(snapshot, halt_pending=halt_pending)
        self.banner.show(snapshot, halt_pending=halt_pending)
        self.queue.reconcile(snapshot.intents, ctx)
        self.orders.reconcile(snapshot.orders, ctx)
        self.positions.reconcile(snapshot.positions, ctx)
        self.risk.show(snapshot)
        self.event_log.show(snapshot.events)
        self._note_changes(snapshot)
        self.refresh_enabled()

    def _note_changes(self, snapshot: EngineSnapshot) -> None:
        """Say in the log when the venue link degrades or recovers, so nothing degrades
        silently. (State changes and the kill switch the engine logs itself.)"""
        if not snapshot.seq:
            return
        degraded = tuple(degraded_parts(snapshot.connectivity))
        if degraded != self._degraded:
            if degraded:
                detail = snapshot.connectivity.detail
                self.event_log.note(
                    "degraded: " + ", ".join(degraded) + (f" ({detail})" if detail else ""),
                    snapshot.venue_time,
                    kind="error",
                )
            elif self._degraded:
                self.event_log.note("connectivity restored: REST, stream and data up", snapshot.venue_time)
            self._degraded = degraded

    # -- what can be done now ----------------------------------------------------

    def _halted(self) -> bool:
        return effective_state(self.desk.snapshot, self.desk.halt_pending) is TradingState.HALTED

    def _signature(self) -> tuple:
        snap = self.desk.snapshot
        return (
            self._halted(),
            snap.trading_ready,
            self.queue.selected_key is not None,
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
        snap = self.desk.snapshot
        if action in ("approve", "approve_all"):
            if self._halted() or not snap.trading_ready:
                return None
            return None if self.queue.selected_key is None else True
        if action in ("reject", "reject_all"):
            return None if self.queue.selected_key is None else True
        if action == "cancel_order":
            return None if self.orders.selected_key is None else True
        if action == "flatten":
            return True if snap.positions else None
        if action == "resume":
            return True if self._halted() or snap.trading_state is not TradingState.ACTIVE else None
        return True

    def why_not(self, action: str) -> str:
        if self._halted() and action in ("approve", "approve_all"):
            return "HALTED: nothing new is sent until you resume"
        if not self.desk.snapshot.trading_ready and action in ("approve", "approve_all"):
            return f"not ready: {self.desk.snapshot.not_ready_reason or 'start-up reconciliation'}"
        return {
            "approve": "no intent selected",
            "reject": "no intent selected",
            "approve_all": "no intent waiting",
            "reject_all": "no intent waiting",
            "cancel_order": "no working order selected",
            "flatten": "no position to flatten",
            "resume": "already ACTIVE",
        }.get(action, "not available now")

    def _allowed(self, action: str) -> bool:
        if self.check_action(action, ()):
            return True
        self.desk.say(f"{keys.BY_ID[action].label}: {self.why_not(action)}", warning=True)
        return False

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

    def action_approve_all(self) -> None:
        if not self._allowed("approve_all"):
            return
        n = len(self.desk.snapshot.intents)

        def answered(yes: bool | None) -> None:
            if yes:
                self.desk.send(ApproveAll(), f"approve all ({n})")

        self.app.push_screen(
            ConfirmScreen(
                f"Approve all {n} waiting intents?",
                "Each one is checked by risk again before it is sent to the venue.",
                yes="Approve all",
            ),
            answered,
        )

    def action_reject_all(self) -> None:
        if self._allowed("reject_all"):
            self.desk.send(RejectAll(), f"reject all ({len(self.desk.snapshot.intents)})")

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
                "Sends an order to close every position, now, whatever the signals say. "
                "Allowed while HALTED.",
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

        cause = f" ({snap.state_cause})" if snap.state_cause else ""
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

    def action_filter(self) -> None:
        self.event_log.open_filter()
