"""Enter on an intent, an order or a position: its full history from the journal
(signal and sizing, the pre-trade verdict, approval, submit, venue events, fills
with slippage; for a position its fills and a price chart of the session with its
entries, exits and stop level), asked of the engine with QueryHistory."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console.widgets.event_log import fill_prices
from console.widgets.price_chart import PriceChartView
from engine.commands import CommandResult

_KIND_STYLE = {
    "fill": "bold green",
    "denied": "bold red",
    "rejected": "bold red",
    "expired": "yellow",
    "verdict": "bold cyan",
    "intent": "bold",
}


def _journal_time(iso: str) -> str:
    try:
        ts = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return ts.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


class DrillScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DrillScreen { align: center middle; }
    DrillScreen > Vertical {
        width: 120;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    DrillScreen VerticalScroll { height: auto; max-height: 1fr; }
    DrillScreen #drill-rows { height: auto; }
    DrillScreen #drill-title { text-style: bold; }
    DrillScreen #drill-foot { color: $text-muted; }
    DrillScreen #drill-chart { margin-bottom: 1; }
    """

    BINDINGS = [Binding("escape,enter,q", "close", "Close", show=False)]

    def __init__(self, what: str, key: str, result: CommandResult) -> None:
        super().__init__()
        self.what, self.key, self.result = what, key, result

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"History of {self.what} {self.key}", id="drill-title")
            if self.what == "position" and self.result.chart is not None:
                yield PriceChartView(self.result.chart, id="drill-chart")
            table = Table(box=None, expand=True, show_edge=False, pad_edge=False, row_styles=["", "on #1c2430"])
            table.add_column("Journal UTC", no_wrap=True)
            table.add_column("What", no_wrap=True)
            table.add_column("Facts", ratio=1)
            for ts, kind, text in self.result.rows:
                facts = fill_prices(text) if kind == "fill" else text  # prices as everywhere on screen
                table.add_row(_journal_time(ts), Text(kind, style=_KIND_STYLE.get(kind, "")), facts)
            if not self.result.rows:
                table.add_row("", "", self.result.message)
            with VerticalScroll():
                yield Static(table, id="drill-rows")
            yield Static(
                "Times are the journal's (wall clock, UTC); venue times are said in the facts. Esc closes.",
                id="drill-foot",
            )

    def on_mount(self) -> None:
        self._size_chart(self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._size_chart(event.size.height)

    def _size_chart(self, screen_height: int) -> None:
        """A third of the terminal's height for the chart (8 lines at 24, 16 at 48),
        the rest for the history rows."""
        for chart in self.query(PriceChartView):
            chart.styles.height = max(6, min(16, screen_height // 3))

    def action_close(self) -> None:
        self.dismiss(None)
