"""The live tables (approval queue, working orders, positions): rows keyed by the
engine's ids and reconciled in place from each snapshot, never rebuilt.

The Engine reuses a row object while the row is unchanged, so a row is re-rendered
only when its identity changed (or, for the time columns, when the venue clock
moved); then only the cells whose text differs are updated. The operator's cursor
stays on the same id, whatever rows come and go around it.

A working order's age and an intent's time left are painted cells (PaintedCell):
their text is worked out when the line is drawn, from the table's clock, and
written over the line DataTable already has (render_line). A tick of the venue
clock repaints the cells on screen whose text changed and nothing else: no row,
no line of the table is rendered again (at 10,000 orders, a few dozen five-cell
strings a second, none when the clock moved less than the ages show)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

from console import format as fmt
from engine.snapshot import IntentRow, OrderRow, PositionRow


class VenueClock:
    """The venue time a table's painted cells are drawn at (one per table)."""

    __slots__ = ("venue_time",)

    def __init__(self) -> None:
        self.venue_time: datetime | None = None


class PaintedCell:
    """A cell whose text follows its table's venue clock: worked out when painted.

    Its look besides the text (style, width) is fixed when the cell is made and is
    part of its identity: a cell whose look must change (a countdown turning red)
    is replaced by a new one, which re-renders its row."""

    __slots__ = ("at", "clock", "style", "width")

    def __init__(self, at: datetime | None, clock: VenueClock, *, width: int, style: str = "") -> None:
        self.at, self.clock, self.width, self.style = at, clock, width, style

    @property
    def plain(self) -> str:
        raise NotImplementedError

    @property
    def text(self) -> Text:
        return Text(self.plain, justify="right", style=self.style)

    @property
    def cell_len(self) -> int:
        return self.width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, PaintedCell)
            and other.at == self.at
            and other.clock is self.clock
            and other.width == self.width
            and other.style == self.style
        )

    def __hash__(self) -> int:
        return hash((self.at, self.style))


class AgeCell(PaintedCell):
    """How long ago `since` was on the venue clock."""

    __slots__ = ()
    #: as wide as '9h59m' (the widest age of a session's day, and the header's room)
    WIDTH = 5

    def __init__(self, since: datetime | None, clock: VenueClock) -> None:
        super().__init__(since, clock, width=self.WIDTH)

    @property
    def since(self) -> datetime | None:
        return self.at

    @property
    def plain(self) -> str:
        return fmt.duration(fmt.seconds_between(self.at, self.clock.venue_time))


class CountdownCell(PaintedCell):
    """The time left until `at` on the venue clock ('expired' after it)."""

    __slots__ = ()

    @property
    def plain(self) -> str:
        return fmt.duration(fmt.seconds_between(self.clock.venue_time, self.at))


Cell = str | Text | PaintedCell


_NO_MARKS: Mapping[str, Any] = MappingProxyType({})


def _same(before: Cell, after: Cell) -> bool:
    """Cells equal as shown: rich's Text == ignores the base style (a highlight)."""
    if isinstance(before, Text) and isinstance(after, Text):
        return before == after and before.style == after.style
    return before == after


def _same_row(before: tuple[Cell, ...], after: tuple[Cell, ...]) -> bool:
    return len(before) == len(after) and all(_same(b, a) for b, a in zip(before, after, strict=False))


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a row's rendering may depend on besides the row itself."""

    venue_time: datetime | None
    #: the latest market price by symbol (the snapshot's quotes when it carries them,
    #: else the positions' last prices); a symbol without one shows a dash
    marks: Mapping[str, Any] = field(default_factory=lambda: _NO_MARKS)


class LiveTable(DataTable):
    """A DataTable whose rows mirror a mapping of engine rows keyed by id."""

    DEFAULT_CSS = """
    LiveTable {
        height: 1fr;
    }
    """

    #: (column key, label, right-aligned)
    COLUMNS: ClassVar[Sequence[tuple[str, str, bool]]] = ()
    #: indexes of the columns that depend on the venue clock
    TIME_COLUMNS: ClassVar[Sequence[int]] = ()
    #: indexes of the columns that depend on market prices (RenderContext.marks)
    MARK_COLUMNS: ClassVar[Sequence[int]] = ()
    #: above this many removals in one snapshot, remove them in one pass
    BULK_REMOVE_AT: ClassVar[int] = 16
    #: the TIME_COLUMNS are painted cells (PaintedCell) reading self.clock: a clock
    #: tick repaints those columns' cells on screen (render_line) instead of
    #: re-rendering rows. Rows are one line each, no row labels (painting relies on it).
    PAINTED_CLOCK: ClassVar[bool] = False
    #: on a tick, make every row's time cells again and re-render the rows whose
    #: painted cells' look changed (a countdown turning red): for a table whose
    #: time cells' style or width follows the clock (a walk over every row)
    PAINTED_LOOK_FOLLOWS_CLOCK: ClassVar[bool] = False

    def __init__(self, *, title: str, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_row_labels=False)
        self.title = title
        self.border_title = title
        self._source: dict[str, Any] = {}
        self._cells: dict[str, tuple[Cell, ...]] = {}
        self._venue_time: datetime | None = None
        self._marks: Mapping[str, Any] | None = None
        self._column_keys = [key for key, _label, _right in self.COLUMNS]
        self._widest: dict[str, int] = {}  # widest text seen per column (widths only grow)
        self._first_shown: dict[str, float] = {}  # monotonic time each row appeared on screen
        self._ctx = RenderContext(venue_time=None)
        self.clock = VenueClock()
        self._spans: list[tuple[int, int, int]] | None = None  # painted columns, during render_lines
        self._pass_style: Style | None = None  # rich_style, during render_lines
        self._titled: str | None = None  # the border title of the rows last shown
        #: the text each painted cell on screen was last drawn with, by (row, column) index
        self._painted: dict[tuple[int, int], str] = {}

    def on_mount(self) -> None:
        for key, label, right in self.COLUMNS:
            self.add_column(Text(label, justify="right") if right else label, key=key)

    # -- what subclasses say -------------------------------------------------

    def render_row(self, row: Any, ctx: RenderContext) -> tuple[Cell, ...]:
        raise NotImplementedError

    def subtitle(self, rows: Mapping[str, Any]) -> str:
        return f"{len(rows)}"

    # -- reconciliation ------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        """The id of the row under the cursor, or None."""
        if not self.row_count:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return row_key.value

    @property
    def selected_row(self) -> Any | None:
        key = self.selected_key
        return None if key is None else self._source.get(key)

    def on_screen_for(self, key: str) -> float:
        """Seconds the row has been on screen (0 when it is not)."""
        shown = self._first_shown.get(key)
        return 0.0 if shown is None else time.monotonic() - shown

    def row_added(self, key: str) -> None:
        """A row appeared (its cells are in the table): subclasses may mark it."""

    def rerender(self, key: str) -> None:
        """Render one row again from its source (e.g. its 'new' mark expired)."""
        row = self._source.get(key)
        if row is None:
            return
        old, new = self._cells[key], self.render_row(row, self._ctx)
        if _same_row(old, new):
            return
        self._cells[key] = new
        touched: set[tuple[RowKey, ColumnKey]] = set()
        for index, (before, after) in enumerate(zip(old, new, strict=False)):
            if not _same(before, after):
                self._set_cell(key, index, after)
                touched.add((RowKey(key), ColumnKey(self._column_keys[index])))
        self._cells_changed(touched, structural=False)

    def reconcile(self, rows: Mapping[str, Any], ctx: RenderContext) -> int:
        """Bring the table in line with `rows`. Returns how many cells changed."""
        self._ctx = ctx
        selected = self.selected_key
        changed = 0
        structural = False  # rows came or went: their order and offsets change
        touched: set[tuple[RowKey, ColumnKey]] = set()  # cells whose value changed in place
        # the same rows as last time (compared in C, identity first: at 10,000 rows a
        # fraction of a millisecond, against walking them in Python twice)
        same_rows = len(rows) == len(self._source) and rows == self._source
        gone = [] if same_rows else [key for key in self._source if key not in rows]
        if gone:
            self._remove(gone)
            changed += len(gone)
            structural = True
        clock_moved = bool(self.TIME_COLUMNS) and ctx.venue_time != self._venue_time
        self.clock.venue_time = ctx.venue_time
        if clock_moved and self.PAINTED_CLOCK:
            # the painted cells read the clock: repaint what is on screen (and, where
            # their look follows the clock, replace the cells whose look changed)
            clock_moved = self.PAINTED_LOOK_FOLLOWS_CLOCK
            self._repaint_shown()
        marks_moved = bool(self.MARK_COLUMNS) and ctx.marks is not self._marks
        self._venue_time, self._marks = ctx.venue_time, ctx.marks
        source, cells_by_key = self._source, self._cells
        for key, row in () if same_rows and not clock_moved and not marks_moved else rows.items():
            prev = source.get(key)
            if prev is None:
                self._first_shown[key] = time.monotonic()
                cells = self.render_row(row, ctx)
                self._note_widths(cells)
                self.add_row(*cells, key=key)
                source[key] = row
                cells_by_key[key] = cells
                self.row_added(key)
                changed += 1
                structural = True
                continue
            if prev is row and not clock_moved and not marks_moved:
                continue
            old = cells_by_key[key]
            if prev is row:
                new = self._rerender_time(row, old, ctx, clock_moved, marks_moved)
            else:
                new = self.render_row(row, ctx)
                source[key] = row
            if _same_row(new, old):
                continue
            cells_by_key[key] = new
            row_key = RowKey(key)
            for index, (before, after) in enumerate(zip(old, new, strict=False)):
                if not _same(before, after):
                    self._set_cell(key, index, after)
                    touched.add((row_key, ColumnKey(self._column_keys[index])))
                    changed += 1
        if changed:
            if structural:
                self._painted.clear()  # rows moved: all of it is drawn again
            self._cells_changed(touched, structural)
        if not same_rows or self._titled is None:  # the same rows: the same subtitle
            self._titled = f"{self.title} · {self.subtitle(rows)}"
        if self.border_title != self._titled:
            self.border_title = self._titled
        if selected is not None and selected in rows and selected != self.selected_key:
            self.move_cursor(row=self.get_row_index(selected), animate=False, scroll=False)
        return changed

    def _cells_changed(self, touched: set[tuple[RowKey, ColumnKey]], structural: bool) -> None:
        """Have the changed cells drawn again, once per snapshot.

        DataTable invalidates everything by bumping its update count: every cache is
        keyed by it, among them the row order and the line offsets of every row,
        which it then rebuilds — at 10,000 rows, most of a frame, for 1,000 values
        changed or a second ticking. When only values changed in place (no row came
        or went, no column grew) the order and offsets still hold: drop the changed
        cells' renders and the row and line renders (only rows on screen are in
        them), and repaint."""
        if structural or self._require_update_dimensions:
            self._update_count += 1
        else:
            cells = self._cell_render_cache
            for cache_key in [k for k in cells.keys() if (k[0], k[1]) in touched]:
                cells.discard(cache_key)
            self._row_renderable_cache.clear()
            self._row_render_cache.clear()
            self._line_cache.clear()
        self.refresh()

    def _repaint_shown(self) -> None:
        """Have the painted time cells on screen whose text changed drawn again, and
        nothing else: the lines DataTable has drawn stay (its caches are not
        touched), render_line writes the cells' current text over them. A tick
        that changes no text on screen (the clock moved 0.1 s) repaints nothing."""
        header = self.header_height if self.show_header else 0
        scroll_x, top = self.scroll_offset
        shown = range(top, min(top + self.size.height - header, self.row_count))
        painted = self._painted
        for column_index, x, width in self._painted_spans():
            changed = [
                row_index
                for row_index in shown
                if (cell := self.get_cell_at(Coordinate(row_index, column_index))) is not None
                and painted.get((row_index, column_index)) != getattr(cell, "plain", None)
            ]
            if changed:
                y = header + changed[0] - top
                self.refresh(Region(x - scroll_x, y, width, changed[-1] - changed[0] + 1))

    def _painted_spans(self) -> list[tuple[int, int, int]]:
        """(column index, x in the table, render width) of each painted column."""
        spans, x = [], 0
        painted = self.TIME_COLUMNS if self.PAINTED_CLOCK else ()
        for index, column in enumerate(self.ordered_columns):
            width = column.get_render_width(self)
            if index in painted:
                spans.append((index, x, width))
            x += width
        return spans

    def render_lines(self, crop: Region) -> list[Strip]:
        self._spans = self._painted_spans() if self.PAINTED_CLOCK else []
        self._pass_style = super().rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._spans, self._pass_style = None, None

    @property
    def rich_style(self) -> Style:
        """The widget's style, worked out once per render pass: DataTable asks for it
        for every line, and each time it walks the styles of every ancestor
        (nothing can restyle the widget in the middle of a synchronous render)."""
        style = self._pass_style
        return super().rich_style if style is None else style

    def render_line(self, y: int) -> Strip:
        """DataTable's line, with the painted cells' text as of now written over it.

        The line may be one DataTable drew earlier (a cached line), so its painted
        cells may show an older clock: each is written again from its cell, in the
        style the line has there (the row's, the cursor's). Tied to DataTable's
        line layout in textual 8.2 (pinned in pyproject.toml): one line per row
        under the header, columns side by side at their render widths, scrolled
        by scroll_offset; tests/console/test_order_ages.py compares painted lines
        with those DataTable renders from scratch."""
        strip = super().render_line(y)
        if not self.PAINTED_CLOCK:
            return strip
        spans = self._spans if self._spans is not None else self._painted_spans()
        header = self.header_height if self.show_header else 0
        scroll_x, scroll_y = self.scroll_offset
        row_index = y - header + scroll_y
        if y < header or not spans or row_index >= self.row_count:
            return strip
        for column_index, x, width in spans:
            cell = self.get_cell_at(Coordinate(row_index, column_index))
            if isinstance(cell, PaintedCell):
                text = self._painted[(row_index, column_index)] = cell.plain
                strip = _paint(strip, x - scroll_x, width, text, self.cell_padding)
        return strip

    def time_cells(self, row: Any, ctx: RenderContext) -> tuple[Cell, ...]:
        """The cells of TIME_COLUMNS alone (cheaper than the whole row)."""
        fresh = self.render_row(row, ctx)
        return tuple(fresh[i] for i in self.TIME_COLUMNS)

    def mark_cells(self, row: Any, ctx: RenderContext) -> tuple[Cell, ...]:
        """The cells of MARK_COLUMNS alone."""
        fresh = self.render_row(row, ctx)
        return tuple(fresh[i] for i in self.MARK_COLUMNS)

    def _rerender_time(
        self, row: Any, old: tuple[Cell, ...], ctx: RenderContext, clock_moved: bool = True, marks_moved: bool = False
    ) -> tuple[Cell, ...]:
        cells = list(old)
        if clock_moved:
            for index, cell in zip(self.TIME_COLUMNS, self.time_cells(row, ctx), strict=False):
                cells[index] = cell
        if marks_moved:
            for index, cell in zip(self.MARK_COLUMNS, self.mark_cells(row, ctx), strict=False):
                cells[index] = cell
        return tuple(cells)

    def _set_cell(self, key: str, index: int, value: Cell) -> None:
        """DataTable.update_cell without its per-cell repaint request: the table is
        refreshed once per snapshot (reconcile), whatever the number of cells."""
        column_key = self._column_keys[index]
        row_key = RowKey(key)
        self._data[row_key][ColumnKey(column_key)] = value
        text_width = value.cell_len if isinstance(value, (Text, PaintedCell)) else len(value)
        if text_width > self._widest.get(column_key, 0):
            self._widest[column_key] = text_width
            column = self.columns[ColumnKey(column_key)]
            if text_width > column.content_width:
                # widths only grow (as DataTable does for a wider cell), measured once
                column.content_width = text_width
                self._require_update_dimensions = True

    def _note_widths(self, cells: tuple[Cell, ...]) -> None:
        widest = self._widest
        for column_key, value in zip(self._column_keys, cells, strict=False):
            width = value.cell_len if isinstance(value, (Text, PaintedCell)) else len(value)
            if width > widest.get(column_key, 0):
                widest[column_key] = width

    def _remove(self, keys: list[str]) -> None:
        for key in keys:
            del self._source[key]
            del self._cells[key]
            self._first_shown.pop(key, None)
        if len(keys) < self.BULK_REMOVE_AT:
            for key in keys:
                self.remove_row(key)
            return
        # DataTable.remove_row renumbers every row after the removed one; for many
        # removals at once, renumber once (same bookkeeping, one pass).
        doomed = {RowKey(key) for key in keys}
        where = self._row_locations
        survivors = sorted((where.get(row_key), row_key) for row_key in where if row_key not in doomed)
        self._row_locations = type(where)({row_key: new_index for new_index, (_old, row_key) in enumerate(survivors)})
        for row_key in doomed:
            for column_key in self._data.get(row_key, ()):
                self._updated_cells.discard((row_key, column_key))
            self.rows.pop(row_key, None)
            self._data.pop(row_key, None)
        self._require_update_dimensions = True
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        self.check_idle()
        self.refresh(layout=True)


def _paint(strip: Strip, x: int, width: int, text: str, padding: int) -> Strip:
    """`strip` with the cell at x (width cells, padding included) showing `text`
    right-aligned, as DataTable renders a right-justified one-style Text (cropped
    when too wide): the padding and the text keep the styles the strip has there."""
    line_width = strip.cell_length
    start, end = max(x, 0), min(x + width, line_width)
    if start >= end:
        return strip
    before, old, after = strip.divide([start, end, line_width])
    styles: list[Style | None] = [None] * (start - x)  # the style of each cell of the cell
    for segment in old:
        styles.extend([segment.style] * cell_len(segment.text))
    styles.extend([None] * (width - len(styles)))
    room = width - 2 * padding
    pad_style = styles[0] if styles[0] is not None else styles[-1]
    text_style = next((style for style in styles[padding : padding + room] if style is not None), None)
    fitted = set_cell_size(text, room) if cell_len(text) >= room else " " * (room - cell_len(text)) + text
    pad = " " * padding
    segments = (
        [Segment(f"{pad}{fitted}{pad}", pad_style)]
        if pad_style == text_style
        else [Segment(pad, pad_style), Segment(fitted, text_style), Segment(pad, pad_style)]
    )
    if start != x or end != x + width:  # the cell is cut by an edge of the table
        segments = list(Strip(segments, width).crop(start - x, end - x))
    # one new Strip (each has caches of its own to set up): the parts are the
    # line's, cut where they were last time (Strip.divide keeps its cuts)
    return Strip([*before, *segments, *after], line_width)


def _notional_text(value: Any) -> str:
    return fmt.money(value, decimals=0)


class ApprovalQueue(LiveTable):
    """Order intents waiting for the operator: approve (a) or reject (r)."""

    COLUMNS = (
        ("symbol", "Symbol", False),
        ("side", "Side", False),
        ("qty", "Qty", True),
        ("limit", "Limit", True),
        ("notional", "Notional", True),
        ("signal", "Signal", True),
        ("left", "Left", True),
        ("verdict", "Risk verdict", False),
    )
    TIME_COLUMNS = (6,)
    PAINTED_CLOCK = True
    PAINTED_LOOK_FOLLOWS_CLOCK = True

    def __init__(self, *, id: str | None = "approval-queue", new_row_guard: float = 0.0) -> None:
        super().__init__(title="Approval queue", id=id)
        #: seconds a row is "new": highlighted, and not the target of approve / approve all
        self.new_row_guard = new_row_guard
        self._fresh: set[str] = set()

    def subtitle(self, rows: Mapping[str, Any]) -> str:
        return f"{len(rows)} waiting"

    def is_new(self, key: str) -> bool:
        """True while the row has been on screen for less than the guard."""
        return key in self._source and self.on_screen_for(key) < self.new_row_guard

    @property
    def new_keys(self) -> list[str]:
        return [key for key in self._source if self.is_new(key)]

    @property
    def seen_keys(self) -> list[str]:
        """The rows the operator has had the time to see: the targets of approve all."""
        return [key for key in self._source if not self.is_new(key)]

    def row_added(self, key: str) -> None:
        if self.new_row_guard <= 0:
            return
        self._fresh.add(key)
        self.rerender(key)

        def settled() -> None:
            self._fresh.discard(key)
            self.rerender(key)
            refresh_enabled = getattr(self.screen, "refresh_enabled", None)
            if refresh_enabled is not None:
                refresh_enabled()  # approve applies to it now: the footer says so

        self.set_timer(self.new_row_guard, settled)

    def render_row(self, row: IntentRow, ctx: RenderContext) -> tuple[Cell, ...]:
        verdict = Text("ok", style="green") if row.verdict == "ok" else Text(row.verdict, style="bold yellow")
        if row.verdict_detail and row.verdict != "ok":
            verdict.append(f" {row.verdict_detail}", style="dim")
        symbol = Text(row.symbol, style="bold black on yellow" if row.intent_id in self._fresh else "bold")
        if row.reason != "signal":
            symbol.append(f" {row.reason}", style="italic dim")
        return (
            symbol,
            fmt.side_text(row.side),
            Text(fmt.qty(row.qty), justify="right"),
            Text(fmt.price(row.limit_price), justify="right"),
            Text(_notional_text(row.notional), justify="right"),
            Text(fmt.signal(row.signal), justify="right"),
            *self.time_cells(row, ctx),
            verdict,
        )

    def time_cells(self, row: IntentRow, ctx: RenderContext) -> tuple[Cell, ...]:
        """The time left, painted; its look (red under 15 s, its width) is made
        again on every tick and the row re-rendered when it changed."""
        left = fmt.seconds_between(ctx.venue_time, row.expires_at)
        urgent = left is not None and left < 15
        width = cell_len(fmt.duration(left))
        return (CountdownCell(row.expires_at, self.clock, width=width, style="bold red" if urgent else ""),)


_STATUS_STYLE = {
    "new": "cyan",
    "accepted": "cyan",
    "pending_new": "cyan",
    "partially_filled": "bold cyan",
    "submitting": "yellow",
    "unknown": "bold yellow",
    "pending_cancel": "magenta",
}


class WorkingOrders(LiveTable):
    """Orders working at the venue (or in flight to it); external ones marked."""

    COLUMNS = (
        ("symbol", "Symbol", False),
        ("side", "Side", False),
        ("status", "Status", False),
        ("filled", "Filled/Qty", True),
        ("limit", "Limit", True),
        ("mkt", "Mkt", True),
        ("dist", "To limit", True),
        ("avg", "Avg px", True),
        ("age", "Age", True),
        ("id", "Client order id", False),
    )
    TIME_COLUMNS = (8,)  # age
    MARK_COLUMNS = (5, 6)  # market price, distance to the limit
    PAINTED_CLOCK = True

    def __init__(self, *, id: str | None = "working-orders") -> None:
        super().__init__(title="Working orders", id=id)

    def subtitle(self, rows: Mapping[str, Any]) -> str:
        external = sum(1 for row in rows.values() if row.external)
        return f"{len(rows)} open" + (f", {external} external" if external else "")

    def render_row(self, row: OrderRow, ctx: RenderContext) -> tuple[Cell, ...]:
        symbol = Text(row.symbol, style="bold")
        if row.external:
            symbol.append(" EXT", style="bold magenta")
        return (
            symbol,
            fmt.side_text(row.side),
            Text(row.status, style=_STATUS_STYLE.get(row.status, "")),
            Text(f"{fmt.qty(row.filled_qty)}/{fmt.qty(row.qty)}", justify="right"),
            Text(fmt.price(row.limit_price) if row.limit_price is not None else row.order_type, justify="right"),
            *self._market_cells(row, ctx),
            Text(fmt.price(row.filled_avg_price), justify="right"),
            self._age_cell(row, ctx),
            Text(row.client_order_id, style="dim"),
        )

    def time_cells(self, row: OrderRow, ctx: RenderContext) -> tuple[Cell, ...]:
        return (self._age_cell(row, ctx),)

    def mark_cells(self, row: OrderRow, ctx: RenderContext) -> tuple[Cell, ...]:
        return self._market_cells(row, ctx)

    def _age_cell(self, row: OrderRow, ctx: RenderContext) -> Cell:
        return AgeCell(row.submitted_at, self.clock)

    @staticmethod
    def _market_cells(row: OrderRow, ctx: RenderContext) -> tuple[Cell, Cell]:
        """The market price and how far it must move to reach the limit: for a buy,
        how far the market is above the limit; for a sell, below it (0 % = at the limit)."""
        mark = ctx.marks.get(row.symbol)
        if mark is None:
            return Text(fmt.DASH, justify="right"), Text(fmt.DASH, justify="right")
        mark = Decimal(mark)
        if row.limit_price is None or not row.limit_price:
            return Text(fmt.price(mark), justify="right"), Text(fmt.DASH, justify="right")
        away = (mark - row.limit_price) / row.limit_price
        if row.side == "sell":
            away = -away
        style = "green" if away <= 0 else "yellow" if away < Decimal("0.005") else ""
        return Text(fmt.price(mark), justify="right"), Text(f"{float(away) * 100:+.2f}%", justify="right", style=style)


class Positions(LiveTable):
    """Positions as the broker reports them, with P&L, share of equity and stop."""

    COLUMNS = (
        ("symbol", "Symbol", False),
        ("qty", "Qty", True),
        ("avg", "Avg entry", True),
        ("last", "Last", True),
        ("value", "Mkt value", True),
        ("upl", "Unreal. P&L", True),
        ("share", "% eq", True),
        ("stop", "Stop", True),
        ("ovr", "Ovr", False),
    )

    def __init__(self, *, id: str | None = "positions") -> None:
        super().__init__(title="Positions", id=id)

    def subtitle(self, rows: Mapping[str, Any]) -> str:
        return f"{len(rows)} held"

    def render_row(self, row: PositionRow, ctx: RenderContext) -> tuple[Cell, ...]:
        upl = fmt.pnl_text(row.unrealized_pl)
        upl.justify = "right"
        return (
            Text(row.symbol, style="bold"),
            Text(fmt.qty(row.qty), justify="right", style="red" if row.qty < 0 else ""),
            Text(fmt.price(row.avg_entry_price), justify="right"),
            Text(fmt.price(row.last_price), justify="right"),
            Text(fmt.money(row.market_value, decimals=0), justify="right"),
            upl,
            Text(fmt.pct(row.share_of_equity), justify="right"),
            Text(fmt.price(row.stop_price), justify="right"),
            Text("OVR", style="bold magenta") if row.override else Text(""),
        )
