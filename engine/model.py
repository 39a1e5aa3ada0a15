"""The trading vocabulary of execdesk: orders, fills, positions, trading states,
denial reasons, and the one table of allowed order-state transitions.

The enums and the transition table live in engine/states.py (no pydantic, for light
readers of the journal) and are re-exported here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.states import (
    FINAL_STATUSES,
    LOCAL_STATUSES,
    TRANSITIONS,
    DenialReason,
    InvalidStateTransition,
    OrderStatus,
    OrderType,
    RolloutMode,
    S,
    Side,
    SideRestriction,
    TimeInForce,
    TradingState,
    check_transition,
    fill_at_average_cost,
)

__all__ = [
    "FINAL_STATUSES",
    "LOCAL_STATUSES",
    "TRANSITIONS",
    "DenialReason",
    "Fill",
    "InvalidStateTransition",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "RolloutMode",
    "S",
    "Side",
    "SideRestriction",
    "TimeInForce",
    "TradingState",
    "check_transition",
    "jsonable",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Fill(_Model):
    """One execution at the venue. De-duplicated by execution_id."""

    execution_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    ts: datetime


class Order(_Model):
    """An order from intent to final status. Identified by client_order_id,
    which is fixed (and journaled) before anything is sent."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    status: OrderStatus = OrderStatus.CREATED
    venue_order_id: str | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    # decision context
    bar_ts: datetime | None = None
    signal: float | None = None
    decision_price: Decimal | None = None
    reduce_only: bool = False
    reason: str | None = None  # why it exists: "signal", "stop_loss", "flatten"
    denial: DenialReason | None = None
    denial_detail: str | None = None
    external: bool = False  # at the venue, not created by this engine
    created_at: datetime | None = None
    submitted_at: datetime | None = None
    acked_at: datetime | None = None
    final_at: datetime | None = None
    expires_at: datetime | None = None  # approval deadline
    fill_ids: list[str] = Field(default_factory=list)

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill once. Returns False for a fill already seen (same execution id)."""
        if fill.execution_id in self.fill_ids:
            return False
        prev_value = (self.filled_avg_price or Decimal(0)) * self.filled_qty
        self.filled_qty += fill.qty
        self.filled_avg_price = (prev_value + fill.price * fill.qty) / self.filled_qty
        self.fill_ids.append(fill.execution_id)
        return True


class Position(_Model):
    """A position in one symbol. Quantity is signed (negative = short)."""

    symbol: str
    qty: Decimal = Decimal(0)
    avg_entry_price: Decimal = Decimal(0)
    last_price: Decimal | None = None
    realized_pl: Decimal = Decimal(0)

    @property
    def market_value(self) -> Decimal:
        return self.qty * (self.last_price if self.last_price is not None else self.avg_entry_price)

    @property
    def unrealized_pl(self) -> Decimal:
        if self.last_price is None:
            return Decimal(0)
        return (self.last_price - self.avg_entry_price) * self.qty

    def apply_fill(self, side: Side, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill at price; return the realized P&L it produced."""
        self.qty, self.avg_entry_price, realized = fill_at_average_cost(
            self.qty, self.avg_entry_price, side, qty, price
        )
        self.realized_pl += realized
        return realized


def jsonable(value: Any) -> Any:
    """Make a value JSON-safe for the journal: Decimals as strings, enums as values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
