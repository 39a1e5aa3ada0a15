"""What a signal source is and what it produces: SignalBatch, DroppedSignal with its
DropReason codes, the MarketView a source reads (Bar, Quote), and SignalSourceError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from engine.errors import ExecdeskError
from engine.portfolio import Quote  # the engine's one Quote, as the portfolio keeps it

__all__ = [
    "Bar",
    "DropReason",
    "DroppedSignal",
    "MarketView",
    "Quote",
    "SignalBatch",
    "SignalKind",
    "SignalSource",
    "SignalSourceError",
]


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


class SignalKind(StrEnum):
    """What the numbers of a batch are: scores (a model's conviction, sized by
    position_sizing.max_position_size) or target weights (signed fractions of
    equity). docs/risk.md says how the two relate."""

    SCORE = "score"
    WEIGHT = "weight"


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
    refused: the Engine logs `dropped` and does nothing else for it (it is not a bar).
    `kind` says whether `signals` holds scores or target weights (same range)."""

    ts: datetime
    signals: Mapping[str, float]
    dropped: tuple[DroppedSignal, ...] = ()
    origin: str = ""
    rejected: bool = False
    kind: SignalKind = SignalKind.SCORE


@dataclass(frozen=True)
class Bar:
    """A minute bar of one symbol as signal models see it: the engine's one Bar (the
    broker's VenueBar is the record off the wire, with its symbol)."""

    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


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


class SignalSourceError(ExecdeskError):
    """A source that cannot start: missing file, callable that does not import."""

    def __init__(self, message: str, *, path: str | None = None):
        super().__init__(message)
        self.path = path
