"""The report's vocabulary: its formats, tables and latency series, ReportError, and
how a figure is written (Decimals as exact strings, ISO times, milliseconds between
journal times, nearest-rank percentiles)."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from engine.errors import ExecdeskError

FORMATS = ("text", "md", "csv", "json")
CSV_TABLES = ("orders", "fills")
#: Latency series, in the order they are shown.
LATENCY_KEYS = (
    "signal_to_submit",
    "signal_to_submit_auto",
    "approval_wait",
    "submit_to_ack",
    "submit_to_first_fill",
)
PERCENTILES = (50, 90, 99)

_BPS = Decimal(10000)
_BPS_PLACES = Decimal("0.0001")
_RATE_PLACES = Decimal("0.0001")

ORDER_COLUMNS = (
    "session_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "order_type",
    "limit_price",
    "status",
    "filled_qty",
    "filled_avg_price",
    "decision_price",
    "slippage_bps",
    "signal",
    "reason",
    "denial_reason",
    "detail",
    "external",
    "venue_order_id",
    "bar_ts",
    "created_at",
    "submitted_at",
    "final_at",
    "signal_to_submit_ms",
    "approval_wait_ms",
    "submit_to_ack_ms",
    "submit_to_first_fill_ms",
)

FILL_COLUMNS = (
    "session_id",
    "execution_id",
    "client_order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "ts",
    "decision_price",
    "slippage_bps",
    "slippage_cost",
    "realized_pl",
    "journal_seq",
)


class ReportError(ExecdeskError):
    """The report cannot be built: no such journal, no such session, unreadable file."""


#: the memos of the report's modules (register_memo): kept for one report (the outermost
#: gc_paused), so that a long-lived process holds none of them between reports
_MEMOS: list[dict] = []
_DEPTH = [0]
MEMO_MAX = 1 << 16  # entries a memo keeps at most


def register_memo(memo: dict) -> None:
    """Forget memo's entries when the report that filled it is done."""
    _MEMOS.append(memo)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile. Building a report makes hundreds of
    thousands of objects that all live until it is done; the collector would walk
    them again and again (a third of the time at 10,000 orders) to free nothing.
    Leaving the outermost one forgets the memos (register_memo)."""
    was_enabled = gc.isenabled()
    gc.disable()
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1
        if _DEPTH[0] <= 0:
            _DEPTH[0] = 0
            for memo in _MEMOS:
                memo.clear()
        if was_enabled:
            gc.enable()


# ---- small helpers ---------------------------------------------------------------------


# Memos of the figures a report writes again and again. _dec's keeps its Decimals alive,
# so an id names one Decimal (1 and 1.0 are equal but written differently: not by value);
# _derived's result depends on the value only (normalized), so it is keyed by value.
_DEC_TEXT: dict[int, tuple[Decimal, str]] = {}
_DERIVED: dict[Decimal, str] = {}
register_memo(_DEC_TEXT)
register_memo(_DERIVED)


def _dec(value: Decimal | None) -> str | None:
    """A Decimal from the journal as an exact string (never exponent notation)."""
    if value is None:
        return None
    kept = _DEC_TEXT.get(id(value))
    if kept is not None and kept[0] is value:
        return kept[1]
    text = format(value, "f")
    if len(_DEC_TEXT) < MEMO_MAX:
        _DEC_TEXT[id(value)] = (value, text)
    return text


def _derived(value: Decimal | None) -> str | None:
    """A computed Decimal as an exact string without trailing zeros."""
    if value is None:
        return None
    text = _DERIVED.get(value)
    if text is None:
        text = "0" if value == 0 else format(value.normalize(), "f")
        if len(_DERIVED) < MEMO_MAX:
            _DERIVED[value] = text
    return text


def _q(value: Decimal, places: Decimal) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


#: isoformat() of the UTC times a report writes again and again (a batch's bar time, a
#: fill's venue time): equal UTC datetimes have the same isoformat, so one call each
_ISO: dict[datetime, str] = {}
register_memo(_ISO)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:
        text = _ISO.get(value)
        if text is None:
            text = value.isoformat()
            if len(_ISO) < MEMO_MAX:
                _ISO[value] = text
        return text
    return value.isoformat()


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000.0, 3)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of the
    values at or below it. None for no values."""
    if not values:
        return None
    return _ranked(sorted(values), p)


def _ranked(ordered: Sequence[float], p: float) -> float:
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_stats(values: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(values)}
    ordered = sorted(values)  # (once for every percentile)
    for p in PERCENTILES:
        out[f"p{p}"] = _ranked(ordered, p) if ordered else None
    out["max"] = max(values) if values else None
    return out


def _reason_code(reason: str) -> str:
    """ "CODE: detail" -> "CODE" (the whole text when there is no code)."""
    code, sep, _ = reason.partition(":")
    code = code.strip()
    return code if sep and code else reason.strip() or "UNSPECIFIED"
