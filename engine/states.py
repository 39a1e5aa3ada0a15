"""The trading vocabulary without pydantic: sides, order types, time in force, trading
states, rollout modes, order statuses, denial reasons, and the one table of allowed
order-state transitions. engine/model.py re-exports every name; this module exists so
that a reader of the journal (the execution report) needs no pydantic."""

from __future__ import annotations

from decimal import Decimal
from enum import Enum

from engine.errors import ExecdeskError


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"  # Alpaca has it: an external order may be one


class TimeInForce(str, Enum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    OPG = "opg"
    CLS = "cls"


class TradingState(str, Enum):
    """ACTIVE trades; REDUCING sends only exposure-reducing orders; HALTED sends
    nothing new (cancels and operator-confirmed flattening still allowed)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class RolloutMode(str, Enum):
    OFF = "off"
    APPROVE = "approve"
    AUTO = "auto"


class SideRestriction(str, Enum):
    BOTH = "both"
    LONG_ONLY = "long_only"
    SHORT_ONLY = "short_only"


class OrderStatus(str, Enum):
    """Local states first (nothing at the venue yet, or outcome unknown), then
    every status Alpaca reports."""

    # local
    CREATED = "created"
    AWAITING_APPROVAL = "awaiting_approval"
    DENIED = "denied"
    SUBMITTING = "submitting"
    UNKNOWN = "unknown"  # submit sent, outcome not known: resolved by lookup, never by resending
    VANISHED = "vanished"  # was at the venue; the venue no longer has it (listing and lookup): final
    # Alpaca
    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    PENDING_REVIEW = "pending_review"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    HELD = "held"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_local(self) -> bool:
        return self in LOCAL_STATUSES

    @property
    def is_working(self) -> bool:
        """At the venue (or maybe at the venue) and not final."""
        return not self.is_final and self not in (
            OrderStatus.CREATED,
            OrderStatus.AWAITING_APPROVAL,
        )


LOCAL_STATUSES = frozenset(
    {
        OrderStatus.CREATED,
        OrderStatus.AWAITING_APPROVAL,
        OrderStatus.DENIED,
        OrderStatus.SUBMITTING,
        OrderStatus.UNKNOWN,
        OrderStatus.VANISHED,
    }
)

FINAL_STATUSES = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.VANISHED,
    }
)

S = OrderStatus

# Venue statuses an order can be in while it is live at the venue.
_LIVE = {
    S.PENDING_NEW,
    S.ACCEPTED,
    S.NEW,
    S.PARTIALLY_FILLED,
    S.PENDING_CANCEL,
    S.PENDING_REPLACE,
    S.PENDING_REVIEW,
    S.ACCEPTED_FOR_BIDDING,
    S.STOPPED,
    S.SUSPENDED,
    S.CALCULATED,
    S.HELD,
}
# Where a live order can go next: any other live status or any venue final status.
_VENUE_NEXT = _LIVE | {S.FILLED, S.CANCELED, S.EXPIRED, S.REPLACED, S.REJECTED, S.DONE_FOR_DAY}

#: The one table of allowed order-state transitions. Anything else raises
#: InvalidStateTransition. Reconciliation may jump straight to a final status
#: (the stream does not replay), so live states reach every venue status.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.CREATED: frozenset({S.AWAITING_APPROVAL, S.DENIED, S.SUBMITTING}),
    S.AWAITING_APPROVAL: frozenset({S.SUBMITTING, S.DENIED, S.CANCELED, S.EXPIRED}),
    S.SUBMITTING: frozenset(_VENUE_NEXT | {S.UNKNOWN}),
    # An unknown outcome is resolved by lookup: found (any venue status) or
    # confirmed absent (REJECTED locally recorded as "never reached the venue").
    S.UNKNOWN: frozenset(_VENUE_NEXT),
    # A live order the venue no longer has (absent from a complete listing and 404 by
    # client_order_id) is VANISHED; should the venue show it again, it says what it is.
    **{live: frozenset((_VENUE_NEXT - {live}) | {S.VANISHED}) for live in _LIVE},
    S.VANISHED: frozenset(_VENUE_NEXT),
    # Late fills after a cancel or an expiry happen at real venues: allowed on purpose.
    S.CANCELED: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    S.EXPIRED: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    S.DONE_FOR_DAY: frozenset({S.PARTIALLY_FILLED, S.FILLED}),
    S.FILLED: frozenset(),
    S.REPLACED: frozenset(),
    S.REJECTED: frozenset(),
    S.DENIED: frozenset(),
}


def fill_at_average_cost(
    qty: Decimal, avg_entry_price: Decimal, side: Side, fill_qty: Decimal, price: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """A position (signed qty, average entry price) after a fill, at average cost:
    the new qty, the new average entry price and the realized P&L of the fill. The
    one rule for the engine's positions and the report's P&L."""
    signed = side.sign * fill_qty
    if qty == 0 or (qty > 0) == (signed > 0):
        total = qty + signed
        return total, (avg_entry_price * abs(qty) + price * fill_qty) / abs(total), Decimal(0)
    closing = min(abs(signed), abs(qty))
    direction = 1 if qty > 0 else -1
    realized = (price - avg_entry_price) * closing * direction
    qty += signed
    if qty == 0:
        avg_entry_price = Decimal(0)
    elif (qty > 0) != (direction > 0):
        avg_entry_price = price  # flipped through zero: the remainder opens at the fill price
    return qty, avg_entry_price, realized


class InvalidStateTransition(ExecdeskError):
    def __init__(self, client_order_id: str, current: OrderStatus, new: OrderStatus):
        super().__init__(f"order {client_order_id}: transition {current.value} -> {new.value} is not allowed")
        self.client_order_id = client_order_id
        self.current = current
        self.new = new


def check_transition(client_order_id: str, current: OrderStatus, new: OrderStatus) -> None:
    """Raise InvalidStateTransition unless current -> new is in TRANSITIONS.
    Staying in the same status (a repeated event) is always allowed."""
    if current == new:
        return
    if new not in TRANSITIONS[current]:
        raise InvalidStateTransition(client_order_id, current, new)


class DenialReason(str, Enum):
    """Stable, machine-readable reasons a local pre-trade check said no.
    Denied is not rejected: nothing was sent to the venue."""

    TRADING_HALTED = "TRADING_HALTED"
    REDUCE_ONLY_WOULD_INCREASE_EXPOSURE = "REDUCE_ONLY_WOULD_INCREASE_EXPOSURE"
    SYMBOL_MODE_OFF = "SYMBOL_MODE_OFF"
    SYMBOL_NOT_ALLOWED = "SYMBOL_NOT_ALLOWED"
    SYMBOL_RESTRICTED = "SYMBOL_RESTRICTED"
    SIDE_RESTRICTED = "SIDE_RESTRICTED"
    ASSET_NOT_TRADABLE = "ASSET_NOT_TRADABLE"
    ASSET_NOT_SHORTABLE = "ASSET_NOT_SHORTABLE"
    NOTIONAL_EXCEEDS_MAX_PER_ORDER = "NOTIONAL_EXCEEDS_MAX_PER_ORDER"
    QUANTITY_EXCEEDS_MAX_PER_ORDER = "QUANTITY_EXCEEDS_MAX_PER_ORDER"
    PRICE_OUTSIDE_COLLAR = "PRICE_OUTSIDE_COLLAR"
    QUOTE_STALE = "QUOTE_STALE"
    QUOTE_MISSING = "QUOTE_MISSING"
    POSITION_EXCEEDS_MAX = "POSITION_EXCEEDS_MAX"
    GROSS_EXPOSURE_EXCEEDS_MAX = "GROSS_EXPOSURE_EXCEEDS_MAX"
    SECTOR_EXPOSURE_EXCEEDS_MAX = "SECTOR_EXPOSURE_EXCEEDS_MAX"
    DAILY_LOSS_EXCEEDED = "DAILY_LOSS_EXCEEDED"
    POSITION_RISK_EXCEEDS_MAX = "POSITION_RISK_EXCEEDS_MAX"
    INSUFFICIENT_BUYING_POWER = "INSUFFICIENT_BUYING_POWER"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    OPPOSITE_SIDE_ORDER_OPEN = "OPPOSITE_SIDE_ORDER_OPEN"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    MAX_ORDERS_PER_BAR_EXCEEDED = "MAX_ORDERS_PER_BAR_EXCEEDED"
    MARKET_CLOSED = "MARKET_CLOSED"
    EXECUTION_DISABLED = "EXECUTION_DISABLED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    REJECTED_BY_OPERATOR = "REJECTED_BY_OPERATOR"
