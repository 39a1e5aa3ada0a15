"""The Broker protocol: what the Engine needs from a venue, in engine terms.
Implementations turn venue answers into these typed records (enums for every
closed set of words, Decimal money and quantities) once, at the wire, and deliver
stream traffic as BrokerEvents through one thread-safe callback; the Engine alone
decides what they mean."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from engine.errors import ExecdeskError
from engine.model import OrderStatus, OrderType, Side, TimeInForce

# ---- closed sets of words ----------------------------------------------------
# StrEnum: a member equals its word and formats as it, so code that compares or
# prints the words keeps working; the model's enums (Side, OrderType, TimeInForce,
# OrderStatus) are str enums too (compare equal to their words, but format as
# "Side.BUY": use .value in text).


class TradeEvent(StrEnum):
    """The event of a trade_updates message (Alpaca's documented set)."""

    NEW = "new"
    FILL = "fill"
    PARTIAL_FILL = "partial_fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    DONE_FOR_DAY = "done_for_day"
    REPLACED = "replaced"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    STOPPED = "stopped"
    CALCULATED = "calculated"
    SUSPENDED = "suspended"
    RESTATED = "restated"
    HELD = "held"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"

    @property
    def is_fill(self) -> bool:
        return self in (TradeEvent.FILL, TradeEvent.PARTIAL_FILL)


class SubmitOutcomeKind(StrEnum):
    ACKED = "acked"  # the venue has the order
    REJECTED = "rejected"  # the venue refused it and has no such order
    UNKNOWN = "unknown"  # nobody knows yet: look it up by client_order_id, never send again
    WITHHELD = "withheld"  # never sent: the caller withdrew it before it left (nothing at the venue)


class CancelOutcomeKind(StrEnum):
    SENT = "sent"  # 204: the venue took the request (the stream says when it is done)
    NOT_CANCELABLE = "not_cancelable"  # 422: already final, or pending
    NOT_FOUND = "not_found"  # 404 (or not a venue order id at all)
    UNKNOWN = "unknown"  # no clear answer: a cancel may be asked again


class Channel(StrEnum):
    REST = "rest"
    TRADE_STREAM = "trade_stream"
    MARKET_DATA = "market_data"


class LinkStatus(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


OrderQuery = Literal["open", "closed", "all"]  # GET /v2/orders?status=


# ---- venue records -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueOrder:
    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: OrderStatus  # one of Alpaca's statuses, never a local one
    order_type: OrderType
    time_in_force: TimeInForce
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
    """One order to send. Words are accepted for the enums and parsed here, once
    (ValueError for a word outside the set: nothing is sent)."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType = OrderType.LIMIT  # limit | market
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    extended_hours: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))
        object.__setattr__(self, "time_in_force", TimeInForce(self.time_in_force))


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """acked: the venue has it (order set). rejected: the venue refused it and
    has no such order (code/message set). unknown: nobody knows yet — resolve by
    lookup(client_order_id), never by sending again."""

    kind: SubmitOutcomeKind
    order: VenueOrder | None = None
    http_status: int | None = None
    code: int | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    kind: CancelOutcomeKind
    message: str = ""


@dataclass(frozen=True, slots=True)
class CancelAllOutcome:
    ok: bool
    results: tuple[tuple[str, int], ...] = ()  # (venue order id, status code)
    message: str = ""


# ---- stream events ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """One trade_updates event. price/qty are the execution's (fills only)."""

    event: TradeEvent
    order: VenueOrder
    timestamp: datetime
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ConnectivityChanged:
    channel: Channel
    status: LinkStatus
    detail: str = ""
    reconnected: bool = False  # came back after being down: reconcile (no replay)


@dataclass(frozen=True, slots=True)
class RateLimitChanged:
    limited: bool
    remaining: int | None = None
    reset_at: float | None = None


#: The Broker methods that ask Alpaca's market-data API (data.alpaca.markets), not
#: its trading API: their failures are market data's own (docs/risk.md, error rate).
MARKET_DATA_OPERATIONS = frozenset({"latest_quotes", "bars"})


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """The outcome of one venue request (for the error-rate trip). `operation` is
    the Broker method's name (".parse" appended for an unreadable answer). `count`:
    how many requests of that operation in a row had this outcome (successes are
    counted and sent together, failures one by one)."""

    operation: str
    detail: str
    ok: bool = False
    count: int = 1

    @property
    def market_data(self) -> bool:
        """A request to the market-data API (quotes, bars), not to the trading API."""
        return self.operation.split(".", 1)[0] in MARKET_DATA_OPERATIONS


@dataclass(frozen=True, slots=True)
class StreamError:
    """An error message from a stream, in the venue's words (Alpaca's code, e.g. 405
    symbol limit exceeded, 406 connection limit exceeded, 409 insufficient
    subscription), and what the broker did about it."""

    channel: Channel
    code: int | None
    message: str
    action: str = ""


@dataclass(frozen=True, slots=True)
class StreamSubscribed:
    """The venue confirmed the market-data subscription: these symbols stream."""

    quotes: tuple[str, ...]
    bars: tuple[str, ...] = ()


BrokerEvent = (
    TradeUpdate
    | VenueQuote
    | VenueBar
    | ConnectivityChanged
    | RateLimitChanged
    | RequestFailed
    | StreamError
    | StreamSubscribed
)
EmitFn = Callable[[BrokerEvent], None]


class Broker(Protocol):
    """What the Engine calls, and nothing more. All calls are coroutines run from
    the Engine's loop; blocking I/O happens in the broker's bounded worker pool.
    Stream events are delivered through the emit callback given to start(), which
    is safe to call from any thread. Reads raise BrokerUnavailable when the venue
    cannot answer."""

    async def start(self, emit: EmitFn, symbols: Sequence[str]) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, request: SubmitRequest, withhold: Callable[[], bool] | None = None) -> SubmitOutcome:
        """Send the order once. `withhold` is asked right before the request leaves
        (from a worker thread): True -> not sent, outcome WITHHELD."""
        ...

    async def lookup(self, client_order_id: str) -> VenueOrder | None:
        """The order with this client_order_id, or None when the venue says it has
        none (404). Raises BrokerUnavailable when the venue cannot say."""
        ...

    async def cancel(self, venue_order_id: str) -> CancelOutcome: ...

    async def cancel_all(self) -> CancelAllOutcome:
        """DELETE every open order. A broker may hand the request over when called,
        before the returned coroutine first runs (AlpacaBroker does when a permit is
        free at once): the kill switch calls it before its durable write."""
        ...

    async def list_orders(self, status: OrderQuery = "all", after: datetime | None = None) -> list[VenueOrder]:
        """Every order matching (paginated as needed), oldest first."""
        ...

    async def positions(self) -> list[VenuePosition]: ...

    async def account(self) -> VenueAccount: ...

    async def clock(self) -> VenueClock: ...

    async def assets(self, symbols: Sequence[str]) -> dict[str, VenueAsset]: ...

    async def latest_quotes(self, symbols: Sequence[str]) -> dict[str, VenueQuote]: ...

    async def bars(
        self, symbols: Sequence[str], start: datetime, end: datetime | None = None
    ) -> dict[str, list[VenueBar]]: ...

    async def stream_quotes(self, symbols: Sequence[str]) -> None:
        """Stream quotes for exactly these symbols from now on (bars stay for all)."""
        ...

    def stream_silence(self, channel: Channel) -> float | None:
        """Seconds since the stream's last data (None: not connected)."""
        ...

    def restart_stream(self, channel: Channel, reason: str) -> bool:
        """Close a connected stream so that it reconnects (with back-off)."""
        ...

    def stream_up_since(self, channel: Channel) -> float | None:
        """Wall time (epoch seconds) the stream's current connection came up (None: not up)."""
        ...

    def trade_update_heard(self, venue_order_id: str | None = None) -> float | None:
        """Wall time (epoch seconds) the trade stream last brought an update for this
        order (for any order when None); None when it has brought none."""
        ...


class BrokerUnavailable(ExecdeskError):
    """The venue could not answer (timeout, 5xx, connection lost, rate limited)."""
