"""The `f` screen: this session's fills, newest first, each with the P&L it
realized, and the session's realized against unrealized P&L."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console import format as fmt
from engine.snapshot import EngineSnapshot

if TYPE_CHECKING:
    from console.app import ExecDeskApp


def fills_title(snap: EngineSnapshot) -> Text:
    return Text.assemble(
        (f"Fills · {len(snap.fills)} this session · realized ", "bold"),
        fmt.pnl_text(snap.realized_pl),
        (" · unrealized ", "bold"),
        fmt.pnl_text(snap.unrealized_pl),
    )


def fills_table(snap: EngineSnapshot) -> Table:
    table = Table(box=None, expand=True, show_edge=False, pad_edge=False, row_styles=["", "on #1c2430"])
    table.add_column(f"Time {fmt.zone_label()}", no_wrap=True)
    table.add_column("Symbol", no_wrap=True)
    table.add_column("Side", no_wrap=True)
    table.add_column("Qty", justify="right", no_wrap=True)
    table.add_column("Price", justify="right", no_wrap=True)
    table.add_column("Realized", justify="right", no_wrap=True)
    table.add_column("Order", ratio=1, overflow="ellipsis", no_wrap=True)
    for f in reversed(snap.fills):
        table.add_row(
            fmt.short_time(f.ts),
            Text(f.symbol, style="bold"),
            fmt.side_text(f.side),
            fmt.qty(f.qty),
            fmt.price(f.price),
            fmt.pnl_text(f.realized_pl) if f.realized_pl else Text(fmt.DASH, style="dim"),
            Text(f.client_order_id, style="dim"),
        )
    if not snap.fills:
        table.add_row("", "", "", "", "", "", Text("no fills yet this session", style="dim"))
    return table


class FillsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    FillsScreen { align: center middle; }
    FillsScreen > Vertical {
        width: 110;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    FillsScreen VerticalScroll { height: auto; max-height: 1fr; }
    FillsScreen #fills-rows { height: auto; }
    FillsScreen #fills-foot { color: $text-muted; }
    """

    BINDINGS = [Binding("escape,f,q", "close", "Close", show=False)]

    @property
    def desk(self) -> ExecDeskApp:
        return cast("ExecDeskApp", self.app)

    def compose(self) -> ComposeResult:
        snap = self.desk.handle.snapshot
        self._shown = snap.fills
        self._pl = (snap.realized_pl, snap.unrealized_pl)
        with Vertical():
            yield Static(fills_title(snap), id="fills-title")
            with VerticalScroll():
                yield Static(fills_table(snap), id="fills-rows")
            yield Static("Realized: by closing at a price away from the average entry. Esc closes.", id="fills-foot")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._maybe_update)

    def _maybe_update(self) -> None:
        snap = self.desk.handle.snapshot
        if (snap.realized_pl, snap.unrealized_pl) != self._pl:
            self._pl = (snap.realized_pl, snap.unrealized_pl)
            self.query_one("#fills-title", Static).update(fills_title(snap))
        if snap.fills is not self._shown:  # the rows only when a fill arrived
            self._shown = snap.fills
            self.query_one("#fills-rows", Static).update(fills_table(snap))

    def action_close(self) -> None:
        self.dismiss(None)
