"""A position's session as a chart, drawn in braille dots (2 x 4 a character cell):
the closes of the venue's minute bars the engine holds, the session's fills as
entry (▲) and exit (▼) markers at their price and time, and the stop level as a
line. The data is the engine's (PriceChart, in the QueryHistory answer); the
console draws it and asks the venue nothing.

The scale holds every close and fill. It holds the stop too when that costs the
prices no more than half the plot; a stop further away (the usual 5 % stop on a
quiet day) gets a line of its own under (or over) the plot, saying how far
beyond the chart it is, so the prices keep the room. A flat series (or a single
close) gets a small band around its price instead of a zero range.

The time axis is the bars' own: one slot per minute bar held, so the night between
two sessions (or a halt) takes no room, and a fill sits on the slot of the last bar
that began at or before it. The axis line says the first and last bar's times (with
the date when they are on different days)."""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from rich.text import Text
from textual.widget import Widget

from console import format as fmt
from engine.commands import PriceChart

#: the braille dot of (column, row) inside a cell, row 0 at the top
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_MARK_GLYPH = {"entry": "▲", "exit": "▼"}
_MARK_STYLE = {"entry": "bold green", "exit": "bold magenta"}
_LINE_STYLE = "cyan"
_STOP_STYLE = "red"
#: half the band drawn around a flat series: 0.1 % of its price, at least a cent
_FLAT_BAND = Decimal("0.001")
_CENT = Decimal("0.01")


def price_range(prices: Sequence[Decimal], stop: Decimal | None = None) -> tuple[Decimal, Decimal] | None:
    """The (low, high) the chart's vertical axis spans: every price, and the stop
    when it is within one span of them (stop_on_scale); a band around the price
    when they are all one; None when there is no price."""
    if not prices:
        return None
    lo, hi = min(prices), max(prices)
    if hi == lo:
        band = max(abs(lo) * _FLAT_BAND, _CENT)
        lo, hi = lo - band, hi + band
    if stop is not None and stop_on_scale(stop, lo, hi):
        lo, hi = min(lo, stop), max(hi, stop)
    return lo, hi


def stop_on_scale(stop: Decimal, lo: Decimal, hi: Decimal) -> bool:
    """Whether the stop is drawn on the price axis of the prices' (lo, hi): yes when
    the axis grown to it still gives the prices at least half of it."""
    span = hi - lo
    return lo - span <= stop <= hi + span


def level(price: Decimal, lo: Decimal, hi: Decimal, steps: int) -> int:
    """Where `price` falls on an axis of `steps` positions, 0 at `lo` and steps - 1
    at `hi` (clamped to the axis)."""
    if steps <= 1 or hi <= lo:
        return 0
    at = int(((price - lo) / (hi - lo) * (steps - 1)).to_integral_value())
    return min(max(at, 0), steps - 1)


def slot_of(ts: datetime, bar_times: Sequence[datetime]) -> int:
    """The slot (index into the sorted bar times) of `ts`: the last bar that began
    at or before it; the first bar's for a moment before every bar."""
    return max(bisect_right(bar_times, ts) - 1, 0)


def position_of_slot(slot: int, slots: int, steps: int) -> int:
    """Where slot `slot` of `slots` falls on an axis of `steps` positions (the
    middle for a single slot; clamped to the axis)."""
    if steps <= 1:
        return 0
    if slots <= 1:
        return steps // 2
    at = round(slot / (slots - 1) * (steps - 1))
    return min(max(at, 0), steps - 1)


def render_chart(chart: PriceChart, width: int, height: int) -> Text:
    """The chart in `width` x `height` cells: a legend line, the plot with its price
    axis on the left, and a time axis line."""
    legend = Text(no_wrap=True, overflow="ellipsis")
    legend.append(f"{chart.symbol} ", style="bold")
    legend.append(f"{len(chart.prices)} minute closes", style="dim")
    legend.append("  ▲", style=_MARK_STYLE["entry"])
    legend.append(" entry ")
    legend.append("▼", style=_MARK_STYLE["exit"])
    legend.append(" exit ")
    if chart.stop is not None:
        legend.append("── ", style=_STOP_STYLE)
        legend.append(f"stop {fmt.price(chart.stop)}")
    else:
        legend.append("no stop (nothing held)", style="dim")
    marks_prices = [price for _ts, _kind, price in chart.marks]
    closes = [price for _ts, price in chart.prices]
    span = price_range([*closes, *marks_prices], chart.stop)
    legend.truncate(width, overflow="ellipsis")
    if not closes or span is None or height < 4 or width < 20:
        out = Text("\n").join([legend, Text("no minute bars held for this symbol yet", style="dim italic")])
        return out
    lo, hi = span
    stop = chart.stop
    off_scale = stop is not None and not lo <= stop <= hi  # a line of its own, beyond the plot
    labels = [fmt.price(hi), fmt.price(lo)] + ([fmt.price(stop)] if stop is not None else [])
    axis_w = max(len(label) for label in labels) + 2
    plot_w, plot_h = width - axis_w, height - 2 - (1 if off_scale else 0)
    dots_w, dots_h = plot_w * 2, plot_h * 4
    bar_times = sorted(ts for ts, _ in chart.prices)
    first, last = bar_times[0], bar_times[-1]

    def x_of(ts: datetime) -> int:
        return position_of_slot(slot_of(ts, bar_times), len(bar_times), dots_w)

    def dot_row(price: Decimal) -> int:  # 0 at the top
        return dots_h - 1 - level(price, lo, hi, dots_h)

    cells = [[0] * plot_w for _ in range(plot_h)]

    def dot(x: int, y: int) -> None:
        cells[y // 4][x // 2] |= _DOTS[y % 4][x % 2]

    points = [(x_of(ts), dot_row(price)) for ts, price in sorted(chart.prices)]
    dot(*points[0])
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            dot(x0 + round((x1 - x0) * s / steps), y0 + round((y1 - y0) * s / steps))

    marks: dict[tuple[int, int], str] = {}
    for ts, kind, price in chart.marks:
        where = (dot_row(price) // 4, x_of(ts) // 2)
        # an exit drawn over an entry in the same cell: the later fill shows
        marks[where] = kind
    stop_row = dot_row(stop) // 4 if stop is not None and not off_scale else None

    lines = [legend]
    label_rows = {0: (fmt.price(hi), ""), plot_h - 1: (fmt.price(lo), "")}
    if stop_row is not None and stop is not None:
        label_rows[stop_row] = (fmt.price(stop), _STOP_STYLE)
    for r in range(plot_h):
        line = Text(no_wrap=True)
        label, style = label_rows.get(r, ("", ""))
        line.append(label.rjust(axis_w - 1) + " ", style=style or "dim")
        for c in range(plot_w):
            mark = marks.get((r, c))
            if mark is not None:
                line.append(_MARK_GLYPH.get(mark, "●"), style=_MARK_STYLE.get(mark, "bold"))
            elif cells[r][c]:
                line.append(chr(0x2800 + cells[r][c]), style=_LINE_STYLE)
            elif r == stop_row:
                line.append("─", style=_STOP_STYLE)
            else:
                line.append(" ")
        lines.append(line)
    if off_scale and stop is not None:
        below = stop < lo
        edge = lo if below else hi
        beyond = Text(no_wrap=True, overflow="ellipsis")
        beyond.append(("↓" if below else "↑") + fmt.price(stop).rjust(axis_w - 2) + " ", style=_STOP_STYLE)
        note = f" stop, {abs(float((stop - edge) / edge)) * 100:.1f}% {'below' if below else 'above'} the chart "
        dashes = max(plot_w - len(note), 0)
        beyond.append("╌" * (dashes // 2), style=_STOP_STYLE)
        beyond.append(note, style=_STOP_STYLE)
        beyond.append("╌" * (dashes - dashes // 2), style=_STOP_STYLE)
        beyond.truncate(width)
        lines.insert(len(lines) if below else 1, beyond)
    start, end = fmt.venue_clock(first, with_seconds=False), fmt.venue_clock(last, with_seconds=False)
    if fmt.venue_date(first) != fmt.venue_date(last):  # bars of more than one session
        start, end = f"{fmt.venue_date(first)} {start}", f"{fmt.venue_date(last)} {end}"
    axis = Text(" " * axis_w + start, style="dim", no_wrap=True)
    if end != start and plot_w > len(start) + len(end) + 1:
        axis.append(end.rjust(plot_w - len(start)))
    axis.truncate(width)
    lines.append(axis)
    return Text("\n").join(lines)


class PriceChartView(Widget):
    """Draws a PriceChart in whatever room the layout gives it."""

    DEFAULT_CSS = """
    PriceChartView { height: 10; width: 1fr; }
    """

    def __init__(self, chart: PriceChart, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chart = chart

    def render(self) -> Text:
        return render_chart(self.chart, self.size.width, self.size.height)
