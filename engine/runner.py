"""`execdesk run`: a headless session. In a terminal it shows a live Rich status;
piped, it prints plain log lines. SIGTERM, SIGINT and SIGHUP (the terminal closed)
stop it in order (no new orders, submits already on the wire answered and journaled,
open orders left working and said so, journal sealed — or said not to be, with exit
status 1, when it could not be); --bars N stops after N batches once their orders
are final or timed out. The execution report is printed at the end."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import TextIO

from engine.config import Settings
from engine.exitcodes import ExitCode
from engine.model import OrderStatus
from engine.snapshot import EngineSnapshot, EventRow

# The signals that stop a session in order: Ctrl-C, a service manager's stop, and the
# terminal going away (SIGHUP's default would kill the process with the journal unsealed).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_STATE_STYLE = {"ACTIVE": "bold green", "REDUCING": "bold yellow", "HALTED": "bold white on red"}


def settings_with_signals(settings: Settings, path: str | None) -> Settings:
    """--signals PATH: a JSONL file (or "-" for stdin), or a CSV by its extension."""
    if not path:
        return settings
    kind = "csv" if path.lower().endswith(".csv") else "jsonl"
    signals = settings.signals.model_copy(update={"kind": kind, "path": path})
    return settings.model_copy(update={"signals": signals})


def _plain_line(row: EventRow) -> str:
    # the venue's clock in UTC, labelled (docs/operator-guide.md: which clock)
    return f"{row.ts.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {row.kind:<9} {row.text}"


class HeadlessRun:
    def __init__(
        self,
        settings: Settings,
        *,
        journal_path: str | None,
        bars: int | None,
        auto_approve: bool,
        out: TextIO | None = None,
        live_view: bool | None = None,
    ):
        self.settings = settings
        self.journal_path = Path(journal_path or settings.session.journal_path)
        self.bars = bars
        self.auto_approve = auto_approve
        self.out = out or sys.stdout
        self.live_view = self.out.isatty() if live_view is None else live_view
        self._stop = threading.Event()
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.reason = ""

    def _sink(self, row: EventRow) -> None:
        line = _plain_line(row)
        if self.live_view:
            with self._lock:
                self._lines.append(line)
                del self._lines[:-12]
        else:
            print(line, file=self.out, flush=True)

    def run(self) -> int:
        from engine.session import Session

        session = Session.from_settings(
            self.settings, journal_path=self.journal_path, auto_approve=self.auto_approve, log_sink=self._sink
        )
        previous = {}
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, self._on_signal)
        try:
            session.start()
            if self.live_view:
                self._watch_live(session)
            else:
                self._watch(session)
        finally:
            session.stop(how=f"stopped: {self.reason}" if self.reason else "stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        snap = session.snapshot
        working = snap.open_order_count
        engine = session.engine
        sealed = engine is not None and engine.sealed
        journal = (
            "journal sealed"
            if sealed
            else f"journal NOT sealed ({engine.seal_error if engine is not None and engine.seal_error else 'unknown'})"
        )
        print(
            f"session {snap.session_id} stopped ({self.reason or 'done'}): {journal}; "
            f"{working} open order(s) left working at the venue",
            file=self.out,
            flush=True,
        )
        self._print_report()
        return ExitCode.OK if sealed else ExitCode.FAILURE

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self.reason = signal.Signals(signum).name
        self._stop.set()

    def _done(self, session) -> bool:
        if self._stop.is_set():
            return True
        if session.stop_requested.is_set():  # `execdesk stop`, or a console's stop command
            self.reason = self.reason or session.stop_cause
            return True
        if self.bars is None:
            return False
        engine = session.engine
        if engine is None or engine.stats.batches < self.bars:
            self._settled_since = None
            return False
        pending = [o for o in engine.open_orders() if o.status is not OrderStatus.CREATED]
        now = time.monotonic()
        if not pending:
            self.reason = f"{self.bars} batch(es) processed, their orders final"
            return True
        settled_since = getattr(self, "_settled_since", None)
        if settled_since is None:
            settled_since = self._settled_since = now
        limit = (
            max(self.settings.rollout.approval_timeout, self.settings.order_management.submit_timeout)
            / max(engine.clock.speed, 1.0)
            + 5
        )
        if now - settled_since > limit:
            self.reason = (
                f"{self.bars} batch(es) processed; {len(pending)} order(s) not final after {limit:.0f}s (timed out)"
            )
            return True
        return False

    def _watch(self, session) -> None:
        while not self._done(session):
            self._stop.wait(0.2)

    def _watch_live(self, session) -> None:
        from rich.live import Live

        with Live(self._render(session.snapshot), console=None, refresh_per_second=4, transient=False) as live:
            while not self._done(session):
                self._stop.wait(0.25)
                live.update(self._render(session.snapshot))

    def _render(self, snap: EngineSnapshot):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 2))
        state = snap.trading_state.value
        head.add_row(
            Text(f"{snap.mode} · {snap.venue}", style="bold"),
            Text(state, style=_STATE_STYLE.get(state, "")),
            Text(f"equity {snap.equity:,.2f}"),
            Text(
                f"day P&L {snap.day_pl:+,.2f} / -{snap.daily_loss_limit:,.2f}",
                style="red" if snap.day_pl < 0 else "green",
            ),
            Text(f"orders {snap.open_order_count}  positions {len(snap.positions)}  approvals {len(snap.intents)}"),
            Text(
                f"last bar {snap.last_bar_ts.astimezone(UTC).strftime('%H:%M') + ' UTC' if snap.last_bar_ts else '-'}"
                f"  bars {snap.bars_processed}"
            ),
        )
        c = snap.connectivity
        conn = Text(
            f"REST {c.rest}  stream {c.trade_stream}  data {c.market_data}"
            + ("  RECONCILING" if c.reconciling else "")
            + ("  RATE-LIMITED" if c.rate_limited else "")
            + ("" if c.journal_ok else "  JOURNAL ERROR"),
            style="yellow" if c.degraded else "dim",
        )
        with self._lock:
            lines = list(self._lines)
        log = Text("\n".join(lines) if lines else "(no events yet)", style="dim")
        return Group(head, conn, log)

    def _print_report(self) -> None:
        try:
            from engine.report.command import render_report
        except ImportError:  # pragma: no cover - report module missing
            return
        try:
            # through the report cache: an `execdesk report` of the sealed journal prints it back
            print(render_report(self.journal_path, None, "text", "orders", False), file=self.out, flush=True)
        except Exception as exc:  # the session is over; a report problem must not hide that
            print(f"(execution report unavailable: {exc})", file=self.out, flush=True)
