"""The operator's event log: fills, denials with their reasons, dropped signals,
reconnects, state changes, the kill switch, and what the console itself noticed.
`/` opens a filter that matches kind, symbol or text."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from console import format as fmt
from console.messages import FilterChanged
from console.widgets.form import FormInput
from console.words import operator_words
from engine.snapshot import EventRow

KIND_STYLE = {
    "fill": "green",
    "denial": "yellow",
    "dropped": "dim",
    "reconnect": "cyan",
    "state": "bold magenta",
    "kill": "bold red",
    "order": "dodger_blue2",
    "error": "bold red",
    "console": "italic",
}

KEEP = 5000


KIND_LABEL = {
    "fill": "FILL",
    "denial": "DENY",
    "dropped": "DROP",
    "reconnect": "CONN",
    "state": "STATE",
    "kill": "KILL",
    "order": "ORDER",
    "error": "ERROR",
    "console": "desk",
}


_DENIAL = re.compile(
    r"^DENIED (?:buy|sell) [\d.,]+ [A-Z.\-]+: ([A-Z_]{4,})(.*?)(?:; signal (?:buy|sell) .*)?$", re.DOTALL
)
_AT_PRICE = re.compile(r"@ \$?(\d+(?:\.\d+)?)")
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)*")


def _without_symbol(event: EventRow) -> str:
    """The event's words without its symbol (as a word: "C" is not taken out of "CANCELED")."""
    if not event.symbol:
        return event.text
    text = re.sub(rf"(?<![\w.]){re.escape(event.symbol)}(?![\w.])", "", event.text)
    return re.sub(r"  +", " ", text).strip()


def _repeat_key(event: EventRow) -> tuple:
    """Events with the same key say the same thing (e.g. one denial reason, symbol by
    symbol). A fill never folds with another one: each is an execution of its own, with
    its own quantity and price, and the log shows every one of them."""
    if event.kind == "fill":
        return ("fill", event.seq, event.ts, event.symbol, event.text)
    denial = _DENIAL.match(event.text) if event.kind == "denial" else None
    if denial:
        return ("denial", denial[1], _NUMBERS.sub("#", denial[2]))
    return (event.kind, _NUMBERS.sub("#", _without_symbol(event)))


def _shared_words(texts: list[str]) -> str:
    """The words of texts that differ only in their numbers (same _repeat_key): a number
    they all share as it is, one that differs "…" — a folded line never shows one
    event's quantity or price as if it were all of theirs."""
    first = texts[0]
    columns = zip(*(_NUMBERS.findall(t) for t in texts), strict=True)
    shown = iter([values[0] if len(set(values)) == 1 else "…" for values in columns])
    return _NUMBERS.sub(lambda _m: next(shown), first)


def fold_repeats(events: list[EventRow]) -> list[EventRow]:
    """Consecutive events that say the same thing become one line with a count and
    the symbols: 45 HALTED denials of a bar are one line, not 45 of three lines."""
    out: list[EventRow] = []
    run: list[EventRow] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            out.append(run[0])
        else:
            first = run[0]
            denial = _DENIAL.match(first.text) if first.kind == "denial" else None
            symbols = list(dict.fromkeys(e.symbol for e in run if e.symbol))
            if denial:
                what = f"DENIED: {denial[1]}{denial[2]}"
            elif len(symbols) > 1:  # each event's words name its own symbol: listed at the end
                what = _shared_words([_without_symbol(e) for e in run])
            else:
                what = _shared_words([e.text for e in run])
            listed = ", ".join(symbols)
            text = f"×{len(run)} {what}" + (f" — {listed}" if listed else "")
            out.append(replace(run[-1], symbol=None, text=text))
        run.clear()

    for event in events:
        if run and _repeat_key(run[-1]) != _repeat_key(event):
            flush()
        run.append(event)
    flush()
    return out


def fill_prices(text: str) -> str:
    """The '@ price' of a fill's words as every price on screen (fmt.price)."""
    return _AT_PRICE.sub(lambda m: f"@ {fmt.price(Decimal(m[1]))}", text)


def event_line(event: EventRow) -> Text:
    style = KIND_STYLE.get(event.kind, "")
    line = Text.assemble(
        (fmt.short_time(event.ts), "dim"),
        " ",
        (f"{KIND_LABEL.get(event.kind, event.kind)[:5]:<5}", style),
        " ",
    )
    if event.symbol:
        line.append(f"{event.symbol} ", style="bold")
    text = operator_words(event.text)
    if event.kind == "fill":
        text = fill_prices(text)
    line.append(text, style=style if event.kind in ("error", "kill") else "")
    return line


def matches(event: EventRow, needle: str) -> bool:
    """Every word must match the kind, symbol or text; a word starting with ! must not.
    'aapl fill' = AAPL's fills; '!conn' = everything but connection events."""
    if not needle:
        return True
    haystack = " ".join((event.kind, KIND_LABEL.get(event.kind, ""), event.symbol or "", event.text)).lower()
    for word in needle.lower().split():
        if word.startswith("!"):
            if word[1:] and word[1:] in haystack:
                return False
        elif word not in haystack:
            return False
    return True


class EventLines(RichLog):
    """The log's lines. RichLog wraps a line when it is written; at a new width the
    EventLog writes them all again (asked from here: this widget's own width is the
    one the lines are wrapped to, and it is final only once this widget resized)."""

    def on_resize(self, event: events.Resize | None = None) -> None:
        width = self.scrollable_content_region.width
        if width != getattr(self, "_wrapped_at", width):
            owner = self.parent
            if isinstance(owner, EventLog):
                owner.call_after_refresh(owner._rewrite)
        self._wrapped_at = width


class EventLog(Vertical):
    BINDINGS = [Binding("escape", "close_filter", "Clear filter", show=False)]
    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        border: round $primary;
    }
    EventLog RichLog {
        height: 1fr;
        background: transparent;
        scrollbar-size-vertical: 1;
    }
    EventLog #log-filter {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
    }
    EventLog.-filtering #log-filter { display: block; }
    """

    def __init__(self) -> None:
        super().__init__(id="event-log")
        self.border_title = f"Events ({fmt.zone_label()})"
        self._events: deque[EventRow] = deque(maxlen=KEEP)
        self._last_seq = -1
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield EventLines(max_lines=KEEP, wrap=True, min_width=20, markup=False, highlight=False, id="log-lines")
        yield FormInput(
            placeholder="filter: words to match, !word to hide (enter keeps, esc clears)", id="log-filter", compact=True
        )

    def on_mount(self) -> None:
        self.query_one("#log-filter", Input).cursor_blink = getattr(self.app, "blink", True)

    @property
    def _log(self) -> RichLog:
        return self.query_one("#log-lines", RichLog)

    def show(self, events: Iterable[EventRow]) -> None:
        """Append the events not seen yet (the snapshot carries the most recent ones)."""
        fresh = [event for event in events if event.seq > self._last_seq]
        if not fresh:
            return
        self._last_seq = fresh[-1].seq
        self._append(fresh)

    def note(self, text: str, ts: datetime | None, kind: str = "console") -> None:
        """A line the console itself adds (e.g. it saw the trade stream go down)."""
        self._append([EventRow(seq=-1, ts=ts or datetime.min, kind=kind, symbol=None, text=text)])

    def _append(self, events: list[EventRow]) -> None:
        self._events.extend(events)
        log = self._log
        for event in fold_repeats([e for e in events if matches(e, self.filter_text)]):
            log.write(event_line(event))

    def _rewrite(self) -> None:
        log = self._log
        log.clear()
        for event in fold_repeats([e for e in self._events if matches(e, self.filter_text)]):
            log.write(event_line(event))

    # -- filtering ------------------------------------------------------------

    def open_filter(self) -> None:
        self.add_class("-filtering")
        box = self.query_one("#log-filter", Input)
        box.value = self.filter_text
        box.focus()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        title = f"Events ({fmt.zone_label()})"
        self.border_title = f"{title} · filter: {self.filter_text}" if self.filter_text else title
        self._rewrite()
        self.post_message(FilterChanged(self.filter_text))

    @on(Input.Changed, "#log-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    @on(Input.Submitted, "#log-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        event.stop()
        self._leave_filter()

    def action_close_filter(self) -> None:
        """Escape: clear the filter and close it."""
        self.set_filter("")
        self._leave_filter()

    def _leave_filter(self) -> None:
        self.remove_class("-filtering")
        from console.widgets.tables import LiveTable

        tables = self.screen.query(LiveTable)
        if tables:
            tables.first().focus()
