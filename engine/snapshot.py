"""What the Engine publishes: immutable snapshots of its state for the console, the
control socket and the headless status. Nothing outside the Engine mutates state;
readers only see these.

Rows (intents, orders, positions) are kept in dicts keyed by id. The Engine reuses
the same row object while a row is unchanged, so a reader can find what changed
between two snapshots by identity (`old.orders.get(k) is not new.orders[k]`)
without comparing fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from engine.model import TradingState


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Connectivity:
    rest: str = "unknown"  # "up" | "down" | "degraded" | "unknown"
    trade_stream: str = "unknown"
    market_data: str = "unknown"
    reconciling: bool = False
    rate_limited: bool = False
    journal_ok: bool = True
    detail: str = ""  # the last problem, said in words

    @property
    def degraded(self) -> bool:
        return (
            self.rest != "up"
            or self.trade_stream != "up"
            or self.market_data != "up"
            or self.reconciling
            or self.rate_limited
            or not self.journal_ok
        )


@dataclass(frozen=True, slots=True)
class IntentRow:
    """An order intent waiting for the operator's approval."""

    intent_id: str  # = client_order_id
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal
    limit_price: Decimal | None
    notional: Decimal
    signal: float | None
    verdict: str  # "ok" or the DenialReason value found at the last check
    verdict_detail: str
    expires_at: datetime | None  # venue time
    reason: str  # "signal" | "stop_loss" | "flatten"


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order at the venue (or in flight to it)."""

    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    order_type: str
    status: str  # OrderStatus value
    submitted_at: datetime | None
    external: bool = False


@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    last_price: Decimal | None
    market_value: Decimal
    unrealized_pl: Decimal
    share_of_equity: float
    stop_price: Decimal | None
    override: bool  # the symbol has a run-time override


@dataclass(frozen=True, slots=True)
class FillRow:
    """One execution of this session, with the P&L it realized (closing part of a
    position at a price away from its average entry)."""

    execution_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ts: datetime  # venue time of the execution
    realized_pl: Decimal


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One risk limit and how much of it is used: used / limit in [0, inf)."""

    name: str  # "gross exposure", "daily loss", "largest position", "sector: X", "order rate"
    used: float
    limit: float
    unit: str = ""  # "%", "orders/min"

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the operator's event log."""

    seq: int
    ts: datetime
    kind: str  # "fill" | "denial" | "dropped" | "reconnect" | "state" | "kill" | "order" | "info" | "error"
    symbol: str | None
    text: str


@dataclass(frozen=True, slots=True)
class OverrideRow:
    symbol: str
    mode: str | None
    max_position_usd: Decimal | None
    max_position_pct: float | None
    size_multiplier: float | None
    side: str | None
    changed_at: datetime | None = None  # venue time of the last run-time change this session (None: configured)


@dataclass(frozen=True, slots=True)
class KillSwitchStatus:
    phase: str = "idle"  # "idle" | "requested" | "sent" | "confirmed" | "failed"
    requested_at: datetime | None = None
    cancels_requested: int = 0
    cancels_confirmed: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MarketDataStatus:
    """Where prices come from: the symbols whose quotes stream, those polled over REST
    (one latest-quotes request for all of them each poll), and how fresh they are."""

    streamed: tuple[str, ...] = ()
    polled: tuple[str, ...] = ()
    stream_limit: int | None = None  # symbols the stream may carry (None: no limit)
    limit_learned: bool = False  # lowered after the venue answered 405
    poll_interval: float = 0.0  # wall seconds
    poll_requests_per_minute: float = 0.0  # what the poll interval costs
    polls_last_minute: int = 0  # polls actually sent in the last minute
    last_poll: datetime | None = None  # venue time of the last answered poll
    oldest_quote_age: float | None = None  # venue seconds: the oldest price held
    without_quote: int = 0  # tracked symbols with no quote at all
    watchdog_restarts: int = 0  # silent data streams reconnected
    last_error: str = ""  # the last stream error, with what the engine did


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    seq: int = 0
    session_id: str = ""
    mode: str = "PAPER"  # "PAPER" | "LIVE"
    venue: str = "SIM"  # "SIM" | "ALPACA"
    account_number: str = ""
    equity: Decimal = Decimal(0)
    last_equity: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)
    buying_power: Decimal = Decimal(0)
    day_pl: Decimal = Decimal(0)
    daily_loss_limit: Decimal = Decimal(0)  # in USD, positive
    trading_state: TradingState = TradingState.ACTIVE
    state_cause: str = ""
    connectivity: Connectivity = field(default_factory=Connectivity)
    venue_time: datetime | None = None
    market_open: bool = False
    last_bar_ts: datetime | None = None
    bars_processed: int = 0
    intents: Mapping[str, IntentRow] = field(default_factory=_empty)
    orders: Mapping[str, OrderRow] = field(default_factory=_empty)  # working orders only
    positions: Mapping[str, PositionRow] = field(default_factory=_empty)
    overrides: Mapping[str, OverrideRow] = field(default_factory=_empty)
    limits: tuple[LimitUsage, ...] = ()
    gross_exposure: Decimal = Decimal(0)
    net_exposure: Decimal = Decimal(0)
    pl_history: tuple[float, ...] = ()  # day P&L samples for the sparkline
    events: tuple[EventRow, ...] = ()  # the most recent events, oldest first
    kill_switch: KillSwitchStatus = field(default_factory=KillSwitchStatus)
    trading_ready: bool = False  # start-up reconciliation passed
    not_ready_reason: str = ""
    open_order_count: int = 0
    external_order_count: int = 0
    market_data: MarketDataStatus = field(default_factory=MarketDataStatus)
    fills: tuple[FillRow, ...] = ()  # this session's fills, oldest first (the latest 1,000)
    #: the market price (mid of the latest usable quote) of every symbol held or
    #: with a working order; the same mapping object until a price moves
    quotes: Mapping[str, Decimal] = field(default_factory=_empty)
    realized_pl: Decimal = Decimal(0)  # realized by this session's fills
    unrealized_pl: Decimal = Decimal(0)  # of the positions held, at their marks
