"""Commands to the Engine: everything the console, the control socket and the
headless session can ask for. Each is addressed by id (intent id, client order
id, symbol), never by a table position. The Engine answers each with a
CommandResult."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from engine.snapshot import EngineSnapshot


@dataclass(frozen=True, slots=True)
class ApproveIntent:
    intent_id: str


@dataclass(frozen=True, slots=True)
class RejectIntent:
    intent_id: str


@dataclass(frozen=True, slots=True)
class ApproveAll:
    pass


@dataclass(frozen=True, slots=True)
class RejectAll:
    pass


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_order_id: str


@dataclass(frozen=True, slots=True)
class Halt:
    """The kill switch: HALTED at once, one cancel-all to the venue, tracked until
    the venue has confirmed every cancel."""

    cause: str = "operator"


@dataclass(frozen=True, slots=True)
class Resume:
    """Operator-confirmed return to ACTIVE."""

    cause: str = "operator"


@dataclass(frozen=True, slots=True)
class Flatten:
    """Operator-confirmed: close every position."""

    cause: str = "operator"


@dataclass(frozen=True, slots=True)
class SetOverride:
    """Set (or with clear=True remove) a symbol's run-time override. Fields left
    None are not overridden."""

    symbol: str
    mode: str | None = None  # "off" | "approve" | "auto"
    max_position_usd: Decimal | None = None
    max_position_pct: float | None = None
    size_multiplier: float | None = None
    side: str | None = None  # "both" | "long_only" | "short_only"
    clear: bool = False


@dataclass(frozen=True, slots=True)
class StopSession:
    """Operator-confirmed: stop the whole session in order (no new orders, open
    orders left working, journal sealed). Answered by the Session, not the Engine."""

    cause: str = "operator"


@dataclass(frozen=True, slots=True)
class QueryHistory:
    """A query, not a change: the full history of an intent or order (by client
    order id) or of a position (by symbol: its fills and the orders behind them)
    from this session's journal. Answered with CommandResult.rows."""

    key: str


Command = (
    ApproveIntent
    | RejectIntent
    | ApproveAll
    | RejectAll
    | CancelOrder
    | Halt
    | Resume
    | Flatten
    | SetOverride
    | QueryHistory
)

#: one line of a history: (journal time, ISO 8601 UTC; what; the facts in words)
HistoryRow = tuple[str, str, str]

#: what a front end may send: every Engine command, and StopSession, which the
#: Session answers itself (the Engine never sees it)
SessionCommand = Command | StopSession


@dataclass(frozen=True, slots=True)
class PriceChart:
    """A position's session as a chart (QueryHistory of a symbol): the closes of the
    venue's minute bars the engine holds, the session's fills as entries (the
    position grew) and exits (it shrank), and the stop level of what is held now.
    Times are the venue's (UTC)."""

    symbol: str
    prices: tuple[tuple[datetime, Decimal], ...] = ()  # (bar time, close), oldest first
    marks: tuple[tuple[datetime, str, Decimal], ...] = ()  # (fill time, "entry" | "exit", price)
    stop: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    message: str
    count: int = 0  # how many intents / orders it touched
    rows: tuple[HistoryRow, ...] = ()  # a query's answer (QueryHistory), oldest first
    chart: PriceChart | None = None  # QueryHistory of a symbol: its session's prices


class EngineHandle(Protocol):
    """How a front end (console, control socket, headless status) holds a running
    Engine. The Engine runs in its own thread with its own event loop; these
    calls are safe from any thread or loop."""

    @property
    def snapshot(self) -> EngineSnapshot:
        """The latest published snapshot (cheap: a reference read)."""
        ...

    async def execute(self, command: SessionCommand) -> CommandResult:
        """Run a command on the Engine and wait for its result (from any event loop)."""
        ...

    def execute_sync(self, command: SessionCommand, timeout: float = 10.0) -> CommandResult:
        """The same from plain threads."""
        ...

    def stop(self) -> None:
        """Stop in order: no new orders, open orders left working (and said so), journal sealed."""
        ...
