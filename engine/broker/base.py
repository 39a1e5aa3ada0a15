"""The Broker protocol: what the Engine needs from a venue, in engine terms.
Implementations turn venue objects into these plain records (Decimal money and
quantities) and deliver stream traffic as BrokerEvents through one thread-safe
callback; the Engine alone decides what they mean."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Callable, Protocol, Sequence

from engine.errors import ExecdeskError


# ---- venue records -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: str  # Alpaca status word
    order_type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    created_at: datetime
    updated_at: datetime | None
    submitted_at: datetime | None
    filled_at: datetime | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class VenuePosition:
    symbol: str
    qty: Decimal  # signed: negative when short
    avg_entry_price: Decimal
    current_price: Decimal | None
    market_value: Decimal | None
    lastday_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueAccount:
    account_number: str
    status: str
    cash: Decimal
    equity: Decimal
    last_equity: Decimal
    buying_power: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    trading_blocked: bool
    shorting_enabled: bool


@dataclass(frozen=True, slots=True)
class VenueClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class VenueAsset:
    symbol: str
    tradable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool
    exchange: str
    status: str


@dataclass(frozen=True, slots=True)
class VenueQuote:
    symbol: str
    bid: Decimal
    ask: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class VenueBar:
    symbol: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


# ---- requests and outcomes ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    order_type: str = "limit"  # "limit" | "market"
    time_in_force: str = "day"
    limit_price: Decimal | None = None
    extended_hours: bool = False


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """acked: the venue has it (order set). rejected: the venue refused it and
    has no such order (code/message set). unknown: nobody knows yet — resolve by
    lookup(client_order_id), never by sending again."""

    kind: str  # "acked" | "rejected" | "unknown"
    order: VenueOrder | None = None
    http_status: int | None = None
    code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    kind: str  # "sent" (204) | "not_cancelable" (422) | "not_found" (404) | "unknown"
    message: str = ""


@dataclass(frozen=True, slots=True)
class CancelAllOutcome:
    ok: bool
    results: tuple[tuple[str, int], ...] = ()  # (venue order id, status code)
    message: str = ""


@dataclass(frozen=True, slots=True)
class ClosePositionOutcome:
    symbol: str
    ok: bool
    order: VenueOrder | None = None
    message: str = ""


# ---- stream events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """One trade_updates event. price/qty are the execution's (fills only)."""

    event: str
    order: VenueOrder
    timestamp: datetime
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ConnectivityChanged:
    channel: str  # "rest" | "trade_stream" | "market_data"
    status: str  # "up" | "down" | "degraded"
    detail: str = ""
    reconnected: bool = False  # came back after being down: reconcile (no replay)


@dataclass(frozen=True, slots=True)
class RateLimitChanged:
    limited: bool
    remaining: int | None = None
    reset_at: float | None = None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A venue request that failed (for the error-rate trip)."""

    operation: str
    detail: str
    ok: bool = False


BrokerEvent = TradeUpdate | VenueQuote | VenueBar | ConnectivityChanged | RateLimitChanged | RequestFailed
EmitFn = Callable[[BrokerEvent], None]


class Broker(Protocol):
    """All calls are coroutines run from the Engine's loop; blocking I/O happens
    in the broker's bounded worker pool. Stream events are delivered through the
    emit callback given to start(), which is safe to call from any thread."""

    async def start(self, emit: EmitFn, symbols: Sequence[str]) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, request: SubmitRequest) -> SubmitOutcome: ...

    async def lookup(self, client_order_id: str) -> VenueOrder | None:
        """The order with this client_order_id, or None when the venue says it has
        none (404). Raises BrokerUnavailable when the venue cannot say."""
        ...

    async def cancel(self, venue_order_id: str) -> CancelOutcome: ...

    async def cancel_all(self) -> CancelAllOutcome: ...

    async def close_position(self, symbol: str, qty: Decimal | None = None) -> ClosePositionOutcome: ...

    async def list_orders(
        self, status: str = "all", after: datetime | None = None, limit: int = 500
    ) -> list[VenueOrder]:
        """Every order matching (paginated as needed), oldest first."""
        ...

    async def get_order(self, venue_order_id: str) -> VenueOrder | None: ...

    async def positions(self) -> list[VenuePosition]: ...

    async def account(self) -> VenueAccount: ...

    async def clock(self) -> VenueClock: ...

    async def assets(self, symbols: Sequence[str]) -> dict[str, VenueAsset]: ...

    async def latest_quotes(self, symbols: Sequence[str]) -> dict[str, VenueQuote]: ...

    async def bars(self, symbols: Sequence[str], start: datetime, end: datetime | None = None) -> dict[str, list[VenueBar]]: ...


class BrokerUnavailable(ExecdeskError):
    """The venue could not answer (timeout, 5xx, connection lost, rate limited)."""
