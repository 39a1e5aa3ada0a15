"""The top of the screen: who and where we trade, equity and day P&L against the
loss limit, the trading state in its colour, connectivity, the venue clock; and a
banner line that appears whenever the desk is not simply ACTIVE and healthy."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from console import format as fmt
from console.words import operator_words
from engine.model import TradingState
from engine.snapshot import Connectivity, EngineSnapshot

_LINK_STYLE = {"up": "bold green", "degraded": "bold yellow", "down": "bold red"}


def _link(label: str, state: str) -> Text:
    style = _LINK_STYLE.get(state, "dim")
    mark = {"up": "●", "degraded": "◐", "down": "✖"}.get(state, "○")
    return Text.assemble((mark, style), " ", (label, "" if state == "up" else style))


def degraded_parts(conn: Connectivity) -> list[str]:
    """Each way the venue link is not healthy, in the operator's words. (A routine
    reconciliation is not a problem: the status bar shows it while it runs.)"""
    parts: list[str] = []
    if conn.rest == "down":
        parts.append("venue unreachable")
    elif conn.rest != "up":
        parts.append(f"REST {conn.rest}")
    if conn.trade_stream != "up":
        parts.append(f"trade stream {conn.trade_stream}")
    if conn.market_data != "up":
        parts.append(f"market data {conn.market_data}")
    if conn.rate_limited:
        parts.append("rate-limited")
    if not conn.journal_ok:
        parts.append("JOURNAL ERROR")
    return parts


_TRIP_WORDS = {"daily_loss": "daily-loss trip", "venue_outage": "venue-outage trip", "error_rate": "error-rate trip"}


def state_reason(snapshot: EngineSnapshot) -> str:
    """Why the desk is in its state, in the operator's words: the engine's last
    state-change cause ('automatic: daily_loss: ...' -> 'daily-loss trip: ...').
    A dedicated `state_reason` field, once the engine publishes one, wins."""
    cause = getattr(snapshot, "state_reason", "") or snapshot.state_cause or ""
    if cause.startswith("automatic: "):
        kind, _, detail = cause.removeprefix("automatic: ").partition(": ")
        words = _TRIP_WORDS.get(kind, f"automatic {kind.replace('_', ' ')} trip")
        return f"{words}: {detail}" if detail else words
    if cause.startswith("kill switch: "):
        by = cause.removeprefix("kill switch: ").replace("kill switch", "").strip(" :")
        if by.startswith("operator"):
            where = by.removeprefix("operator").strip(" :,")
            by = "operator" + (f", {where}" if where else "")
        return f"kill switch ({by})" if by else "kill switch"
    return cause


def effective_state(snapshot: EngineSnapshot, halt_pending: bool) -> TradingState:
    """The state to show: HALTED as soon as the kill switch was pressed, before
    the engine's snapshot says so."""
    if halt_pending:
        return TradingState.HALTED
    return snapshot.trading_state


def repaint(widget: Static, content: str | Text) -> None:
    """Show `content` in a Static of a fixed size: nothing when it is what is shown
    already, else a repaint of that widget alone. Static.update's default also asks
    for a layout of the whole screen, which repaints every widget on it, the
    10,000-row tables included: at every snapshot, that was most of a frame's cost."""
    shown = (content.plain, tuple(content.spans), str(content.style)) if isinstance(content, Text) else content
    if getattr(widget, "_shown_content", None) == shown:
        return
    setattr(widget, "_shown_content", shown)  # noqa: B010 (a Static has no such field of its own)
    widget.update(content, layout=False)


class StatusBar(Horizontal):
    """Two lines of facts and the trading-state badge."""

    DEFAULT_CSS = """
    StatusBar {
        height: 2;
        background: $panel;
    }
    StatusBar #status-facts {
        width: 1fr;
        height: 2;
        padding: 0 1;
    }
    StatusBar #state-badge {
        width: 10;
        height: 2;
        content-align: center middle;
        text-style: bold;
    }
    StatusBar #state-badge.-active {
        background: $success;
        color: $text;
    }
    StatusBar #state-badge.-reducing {
        background: $warning;
        color: black;
    }
    StatusBar #state-badge.-halted {
        background: $error;
        color: white;
    }
    """

    def __init__(self, *, clock_in_view: bool = True) -> None:
        super().__init__(id="status-bar")
        self.clock_in_view = clock_in_view
        self._snapshot: EngineSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="status-facts")
        yield Static("…", id="state-badge")

    def on_resize(self) -> None:
        if self._snapshot is not None:
            repaint(self.query_one("#status-facts", Static), self._facts(self._snapshot))

    def show(self, snapshot: EngineSnapshot, *, halt_pending: bool) -> None:
        self._snapshot = snapshot
        repaint(self.query_one("#status-facts", Static), self._facts(snapshot))
        state = effective_state(snapshot, halt_pending)
        badge = self.query_one("#state-badge", Static)
        repaint(badge, state.value)
        for name in ("active", "reducing", "halted"):
            badge.set_class(state.value.lower() == name, f"-{name}")

    def _facts(self, s: EngineSnapshot) -> Text:
        """Two lines, each kept to one line: at a narrow width the account number goes
        first, then the word labels, never a figure (the second line must not be
        pushed off by a long first one)."""
        width = self.query_one("#status-facts", Static).content_region.width or 200
        line1 = self._line1(s, account=True, long=True)
        if line1.cell_len > width:
            line1 = self._line1(s, account=True, long=False)
        if line1.cell_len > width:
            line1 = self._line1(s, account=False, long=False)
        line2 = self._line2(s)
        # the session's P&L split: after day P&L when it fits, else at the end of the
        # second line, in short words when narrow
        for line, long in ((line1, True), (line2, True), (line2, False)):
            split = self._pl_split(s, long=long)
            if line.cell_len + split.cell_len <= width:
                line.append_text(split)
                break
        for line in (line1, line2):
            line.no_wrap = True
            line.overflow = "ellipsis"
        return Text("\n", no_wrap=True).join([line1, line2])

    def _line1(self, s: EngineSnapshot, *, account: bool, long: bool) -> Text:
        live = s.mode.upper() == "LIVE"
        line1 = Text.assemble(
            (f" {s.venue} " if long else s.venue, "bold reverse"),
            " ",
            (f" {s.mode} " if long else s.mode, "bold white on red" if live else "bold black on dodger_blue2"),
        )
        if account:
            line1.append(" ")
            line1.append(s.account_number or fmt.DASH, style="dim")
        line1.append("  eq " if long else " eq ")
        line1.append(fmt.money(s.equity), style="bold")
        line1.append("  day " if long else " day ")
        line1.append_text(fmt.pnl_text(s.day_pl))
        if s.daily_loss_limit:
            used = max(0.0, float(-s.day_pl / s.daily_loss_limit)) if s.day_pl < 0 else 0.0
            style = "red" if used >= 0.9 else "yellow" if used >= 0.6 else "dim"
            line1.append(f" / -{fmt.money(s.daily_loss_limit, decimals=0)} ({fmt.pct(used, decimals=0)})", style=style)
        return line1

    @staticmethod
    def _pl_split(s: EngineSnapshot, *, long: bool) -> Text:
        """This session's P&L: realized by its fills, unrealized in what is held."""
        return Text.assemble(
            ("  real " if long else "  r ", "dim"),
            fmt.pnl_text(s.realized_pl),
            (" unreal " if long else " u ", "dim"),
            fmt.pnl_text(s.unrealized_pl),
        )

    def _line2(self, s: EngineSnapshot) -> Text:
        conn = s.connectivity
        line2 = Text.assemble(
            " ",
            _link("REST", conn.rest),
            "  ",
            _link("stream", conn.trade_stream),
            "  ",
            _link("data", conn.market_data),
        )
        # on a plan with a stream symbol limit: how many symbols are polled over REST
        # (status --json lists them); said only when some are
        md = s.market_data
        if md.polled:
            line2.append(f" ({len(md.streamed)} streamed, {len(md.polled)} polled)", style="dim")
        line2.append("  ")
        if conn.reconciling:
            line2.append("⟳ reconciling  ", style="bold yellow")
        if self.clock_in_view:
            line2.append(fmt.venue_clock(s.venue_time))
            line2.append(" ")
        line2.append("OPEN" if s.market_open else "CLOSED", style="bold green" if s.market_open else "bold yellow")
        line2.append("  bar ")
        line2.append(fmt.venue_clock(s.last_bar_ts, with_seconds=False) if s.last_bar_ts else "none yet")
        if s.bars_processed:
            line2.append(f" #{s.bars_processed}", style="dim")
        return line2


class Banner(Static):
    """One coloured line saying why the desk is not simply ACTIVE and healthy;
    hidden when there is nothing to say."""

    DEFAULT_CSS = """
    Banner {
        height: 1;
        width: 1fr;
        padding: 0 1;
        display: none;
        text-style: bold;
    }
    Banner.-shown { display: block; }
    Banner.-halted { background: $error; color: white; }
    Banner.-reducing { background: $warning; color: black; }
    Banner.-degraded { background: $warning-darken-2; color: white; }
    """

    def show(self, snapshot: EngineSnapshot, *, halt_pending: bool) -> None:
        parts: list[str] = []
        state = effective_state(snapshot, halt_pending)
        kill = snapshot.kill_switch
        if state is TradingState.HALTED:
            if halt_pending and snapshot.trading_state is not TradingState.HALTED:
                parts.append("HALTED: kill switch sent, cancelling every open order")
            else:
                # the cause first (a daily-loss trip is not "the kill switch"), then the cancels
                text = f"HALTED: {state_reason(snapshot) or 'no new orders'}"
                if kill.phase in ("requested", "sent"):
                    text += f" · cancelling {kill.cancels_requested} orders at the venue"
                elif kill.phase == "confirmed":
                    text += f" · venue confirmed {kill.cancels_confirmed} cancels"
                elif kill.phase == "failed":
                    text += f" · cancel-all FAILED: {kill.detail or 'see log'}"
                parts.append(text)
        elif state is TradingState.REDUCING:
            parts.append(f"REDUCING: {state_reason(snapshot) or 'only exposure-reducing orders'}")
        if not snapshot.trading_ready:
            parts.append(f"NOT READY: {snapshot.not_ready_reason or 'start-up reconciliation'}")
        problems = degraded_parts(snapshot.connectivity)
        if problems and snapshot.seq:
            detail = operator_words(snapshot.connectivity.detail)
            parts.append("DEGRADED: " + ", ".join(problems) + (f" ({detail})" if detail else ""))
        text = "  │  ".join(parts)
        self.set_class(bool(parts), "-shown")
        self.set_class(state is TradingState.HALTED, "-halted")
        self.set_class(state is TradingState.REDUCING, "-reducing")
        self.set_class(state is TradingState.ACTIVE and bool(parts), "-degraded")
        repaint(self, text)
