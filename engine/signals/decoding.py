"""Line decoding: bytes -> numbered lines (over-long ones skipped unread) -> text
(binary garbage refused) -> JSON objects or CSV cells and timestamps; and how a found
value reads in a drop's detail (as the sender wrote it, short)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.signals.types import DropReason, SignalKind

MAX_LINE_BYTES = 1 << 20  # a longer line is skipped unread, as LINE_TOO_LONG
_DETAIL_CHARS = 80  # how much of a bad value or symbol a detail quotes


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
    return ts.astimezone(UTC), ""


@dataclass
class _Entry:
    symbol: Any
    value: Any
    line: int | None


def _not_acted_on(count: int) -> str:
    return f"{count} signal{'s' if count != 1 else ''} not acted on"


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


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


def _blank(raw: bytes | _TooLong) -> bool:
    return isinstance(raw, bytes) and not raw.strip()


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
    kind: SignalKind = SignalKind.SCORE


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
        return _LineVerdict(
            reason=DropReason.MALFORMED_LINE, detail=f"{where}: not JSON: {exc.msg} at column {exc.colno}"
        )
    except (RecursionError, ValueError) as exc:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f"{where}: not JSON: {type(exc).__name__}")
    if not isinstance(doc, _Pairs):
        return _LineVerdict(
            reason=DropReason.MALFORMED_LINE,
            detail=f'{where}: expected a JSON object {{"ts": ..., "signals": {{...}}}}, found {_json_type(doc)}',
        )
    keys = doc.keys_seen()
    twice = [k for k in ("ts", "signals", "weights") if keys.get(k, 0) > 1]
    if twice:
        return _LineVerdict(
            reason=DropReason.MALFORMED_LINE, detail=f"{where}: key {twice[0]!r} appears {keys[twice[0]]} times"
        )
    fields = dict(doc)
    if "signals" in fields and "weights" in fields:
        return _LineVerdict(
            reason=DropReason.MALFORMED_LINE,
            detail=f'{where}: both "signals" and "weights": a line is scores or target weights, not both',
        )
    key, kind = ("weights", SignalKind.WEIGHT) if "weights" in fields else ("signals", SignalKind.SCORE)
    if key not in fields:
        return _LineVerdict(reason=DropReason.MALFORMED_LINE, detail=f'{where}: no "signals" (or "weights") object')
    signals = fields[key]
    if not isinstance(signals, _Pairs):
        return _LineVerdict(
            reason=DropReason.MALFORMED_LINE,
            detail=f'{where}: "{key}" must be an object {{symbol: number}}, found {_shown(signals)}',
        )
    ts, why = _parse_ts(fields.get("ts", _NO_TS))
    if ts is None:
        return _LineVerdict(reason=DropReason.BAD_TIMESTAMP, detail=f"{where}: {why}; {_not_acted_on(len(signals))}")
    return _LineVerdict(ts=ts, entries=tuple(_Entry(k, v, line_no) for k, v in signals), kind=kind)
