"""Validation: the one place that decides which signals of a batch are acted on
(finite, in [-1, 1], known and tradable, not repeated) and which batches are refused
whole (out of order, repeated, stale, from the future)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.signals.decoding import (
    _clip,
    _Entry,
    _iso,
    _not_acted_on,
    _shown,
    _shown_symbol,
    _Unreadable,
    _utc,
)
from engine.signals.types import DroppedSignal, DropReason, MarketView, SignalBatch, SignalKind

MAX_DROPS_PER_BATCH = 100  # further drops of one batch are summarised in one TOO_MANY_DROPS
_EXPECTED = {SignalKind.SCORE: "a number", SignalKind.WEIGHT: "a weight (fraction of equity)"}


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


def _drop(reason: DropReason, detail: str, symbol: str | None = None, line: int | None = None) -> DroppedSignal:
    return DroppedSignal(reason=reason.value, detail=detail, symbol=symbol, line=line)


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
        kind: SignalKind = SignalKind.SCORE,
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
            dropped.append(
                _drop(
                    DropReason.UNKNOWN_SYMBOL,
                    f"{_where(where, entry)}: {_shown_symbol(entry.symbol)} is not a symbol",
                    None,
                    entry.line,
                )
            )
        for symbol, group in by_symbol.items():
            first = group[0]
            at = _where(where, first)
            name = symbol if isinstance(symbol, str) else None
            times = f" ({len(group)} times)" if len(group) > 1 else ""
            if not isinstance(symbol, str) or symbol not in self.known_symbols:
                hint = ""
                if isinstance(symbol, str) and symbol.strip().upper() in self.known_symbols:
                    hint = f" (symbols are exact, upper case: {symbol.strip().upper()})"
                dropped.append(
                    _drop(
                        DropReason.UNKNOWN_SYMBOL,
                        f"{at}: unknown symbol {_shown_symbol(symbol)}{times}{hint}",
                        _clip(name) if name else None,
                        first.line,
                    )
                )
            elif symbol not in tradable:
                dropped.append(
                    _drop(
                        DropReason.UNTRADABLE_SYMBOL, f"{at}: {symbol} is not tradable now{times}", symbol, first.line
                    )
                )
            elif len(group) > 1:
                seen = ", ".join(_shown(e.value) for e in group[:5]) + (", …" if len(group) > 5 else "")
                lines = [str(e.line) for e in group[:5]]
                where_all = f"{where.rsplit(':', 1)[0]}:{','.join(lines)}" if len(set(lines)) > 1 else at
                dropped.append(
                    _drop(
                        DropReason.DUPLICATE_SYMBOL,
                        f"{where_all}: {symbol} appears {len(group)} times in one batch ({seen}); none is used",
                        symbol,
                        first.line,
                    )
                )
            else:
                number, refused = _classify(first.value)
                if refused is None:
                    signals[symbol] = number  # type: ignore[assignment]
                else:
                    dropped.append(
                        _drop(
                            refused,
                            f"{at}: {symbol}: expected {_EXPECTED[kind]} in [-1, 1], found {_shown(first.value)}",
                            symbol,
                            first.line,
                        )
                    )
        return SignalBatch(ts=ts, signals=signals, dropped=_capped(dropped, where), origin=origin, kind=kind)

    def _refuse_ts(self, market: MarketView, ts: datetime, where: str, count: int) -> tuple[DropReason, str] | None:
        n = _not_acted_on(count)
        stamp = _iso(ts)
        if self.last_ts is not None and ts < self.last_ts:
            return (
                DropReason.OUT_OF_ORDER,
                f"{where}: ts {stamp} is older than the last batch {_iso(self.last_ts)}; {n}",
            )
        if self.last_ts is not None and ts == self.last_ts:
            return DropReason.DUPLICATE_BATCH, f"{where}: a batch for {stamp} was already taken; {n}"
        now = _utc(market.now())
        age = (now - ts).total_seconds()
        if age > self.max_age:
            return (
                DropReason.STALE_BATCH,
                f"{where}: ts {stamp} is {age:.0f}s old at venue time {_iso(now)} (max_age {self.max_age:g}s); {n}",
            )
        if -age > self.max_age:
            return (
                DropReason.FUTURE_TIMESTAMP,
                f"{where}: ts {stamp} is {-age:.0f}s ahead of venue time {_iso(now)} "
                f"(tolerance {self.max_age:g}s); {n}",
            )
        return None


def _where(where: str, entry: _Entry) -> str:
    """ "file:12" for a CSV row's own line; the batch's place otherwise."""
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
    return (*tuple(kept), _drop(DropReason.TOO_MANY_DROPS, f"{where}: {len(rest)} more entries dropped ({summary})"))
