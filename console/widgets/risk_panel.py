"""Risk at a glance: one usage bar for every limit the engine reports (gross
exposure, daily loss, largest position, each sector, order rate) and the day's
P&L as a sparkline."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from console import format as fmt
from engine.snapshot import EngineSnapshot, LimitUsage

LABEL_WIDTH = 18  # at least; grows to the longest limit name, up to MAX_LABEL
MAX_LABEL = 24


#: limits the engine fills by design every bar: at 100 % they are working, not in danger
QUOTAS = ("orders this bar",)


def usage_style(fraction: float, name: str = "") -> str:
    if name in QUOTAS:
        return "bold red" if fraction > 1.0 else "cyan"
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
    style = usage_style(fraction, limit.name)
    alarming = style == "bold red"
    line = Text(f"{limit.name[: label_width - 1]:<{label_width}}", style="bold" if alarming else "")
    line.append("█" * filled, style=style)
    line.append("░" * (bar_width - filled), style="dim")
    line.append(f" {shown}", style=style)
    return line


#: the sparkline's scale spans at least this many dollars: cents of noise are not a curve
MIN_SPAN = 100.0
_EIGHTHS = " ▁▂▃▄▅▆▇█"


def pl_spark(values: Sequence[float], width: int, height: int = 2, min_span: float = MIN_SPAN) -> Text:
    """The day's P&L as bars on a scale that includes zero and spans at least
    min_span: flat P&L is a flat line at the bottom, not bars at full height."""
    if width <= 0 or not values:
        return Text("\n".join(" " * max(width, 0) for _ in range(height)))
    if len(values) > width:  # the most recent, one sample per column (the last of each bucket)
        step = len(values) / width
        values = [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = max(hi - lo, min_span)
    if lo < 0:  # a loss: centre the curve in the scale (all gains sit on the bottom)
        lo -= (span - (hi - lo)) / 2
    levels = [max(1, round((v - lo) / span * height * 8)) for v in values]
    rows = []
    for row in range(height, 0, -1):  # top row first
        line = Text()
        for v, level in zip(values, levels, strict=False):
            eighths = min(8, max(0, level - (row - 1) * 8))
            line.append(_EIGHTHS[eighths], style="green" if v > 0 else "red" if v < 0 else "dim")
        rows.append(line)
    return Text("\n").join(rows)


class RiskPanel(Vertical):
    DEFAULT_CSS = """
    RiskPanel {
        height: auto;
        border: round $primary;
        padding: 0 1;
    }
    RiskPanel #limits { height: auto; }
    RiskPanel #pl-label { height: 1; color: $text-muted; }
    RiskPanel #pl-sparkline { height: 2; margin: 0 0; }
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
        yield Static(id="pl-sparkline")

    def on_resize(self) -> None:
        self._render_limits()
        self._render_spark()

    def _render_spark(self) -> None:
        spark = self.query_one("#pl-sparkline", Static)
        spark.update(pl_spark(self._history or (), spark.content_region.width or self.content_region.width))

    def show(self, snapshot: EngineSnapshot) -> None:
        if snapshot.limits is not self._limits:
            self._limits = snapshot.limits
            self._render_limits()
        if snapshot.pl_history is not self._history:
            self._history = snapshot.pl_history
            self._render_spark()
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
