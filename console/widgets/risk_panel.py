"""Risk at a glance: one usage bar for every limit the engine reports (gross
exposure, daily loss, largest position, each sector, order rate) and the day's
P&L as a sparkline."""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from console import format as fmt
from engine.snapshot import EngineSnapshot, LimitUsage

LABEL_WIDTH = 18  # at least; grows to the longest limit name, up to MAX_LABEL
MAX_LABEL = 24


def usage_style(fraction: float) -> str:
    if fraction >= 0.9:
        return "bold red"
    if fraction >= 0.7:
        return "yellow"
    return "green"


def usage_line(limit: LimitUsage, width: int, label_width: int = LABEL_WIDTH) -> Text:
    """'gross exposure     ████████░░░░  62%' fitted to width cells."""
    fraction = limit.fraction
    shown = f"{fraction * 100:4.0f}%"
    bar_width = max(4, width - label_width - len(shown) - 2)
    filled = min(bar_width, round(min(fraction, 1.0) * bar_width))
    style = usage_style(fraction)
    line = Text(f"{limit.name[:label_width - 1]:<{label_width}}", style="bold" if fraction >= 0.9 else "")
    line.append("█" * filled, style=style)
    line.append("░" * (bar_width - filled), style="dim")
    line.append(f" {shown}", style=style)
    return line


class RiskPanel(Vertical):
    DEFAULT_CSS = """
    RiskPanel {
        height: auto;
        border: round $primary;
        padding: 0 1;
    }
    RiskPanel #limits { height: auto; }
    RiskPanel #pl-label { height: 1; color: $text-muted; }
    RiskPanel Sparkline { height: 2; margin: 0 0; }
    """

    def __init__(self) -> None:
        super().__init__(id="risk-panel")
        self.border_title = "Risk"
        self._limits: Sequence[LimitUsage] | None = None
        self._history: Sequence[float] | None = None
        self._pl_label: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="limits")
        yield Static(id="pl-label")
        yield Sparkline([], id="pl-sparkline")

    def on_resize(self) -> None:
        self._render_limits()

    def show(self, snapshot: EngineSnapshot) -> None:
        if snapshot.limits is not self._limits:
            self._limits = snapshot.limits
            self._render_limits()
        if snapshot.pl_history is not self._history:
            self._history = snapshot.pl_history
            self.query_one(Sparkline).data = list(snapshot.pl_history)
        label = Text.assemble("day P&L ", fmt.pnl_text(snapshot.day_pl))
        if snapshot.pl_history:
            label.append(
                f"  low {fmt.signed_money(min(snapshot.pl_history), decimals=0)}"
                f" high {fmt.signed_money(max(snapshot.pl_history), decimals=0)}",
                style="dim",
            )
        if label != self._pl_label:
            self._pl_label = label
            self.query_one("#pl-label", Static).update(label)

    def _render_limits(self) -> None:
        limits = self._limits or ()
        width = max(20, self.content_region.width or 40)
        if not limits:
            text = Text("no limits reported yet", style="dim")
        else:
            label_width = min(MAX_LABEL, max(LABEL_WIDTH, *(len(limit.name) + 1 for limit in limits)))
            label_width = min(label_width, max(8, width // 2))
            text = Text("\n").join(usage_line(limit, width, label_width) for limit in limits)
        self.query_one("#limits", Static).update(text)
