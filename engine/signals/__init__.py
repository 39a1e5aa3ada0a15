"""Signal sources: JSONL or CSV files followed as they grow, JSONL on stdin, a Python
callable called every bar, and the demo model. Bad input never trades: every refused
line or entry becomes a DroppedSignal with a stable reason code (docs/signals.md).

    types.py       SignalBatch, DroppedSignal, DropReason, MarketView, Bar, Quote, errors
    decoding.py    bytes -> lines -> JSON objects / CSV cells / timestamps
    validation.py  which entries of a batch are acted on, which batches are refused
    base.py        what every source shares (its judge, aclose)
    files.py       JSONL and CSV files followed as they grow, JSONL on stdin
    models.py      the callable and demo models, one batch per bar close
    push.py        batches pushed in by the program running the session (engine.Desk)
    factory.py     open_source(settings): the source the configuration names
"""

from __future__ import annotations

from engine.signals.decoding import MAX_LINE_BYTES
from engine.signals.decoding import _LineSplitter as _LineSplitter  # for tests
from engine.signals.decoding import _TooLong as _TooLong  # for tests
from engine.signals.factory import open_source
from engine.signals.files import (
    CSV_IDLE_FLUSH,
    HEAD_BYTES,
    LINES_PER_YIELD,
    MAX_CSV_GROUP_ROWS,
    POLL_INTERVAL,
    READ_CHUNK,
    TAIL_BYTES,
    CsvFileSource,
    JsonlFileSource,
    JsonlStreamSource,
)
from engine.signals.models import (
    CALLABLE_BARS,
    DEMO_GAIN,
    DEMO_LONG,
    DEMO_MIN_BARS,
    DEMO_SHORT,
    CallableSource,
    DemoSource,
    demo_signals,
    load_callable,
)
from engine.signals.push import PushSource, SignalInputError
from engine.signals.types import (
    Bar,
    DroppedSignal,
    DropReason,
    MarketView,
    Quote,
    SignalBatch,
    SignalKind,
    SignalSource,
    SignalSourceError,
)
from engine.signals.validation import MAX_DROPS_PER_BATCH

__all__ = [
    # the limits and timings of docs/signals.md, each defined in the module that uses it
    # (patch it there, e.g. engine.signals.files.MAX_CSV_GROUP_ROWS)
    "CALLABLE_BARS",
    "CSV_IDLE_FLUSH",
    "DEMO_GAIN",
    "DEMO_LONG",
    "DEMO_MIN_BARS",
    "DEMO_SHORT",
    "HEAD_BYTES",
    "LINES_PER_YIELD",
    "MAX_CSV_GROUP_ROWS",
    "MAX_DROPS_PER_BATCH",
    "MAX_LINE_BYTES",
    "POLL_INTERVAL",
    "READ_CHUNK",
    "TAIL_BYTES",
    # sources and what they produce
    "Bar",
    "CallableSource",
    "CsvFileSource",
    "DemoSource",
    "DropReason",
    "DroppedSignal",
    "JsonlFileSource",
    "JsonlStreamSource",
    "MarketView",
    "PushSource",
    "Quote",
    "SignalBatch",
    "SignalInputError",
    "SignalKind",
    "SignalSource",
    "SignalSourceError",
    "demo_signals",
    "load_callable",
    "open_source",
]
