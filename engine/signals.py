"""Signal sources: JSONL or CSV files followed as they grow, JSONL on stdin, a Python
callable called every bar, and the demo model. Bad input never trades: every refused
line or entry becomes a DroppedSignal with a stable reason code (docs/signals.md)."""

from __future__ import annotations

import asyncio
import csv
import importlib
import inspect
import json
import math
import numbers
import os
import re
import statistics
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from engine.config import Settings

__all__ = [
    "Bar",
    "CallableSource",
    "CsvFileSource",
    "DemoSource",
    "DropReason",
    "DroppedSignal",
    "JsonlFileSource",
    "JsonlStreamSource",
    "MarketView",
    "Quote",
    "SignalBatch",
    "SignalSource",
    "SignalSourceError",
    "demo_signals",
    "load_callable",
    "open_source",
]

# Limits and timings (documented in docs/signals.md).
MAX_LINE_BYTES = 1 << 20  # a longer line is skipped unread, as LINE_TOO_LONG
READ_CHUNK = 64 * 1024
POLL_INTERVAL = 0.2  # seconds between looks at a followed file that has not grown
CSV_IDLE_FLUSH = 0.5  # seconds a CSV file must stop growing before its last group is emitted
MAX_DROPS_PER_BATCH = 100  # further drops of one batch are summarised in one TOO_MANY_DROPS
MAX_CSV_GROUP_ROWS = 10_000  # a CSV group larger than this is refused whole
CALLABLE_BARS = 60  # minute bars per symbol handed to a callable
DEMO_SHORT = 5  # demo model: short moving average, in bars
DEMO_LONG = 20  # demo model: long moving average and deviation window, in bars
DEMO_MIN_BARS = 10  # demo model: fewer closes than this -> no signal for the symbol yet
DEMO_GAIN = 0.5  # demo model: s = tanh(DEMO_GAIN * z)
_DETAIL_CHARS = 80  # how much of a bad value or symbol a detail quotes


class DropReason(StrEnum):
    """Why a signal or a whole line was not acted on. Values are stable codes."""

    # one entry of a batch
    NAN = "NAN"
    INFINITE = "INFINITE"
    NOT_A_NUMBER = "NOT_A_NUMBER"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    UNTRADABLE_SYMBOL = "UNTRADABLE_SYMBOL"
    DUPLICATE_SYMBOL = "DUPLICATE_SYMBOL"
    TOO_MANY_DROPS = "TOO_MANY_DROPS"
    # a whole line
    MALFORMED_LINE = "MALFORMED_LINE"
    TRUNCATED_LINE = "TRUNCATED_LINE"
    BINARY_GARBAGE = "BINARY_GARBAGE"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    BAD_HEADER = "BAD_HEADER"
    # a whole batch, because of its timestamp or size
    BAD_TIMESTAMP = "BAD_TIMESTAMP"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    DUPLICATE_BATCH = "DUPLICATE_BATCH"
    STALE_BATCH = "STALE_BATCH"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    # a callable
    CALLABLE_ERROR = "CALLABLE_ERROR"
    BAD_RETURN = "BAD_RETURN"
    # the input itself
    READ_ERROR = "READ_ERROR"


@dataclass(frozen=True)
class DroppedSignal:
    """One refused entry or line: a stable reason code, and what was found where."""

    reason: str
    detail: str
    symbol: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class SignalBatch:
    """The signals of one bar. `signals` holds only valid entries (finite, in [-1, 1],
    known and tradable symbols). `rejected` is True when the whole line or batch was
    refused: the Engine logs `dropped` and does nothing else for it (it is not a bar)."""

    ts: datetime
    signals: Mapping[str, float]
    dropped: tuple[DroppedSignal, ...] = ()
    origin: str = ""
    rejected: bool = False


@dataclass(frozen=True)
class Bar:
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal
    ts: datetime


class MarketView(Protocol):
    """What a signal source may see of the market; provided by the Engine."""

    def now(self) -> datetime: ...

    def symbols(self) -> frozenset[str]: ...

    def bars(self, symbol: str, n: int) -> Sequence[Any]: ...

    def quotes(self) -> Mapping[str, Any]: ...

    async def next_bar(self) -> datetime: ...


@runtime_checkable
class SignalSource(Protocol):
    def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]: ...

    async def aclose(self) -> None: ...


class SignalSourceError(Exception):
    """A source that cannot start: missing file, callable that does not import."""

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path


# --------------------------------------------------------------------------- values


class _Unreadable:
    """A JSON number literal too large for a float (1e400, 10**400): OUT_OF_RANGE,
    not INFINITE, because the sender wrote a finite number."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return _clip(self.text)


def _clip(text: str, limit: int = _DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    """A found value as the sender wrote it (JSON spelling), short."""
    if isinstance(value, _Unreadable):
        return repr(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, _Pairs):
        return f"an object of {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, str):
        return "text " + _clip(repr(value))
    try:
        return _clip(repr(value))
    except Exception:  # a junk object from a callable with a failing __repr__
        return f"a {type(value).__name__}"


def _shown_symbol(symbol: Any) -> str:
    return _clip(repr(symbol), 40) if isinstance(symbol, str) else f"{_shown(symbol)} ({type(symbol).__name__})"


def _classify(value: Any) -> tuple[float | None, DropReason | None]:
    """A signal value -> (float, None) when valid, else (None, reason)."""
    if isinstance(value, _Unreadable):
        return None, DropReason.OUT_OF_RANGE
    if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":
        return None, DropReason.NOT_A_NUMBER
    if not isinstance(value, (numbers.Real, Decimal)):
        return None, DropReason.NOT_A_NUMBER
    try:
        number = float(value)
    except OverflowError:
        return None, DropReason.OUT_OF_RANGE
    except (ValueError, TypeError):  # Decimal('sNaN'), a broken Real
        return None, DropReason.NAN
    if math.isnan(number):
        return None, DropReason.NAN
    if math.isinf(number):
        return None, DropReason.INFINITE
    if not -1.0 <= number <= 1.0:
        return None, DropReason.OUT_OF_RANGE
    return number, None


_CSV_NUMBER = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE)


def _text_value(text: str) -> Any:
    """A CSV cell -> a float, an _Unreadable (overflow) or the text itself (not a
    number). Only plain ASCII decimal numbers, nan and inf[inity] are numbers."""
    stripped = text.strip()
    if not _CSV_NUMBER.fullmatch(stripped):
        return stripped
    number = float(stripped)
    if math.isinf(number) and stripped.lstrip("+-").lower() not in ("inf", "infinity"):
        return _Unreadable(stripped)
    return number


_NO_TS = object()


def _parse_ts(raw: Any) -> tuple[datetime | None, str]:
    """An ISO 8601 timestamp with a timezone -> UTC datetime, else (None, why)."""
    if raw is _NO_TS or raw == "":
        return None, "missing ts"
    if not isinstance(raw, str):
        return None, f"ts {_shown(raw)} is not an ISO 8601 string"
    try:
        ts = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None, f"ts {_shown(raw)} is not an ISO 8601 timestamp"
    if ts.tzinfo is None or ts.utcoffset() is None:
        return None, f"ts {_shown(raw)} has no timezone (write Z or +00:00)"
    return ts.astimezone(timezone.utc), ""


def _drop(reason: DropReason, detail: str, symbol: str | None = None, line: int | None = None) -> DroppedSignal:
    return DroppedSignal(reason=reason.value, detail=detail, symbol=symbol, line=line)


@dataclass
class _Entry:
    symbol: Any
    value: Any
    line: int | None


@dataclass
class _Judge:
    """Turns (ts, entries) into a SignalBatch: the one place that decides what is valid.
    Remembers the last accepted bar to refuse repeats and batches out of order."""

    known_symbols: frozenset[str]
    max_age: float
    last_ts: datetime | None = None

    def reject(
        self,
        market: MarketView,
        reason: DropReason,
        detail: str,
        *,
        origin: str,
        ts: datetime | None = None,
        line: int | None = None,
        symbol: str | None = None,
    ) -> SignalBatch:
        return SignalBatch(
            ts=ts if ts is not None else _utc(market.now()),
            signals={},
            dropped=(_drop(reason, detail, symbol, line),),
            origin=origin,
            rejected=True,
        )

    def judge(
        self,
        market: MarketView,
        ts: datetime,
        entries: Sequence[_Entry],
        *,
        origin: str,
        where: str,
        line: int | None = None,
    ) -> SignalBatch:
        count = len(entries)
        refusal = self._refuse_ts(market, ts, where, count)
        if refusal is not None:
            reason, detail = refusal
            return self.reject(market, reason, detail, origin=origin, ts=ts, line=line)
        self.last_ts = ts

        tradable = market.symbols()
        by_symbol: dict[Any, list[_Entry]] = {}
        unhashable: list[_Entry] = []
        for entry in entries:
            try:
                by_symbol.setdefault(entry.symbol, []).append(entry)
            except TypeError:
                unhashable.append(entry)

        signals: dict[str, float] = {}
        dropped: list[DroppedSignal] = []
        for entry in unhashable:
            dropped.append(_drop(DropReason.UNKNOWN_SYMBOL, f"{_where(where, entry)}: {_shown_symbol(entry.symbol)} is not a symbol", None, entry.line))
        for symbol, group in by_symbol.items():
            first = group[0]
            at = _where(where, first)
            name = symbol if isinstance(symbol, str) else None
            times = f" ({len(group)} times)" if len(group) > 1 else ""
            if not isinstance(symbol, str) or symbol not in self.known_symbols:
                hint = ""
                if isinstance(symbol, str) and symbol.strip().upper() in self.known_symbols:
                    hint = f" (symbols are exact, upper case: {symbol.strip().upper()})"
                dropped.append(_drop(DropReason.UNKNOWN_SYMBOL, f"{at}: unknown symbol {_shown_symbol(symbol)}{times}{hint}", _clip(name) if name else None, first.line))
            elif symbol not in tradable:
                dropped.append(_drop(DropReason.UNTRADABLE_SYMBOL, f"{at}: {symbol} is not tradable now{times}", symbol, first.line))
            elif len(group) > 1:
                seen = ", ".join(_shown(e.value) for e in group[:5]) + (", …" if len(group) > 5 else "")
                lines = [str(e.line) for e in group[:5]]
                where_all = f"{where.rsplit(':', 1)[0]}:{','.join(lines)}" if len(set(lines)) > 1 else at
                dropped.append(_drop(DropReason.DUPLICATE_SYMBOL, f"{where_all}: {symbol} appears {len(group)} times in one batch ({seen}); none is used", symbol, first.line))
            else:
                number, reason = _classify(first.value)
                if reason is None:
                    signals[symbol] = number  # type: ignore[assignment]
                else:
                    dropped.append(_drop(reason, f"{at}: {symbol}: expected a number in [-1, 1], found {_shown(first.value)}", symbol, first.line))
        return SignalBatch(ts=ts, signals=signals, dropped=_capped(dropped, where), origin=origin)

    def _refuse_ts(self, market: MarketView, ts: datetime, where: str, count: int) -> tuple[DropReason, str] | None:
        n = _not_acted_on(count)
        stamp = _iso(ts)
        if self.last_ts is not None and ts < self.last_ts:
            return DropReason.OUT_OF_ORDER, f"{where}: ts {stamp} is older than the last batch {_iso(self.last_ts)}; {n}"
        if self.last_ts is not None and ts == self.last_ts:
            return DropReason.DUPLICATE_BATCH, f"{where}: a batch for {stamp} was already taken; {n}"
        now = _utc(market.now())
        age = (now - ts).total_seconds()
        if age > self.max_age:
            return DropReason.STALE_BATCH, f"{where}: ts {stamp} is {age:.0f}s old at venue time {_iso(now)} (max_age {self.max_age:g}s); {n}"
        if -age > self.max_age:
            return DropReason.FUTURE_TIMESTAMP, f"{where}: ts {stamp} is {-age:.0f}s ahead of venue time {_iso(now)} (tolerance {self.max_age:g}s); {n}"
        return None


def _not_acted_on(count: int) -> str:
    return f"{count} signal{'s' if count != 1 else ''} not acted on"


def _where(where: str, entry: _Entry) -> str:
    """"file:12" for a CSV row's own line; the batch's place otherwise."""
    if entry.line is not None and ":" in where and not where.endswith(f":{entry.line}"):
        return f"{where.rsplit(':', 1)[0]}:{entry.line}"
    return where


def _capped(dropped: list[DroppedSignal], where: str) -> tuple[DroppedSignal, ...]:
    if len(dropped) <= MAX_DROPS_PER_BATCH:
        return tuple(dropped)
    kept, rest = dropped[: MAX_DROPS_PER_BATCH - 1], dropped[MAX_DROPS_PER_BATCH - 1 :]
    by_reason: dict[str, int] = {}
    for d in rest:
        by_reason[d.reason] = by_reason.get(d.reason, 0) + 1
    summary = ", ".join(f"{r}: {n}" for r, n in sorted(by_reason.items()))
    return tuple(kept) + (_drop(DropReason.TOO_MANY_DROPS, f"{where}: {len(rest)} more entries dropped ({summary})"),)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- lines


@dataclass(frozen=True)
class _TooLong:
    size: int


class _LineSplitter:
    """Bytes in, numbered complete lines out. A line longer than MAX_LINE_BYTES is
    skipped as it streams past (never held whole) and comes out as _TooLong."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES):
        self._max = max_bytes
        self._buf = bytearray()
        self._skipping = 0  # bytes of an over-long line seen so far; 0 = not skipping
        self.line_no = 0

    @property
    def pending(self) -> bool:
        return bool(self._buf) or self._skipping > 0

    def feed(self, chunk: bytes) -> list[tuple[int, bytes | _TooLong]]:
        out: list[tuple[int, bytes | _TooLong]] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if self._skipping:
                self._skipping += len(piece)
            elif len(self._buf) + len(piece) > self._max:
                self._skipping = len(self._buf) + len(piece)
                self._buf.clear()
            else:
                self._buf += piece
            if nl < 0:
                return out
            self.line_no += 1
            if self._skipping:
                out.append((self.line_no, _TooLong(self._skipping)))
                self._skipping = 0
            else:
                out.append((self.line_no, bytes(self._buf)))
                self._buf.clear()
            start = nl + 1

    def finish(self) -> tuple[int, bytes | _TooLong] | None:
        """The partial last line (no newline), if any; the splitter is empty after."""
        if not self.pending:
            return None
        self.line_no += 1
        item: bytes | _TooLong = _TooLong(self._skipping) if self._skipping else bytes(self._buf)
        self._buf.clear()
        self._skipping = 0
        return self.line_no, item


_CONTROL = bytes(c for c in range(32) if c not in (9, 13))  # NUL and C0 controls except tab, CR


def _decode_line(raw: bytes, line_no: int) -> tuple[str | None, str]:
    """Bytes of one line -> text, or (None, why) for binary garbage. Strips a final CR
    and, on line 1, a UTF-8 byte-order mark."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if len(raw.translate(None, _CONTROL)) != len(raw):
        bad = next(i for i, b in enumerate(raw) if b in _CONTROL)
        return None, f"control byte 0x{raw[bad]:02x} at column {bad + 1}"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


# --------------------------------------------------------------------------- JSON


class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, so duplicate keys stay visible."""

    def keys_seen(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        for k, _ in self:
            seen[k] = seen.get(k, 0) + 1
        return seen


def _parse_int(text: str) -> Any:
    if len(text.lstrip("-")) > 300:  # beyond any float; also below Python's int digit limit
        return _Unreadable(text)
    return int(text)


def _parse_float(text: str) -> Any:
    number = float(text)
    return _Unreadable(text) if math.isinf(number) else number


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs, parse_int=_parse_int, parse_float=_parse_float)


@dataclass(frozen=True)
class _LineVerdict:
    """A JSONL line read: either entries to judge, or a refusal of the whole line."""

    ts: datetime | None = None
    entries: tuple[_Entry, ...] = ()
    reason: DropReason | None = None
    detail: str = ""


def _json_type(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _read_jsonl_line(text: str, line_no: int, where: str) -> _LineVerdict:
    try:
        doc = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: not JSON: {exc.msg} at column {exc.colno}")
    except (RecursionError, ValueError) as exc:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: not JSON: {type(exc).__name__}")
    if not isinstance(doc, _Pairs):
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: expected a JSON object {{\"ts\": ..., \"signals\": {{...}}}}, found {_json_type(doc)}")
    keys = doc.keys_seen()
    twice = [k for k in ("ts", "signals") if keys.get(k, 0) > 1]
    if twice:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: key {twice[0]!r} appears {keys[twice[0]]} times")
    fields = dict(doc)
    if "signals" not in fields:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: no \"signals\" object")
    signals = fields["signals"]
    if not isinstance(signals, _Pairs):
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: \"signals\" must be an object {{symbol: number}}, found {_shown(signals)}")
    ts, why = _parse_ts(fields.get("ts", _NO_TS))
    if ts is None:
        return _LineVerdict(reason=DropReason.BAD_TIMESTAMP, detail=f"{where}: {why}; {_not_acted_on(len(signals))}")
    return _LineVerdict(ts=ts, entries=tuple(_Entry(k, v, line_no) for k, v in signals))


# --------------------------------------------------------------------------- sources


T = TypeVar("T")


class _Closed(Exception):
    pass


class _SourceBase:
    """aclose() for every source: wakes any wait, lets the iteration finish what it
    already has (a partial last line becomes TRUNCATED_LINE), then end."""

    def __init__(self, known_symbols: frozenset[str], max_age: float):
        self._judge = _Judge(frozenset(known_symbols), float(max_age))
        self._closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def aclose(self) -> None:
        self._closing.set()

    async def _unless_closed(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, or raise _Closed as soon as aclose() is called."""
        work = asyncio.ensure_future(awaitable)
        if self._closing.is_set():
            work.cancel()
            raise _Closed
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({work, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not work.done():
                work.cancel()
        if work.cancelled() or not work.done():
            raise _Closed
        return work.result()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on aclose()."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except (asyncio.TimeoutError, TimeoutError):
            pass


class _JsonlLines(_SourceBase):
    """Shared by the file and stream JSONL sources: bytes -> batches."""

    name = "jsonl"

    def __init__(self, known_symbols: frozenset[str], max_age: float):
        super().__init__(known_symbols, max_age)
        self._splitter = _LineSplitter()

    def _batches_from(self, market: MarketView, chunk: bytes) -> list[SignalBatch]:
        return [self._line_batch(market, n, raw) for n, raw in self._splitter.feed(chunk) if not _blank(raw)]

    def _end_batches(self, market: MarketView) -> list[SignalBatch]:
        tail = self._splitter.finish()
        if tail is None:
            return []
        line_no, raw = tail
        where = f"{self.name}:{line_no}"
        if isinstance(raw, _TooLong):
            return [self._judge.reject(market, DropReason.LINE_TOO_LONG, f"{where}: line of {raw.size} bytes (limit {MAX_LINE_BYTES}), unfinished at close", origin=where, line=line_no)]
        if _blank(raw):
            return []
        return [self._judge.reject(market, DropReason.TRUNCATED_LINE, f"{where}: last line has no newline at close ({len(raw)} bytes: {_clip(raw.decode('utf-8', 'replace'), 40)!r})", origin=where, line=line_no)]

    def _line_batch(self, market: MarketView, line_no: int, raw: bytes | _TooLong) -> SignalBatch:
        where = f"{self.name}:{line_no}"
        if isinstance(raw, _TooLong):
            return self._judge.reject(market, DropReason.LINE_TOO_LONG, f"{where}: line of {raw.size} bytes skipped (limit {MAX_LINE_BYTES})", origin=where, line=line_no)
        text, why = _decode_line(raw, line_no)
        if text is None:
            return self._judge.reject(market, DropReason.BINARY_GARBAGE, f"{where}: {why}", origin=where, line=line_no)
        verdict = _read_jsonl_line(text, line_no, where)
        if verdict.reason is not None:
            return self._judge.reject(market, verdict.reason, verdict.detail, origin=where, line=line_no)
        assert verdict.ts is not None
        return self._judge.judge(market, verdict.ts, verdict.entries, origin=where, where=where, line=line_no)


def _read_failed(judge: _Judge, market: MarketView, where: str, exc: BaseException) -> SignalBatch:
    return judge.reject(market, DropReason.READ_ERROR, f"{where}: reading failed: {type(exc).__name__}: {_clip(str(exc))}; this source ends here", origin=where)


def _blank(raw: bytes | _TooLong) -> bool:
    return isinstance(raw, bytes) and not raw.strip()


class _FollowedFile:
    """A file read from the start and then followed as it grows (tail -f). If it is
    replaced (new inode) or shrinks (truncated), it is read again from the start."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._ino: int | None = None
        self._pos = 0

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDONLY)
        self._ino = os.fstat(self._fd).st_ino
        self._pos = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> bytes:
        """The next chunk (b"" when nothing new)."""
        assert self._fd is not None
        chunk = os.pread(self._fd, READ_CHUNK, self._pos)
        self._pos += len(chunk)
        return chunk

    def restarted(self) -> bool:
        """True (and reopened at the start) when the path now names another file or
        the file became shorter than what was read."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # being replaced: keep the old one until the new one appears
        if st.st_ino != self._ino or st.st_size < self._pos:
            self.close()
            self.open()
            return True
        return False


def _checked_path(path: str, kind: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SignalSourceError(f"signals.path {path!r} ({kind}): file not found", path=path)
    if p.is_dir():
        raise SignalSourceError(f"signals.path {path!r} ({kind}): is a directory, expected a file", path=path)
    try:
        os.close(os.open(p, os.O_RDONLY))
    except OSError as exc:
        raise SignalSourceError(f"signals.path {path!r} ({kind}): cannot read: {exc.strerror}", path=path) from None
    return p


class JsonlFileSource(_JsonlLines):
    """One batch per line of a JSONL file, read from its start and followed as it grows.
    Ends only after aclose(); a last line still without newline then is TRUNCATED_LINE."""

    def __init__(self, path: str | os.PathLike[str], *, known_symbols: frozenset[str], max_age: float, poll_interval: float = POLL_INTERVAL):
        super().__init__(known_symbols, max_age)
        self._file = _FollowedFile(_checked_path(os.fspath(path), "jsonl"))
        self.name = self._file.path.name
        self._poll = poll_interval

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        try:
            self._file.open()
        except OSError as exc:
            yield _read_failed(self._judge, market, f"{self.name}:1", exc)
            return
        try:
            while True:
                closing = self._closing.is_set()  # read once more after aclose(), then stop
                try:
                    chunk = self._file.read()
                    restarted = not chunk and not closing and self._file.restarted()
                except OSError as exc:
                    yield _read_failed(self._judge, market, f"{self.name}:{self._splitter.line_no + 1}", exc)
                    break
                if chunk:
                    for batch in self._batches_from(market, chunk):
                        yield batch
                    continue
                if closing:
                    break
                if restarted:
                    for batch in self._end_batches(market):
                        yield batch
                    self._splitter = _LineSplitter()
                    continue
                await self._pause(self._poll)
            for batch in self._end_batches(market):
                yield batch
        finally:
            self._file.close()


class JsonlStreamSource(_JsonlLines):
    """One batch per line from a stream (stdin): an asyncio.StreamReader, or a binary
    file object read by a daemon thread. Ends at end of input or aclose()."""

    def __init__(self, stream: Any, *, known_symbols: frozenset[str], max_age: float, name: str = "stdin"):
        super().__init__(known_symbols, max_age)
        self.name = name
        if isinstance(stream, asyncio.StreamReader):
            self._reader: asyncio.StreamReader | None = stream
            self._fileobj = None
        else:
            self._reader = None
            self._fileobj = getattr(stream, "buffer", stream)  # text stdin -> its bytes
            if not (hasattr(self._fileobj, "read1") or hasattr(self._fileobj, "read")):
                raise SignalSourceError(f"signals from {name}: {type(stream).__name__} is not readable")

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        read = self._reader.read if self._reader is not None else self._thread_reader()
        while True:
            try:
                chunk = await self._unless_closed(read(READ_CHUNK))
            except _Closed:
                break
            except Exception as exc:  # noqa: BLE001 - a broken stream ends the source, said in a drop
                where = f"{self.name}:{self._splitter.line_no + 1}"
                yield _read_failed(self._judge, market, where, exc)
                break
            if not chunk:
                break
            for batch in self._batches_from(market, chunk):
                yield batch
        for batch in self._end_batches(market):
            yield batch

    def _thread_reader(self) -> Callable[[int], Awaitable[bytes]]:
        """A daemon thread reads the file object and hands chunks to the loop; it never
        holds up shutdown (a blocking read on a silent pipe cannot be cancelled)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        fileobj = self._fileobj
        read_some = getattr(fileobj, "read1", None) or fileobj.read

        def pump() -> None:
            while True:
                try:
                    chunk = read_some(READ_CHUNK)
                    item: bytes | BaseException = bytes(chunk or b"")
                except BaseException as exc:  # noqa: BLE001
                    item = exc
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # loop closed
                    return
                if not isinstance(item, bytes) or not item:
                    return

        threading.Thread(target=pump, name=f"signals-{self.name}", daemon=True).start()

        async def read(_: int) -> bytes:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            return item

        return read


@dataclass
class _CsvGroup:
    ts: datetime
    first_line: int
    last_line: int
    entries: list[_Entry] = field(default_factory=list)
    rows: int = 0


class CsvFileSource(_SourceBase):
    """`ts,symbol,signal` rows (header first); consecutive rows with the same ts form one
    batch, emitted when the ts changes, when the file has not grown for CSV_IDLE_FLUSH
    seconds, or at aclose(). The file is followed as it grows, like JSONL."""

    COLUMNS = ("ts", "symbol", "signal")

    def __init__(self, path: str | os.PathLike[str], *, known_symbols: frozenset[str], max_age: float, poll_interval: float = POLL_INTERVAL, idle_flush: float = CSV_IDLE_FLUSH):
        super().__init__(known_symbols, max_age)
        self._file = _FollowedFile(_checked_path(os.fspath(path), "csv"))
        self.name = self._file.path.name
        self._poll = poll_interval
        self._idle_flush = idle_flush
        self._splitter = _LineSplitter()
        self._columns: tuple[int, int, int] | None = None
        self._width = 3
        self._group: _CsvGroup | None = None

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        loop = asyncio.get_running_loop()
        try:
            self._file.open()
        except OSError as exc:
            yield _read_failed(self._judge, market, f"{self.name}:1", exc)
            return
        last_growth = loop.time()
        try:
            while True:
                closing = self._closing.is_set()
                try:
                    chunk = self._file.read()
                    restarted = not chunk and not closing and self._file.restarted()
                except OSError as exc:
                    yield _read_failed(self._judge, market, f"{self.name}:{self._splitter.line_no + 1}", exc)
                    break
                if chunk:
                    last_growth = loop.time()
                    for n, raw in self._splitter.feed(chunk):
                        for batch in self._row(market, n, raw):
                            yield batch
                    continue
                if closing:
                    break
                if restarted:
                    for batch in self._end(market):
                        yield batch
                    self._splitter, self._columns, self._width = _LineSplitter(), None, 3
                    continue
                if self._group is not None and loop.time() - last_growth >= self._idle_flush:
                    yield self._flush(market)
                    continue
                await self._pause(self._poll)
            for batch in self._end(market):
                yield batch
        finally:
            self._file.close()

    def _end(self, market: MarketView) -> list[SignalBatch]:
        out = []
        tail = self._splitter.finish()
        if tail is not None and not _blank(tail[1]):
            n, raw = tail
            where = f"{self.name}:{n}"
            if isinstance(raw, _TooLong):
                out.append(self._judge.reject(market, DropReason.LINE_TOO_LONG, f"{where}: line of {raw.size} bytes (limit {MAX_LINE_BYTES}), unfinished at close", origin=where, line=n))
            else:
                out.append(self._judge.reject(market, DropReason.TRUNCATED_LINE, f"{where}: last row has no newline at close ({_clip(raw.decode('utf-8', 'replace'), 40)!r})", origin=where, line=n))
        if self._group is not None:
            out.append(self._flush(market))
        return out

    def _flush(self, market: MarketView) -> SignalBatch:
        group, self._group = self._group, None
        assert group is not None
        span = f"{group.first_line}" if group.first_line == group.last_line else f"{group.first_line}-{group.last_line}"
        origin = f"{self.name}:{span}"
        if group.rows > MAX_CSV_GROUP_ROWS:
            return self._judge.reject(market, DropReason.BATCH_TOO_LARGE, f"{origin}: {group.rows} rows for {_iso(group.ts)} (limit {MAX_CSV_GROUP_ROWS}); none acted on", origin=origin, ts=group.ts, line=group.first_line)
        return self._judge.judge(market, group.ts, group.entries, origin=origin, where=f"{self.name}:{group.first_line}", line=group.first_line)

    def _row(self, market: MarketView, n: int, raw: bytes | _TooLong) -> list[SignalBatch]:
        where = f"{self.name}:{n}"
        reject = self._judge.reject
        if isinstance(raw, _TooLong):
            return [reject(market, DropReason.LINE_TOO_LONG, f"{where}: line of {raw.size} bytes skipped (limit {MAX_LINE_BYTES})", origin=where, line=n)]
        if _blank(raw):
            return []
        text, why = _decode_line(raw, n)
        if text is None:
            return [reject(market, DropReason.BINARY_GARBAGE, f"{where}: {why}", origin=where, line=n)]
        try:
            cells = [c.strip() for c in next(csv.reader([text], strict=True))]
        except (csv.Error, StopIteration) as exc:
            return [reject(market, DropReason.MALFORMED_LINE, f"{where}: not a CSV row: {exc}", origin=where, line=n)]
        if self._columns is None:
            return self._header(market, n, cells, where)
        if len(cells) != self._width:
            return [reject(market, DropReason.MALFORMED_LINE, f"{where}: {len(cells)} fields, expected {self._width} ({','.join(self.COLUMNS)})", origin=where, line=n)]
        ts_raw, symbol, value = (cells[i] for i in self._columns)
        ts, why = _parse_ts(ts_raw)
        if ts is None:
            return [reject(market, DropReason.BAD_TIMESTAMP, f"{where}: {why}", origin=where, line=n, symbol=_clip(symbol) or None)]
        out = []
        if self._group is not None and self._group.ts != ts:
            out.append(self._flush(market))
        if self._group is None:
            self._group = _CsvGroup(ts=ts, first_line=n, last_line=n)
        group = self._group
        group.last_line = n
        group.rows += 1
        if group.rows <= MAX_CSV_GROUP_ROWS:
            group.entries.append(_Entry(symbol, _text_value(value), n))
        return out

    def _header(self, market: MarketView, n: int, cells: list[str], where: str) -> list[SignalBatch]:
        names = [c.lower() for c in cells]
        if all(names.count(c) == 1 for c in self.COLUMNS):
            self._columns = tuple(names.index(c) for c in self.COLUMNS)  # type: ignore[assignment]
            self._width = len(names)
            return []
        self._columns, self._width = (0, 1, 2), 3
        return [self._judge.reject(market, DropReason.BAD_HEADER, f"{where}: first row {_clip(','.join(cells), 60)!r} is not the header ts,symbol,signal; line skipped, columns taken as ts,symbol,signal", origin=where, line=n)]


def load_callable(spec: str) -> Callable[..., Any]:
    """"package.module:function" (or "package.module:Class.method") -> the callable.
    Raises SignalSourceError naming the spec when it cannot be imported."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise SignalSourceError(f"signals.callable {spec!r}: expected \"package.module:function\"", path=spec)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a startup error
        raise SignalSourceError(f"signals.callable {spec!r}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}", path=spec) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SignalSourceError(f"signals.callable {spec!r}: module {module_name!r} has no attribute {attr_path!r}", path=spec) from None
    if not callable(target):
        raise SignalSourceError(f"signals.callable {spec!r}: {attr_path!r} is a {type(target).__name__}, not a function", path=spec)
    return target


class _EveryBar(_SourceBase):
    """A source that computes one batch at each bar close of the venue clock."""

    name = "bar"

    async def batches(self, market: MarketView) -> AsyncIterator[SignalBatch]:
        while True:
            try:
                ts = _utc(await self._unless_closed(market.next_bar()))
            except _Closed:
                return
            try:
                batch = await self._unless_closed(self._compute(market, ts))
            except _Closed:
                return
            yield batch

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:  # pragma: no cover
        raise NotImplementedError


class CallableSource(_EveryBar):
    """Calls `function(bars, quotes)` at every bar: bars is {symbol: the last
    CALLABLE_BARS minute bars, oldest first} for the tradable universe, quotes is
    {symbol: Quote}. It returns {symbol: signal}. A plain function runs in a worker
    thread (the engine stays responsive); an async one is awaited. Raising or returning
    something that is not a mapping drops the bar (CALLABLE_ERROR / BAD_RETURN)."""

    def __init__(self, function: Callable[..., Any], *, known_symbols: frozenset[str], max_age: float, name: str | None = None):
        super().__init__(known_symbols, max_age)
        self._function = function
        self.name = name or f"callable:{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:
        where = f"{self.name}@{_iso(ts)}"
        symbols = sorted(market.symbols() & self._judge.known_symbols)
        bars = {s: tuple(market.bars(s, CALLABLE_BARS)) for s in symbols}
        quotes = dict(market.quotes())
        try:
            if inspect.iscoroutinefunction(self._function):
                result = await self._function(bars, quotes)
            else:
                result = await _in_daemon_thread(self._function, bars, quotes)
                if inspect.isawaitable(result):
                    result = await result
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a failing model drops its bar, never the engine
            return self._judge.reject(market, DropReason.CALLABLE_ERROR, f"{where}: raised {type(exc).__name__}: {_clip(str(exc), 200)}", origin=self.name, ts=ts)
        if not isinstance(result, Mapping):
            return self._judge.reject(market, DropReason.BAD_RETURN, f"{where}: returned {_shown(result)} ({type(result).__name__}), expected a mapping {{symbol: signal}}", origin=self.name, ts=ts)
        try:
            entries = [_Entry(k, v, None) for k, v in result.items()]
        except Exception as exc:  # noqa: BLE001 - a junk mapping
            return self._judge.reject(market, DropReason.BAD_RETURN, f"{where}: its mapping cannot be read: {type(exc).__name__}: {_clip(str(exc))}", origin=self.name, ts=ts)
        return self._judge.judge(market, ts, entries, origin=self.name, where=where)


async def _in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in its own daemon thread: unlike the default executor, a call
    that never returns cannot hold up the process at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # loop closed meanwhile
            pass

    threading.Thread(target=run, name="signals-callable", daemon=True).start()
    return await future


def demo_signals(bars: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    """The demo model: a moving-average crossover per symbol, in units of the recent
    price spread, squashed into [-1, 1]. Pure and deterministic (same bars -> same
    signals). With c = the last min(DEMO_LONG, n) closes (n >= DEMO_MIN_BARS):

        z = (mean(last DEMO_SHORT of c) - mean(c)) / pstdev(c)
        s = round(tanh(DEMO_GAIN * z), 4)        (s = 0 when pstdev(c) = 0)
    """
    out: dict[str, float] = {}
    for symbol in sorted(bars):
        closes = [float(b.close) for b in bars[symbol]][-DEMO_LONG:]
        if len(closes) < DEMO_MIN_BARS or not all(math.isfinite(c) and c > 0 for c in closes):
            continue
        spread = statistics.pstdev(closes)
        if spread <= 0:
            out[symbol] = 0.0
            continue
        z = (math.fsum(closes[-DEMO_SHORT:]) / DEMO_SHORT - math.fsum(closes) / len(closes)) / spread
        out[symbol] = round(math.tanh(DEMO_GAIN * z), 4) + 0.0  # + 0.0: no -0.0
    return out


class DemoSource(_EveryBar):
    """The built-in demo model (see demo_signals) over the venue's minute bars of the
    tradable universe, one batch per bar."""

    name = "demo"

    async def _compute(self, market: MarketView, ts: datetime) -> SignalBatch:
        symbols = sorted(market.symbols() & self._judge.known_symbols)
        signals = demo_signals({s: market.bars(s, DEMO_LONG) for s in symbols})
        entries = [_Entry(s, v, None) for s, v in signals.items()]
        return self._judge.judge(market, ts, entries, origin="demo", where=f"demo@{_iso(ts)}")


def open_source(settings: Settings, *, known_symbols: frozenset[str], stdin: Any = None) -> SignalSource:
    """The source `[signals]` names. Raises SignalSourceError when it cannot start
    (file missing or unreadable, callable that does not import)."""
    cfg = settings.signals
    known = frozenset(known_symbols)
    if cfg.kind == "demo":
        return DemoSource(known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "callable":
        return CallableSource(load_callable(cfg.callable), known_symbols=known, max_age=cfg.max_age, name=f"callable:{cfg.callable}")
    if cfg.kind == "jsonl" and cfg.path == "-":
        return JsonlStreamSource(stdin if stdin is not None else sys.stdin, known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "jsonl":
        return JsonlFileSource(cfg.path, known_symbols=known, max_age=cfg.max_age)
    if cfg.kind == "csv":
        return CsvFileSource(cfg.path, known_symbols=known, max_age=cfg.max_age)
    raise SignalSourceError(f"signals.kind {cfg.kind!r} is not a known source")  # pragma: no cover
