"""The typed events of the journal: every change to trading state is one of these,
written before it takes effect and replayed to rebuild state after a restart.

Each event is a small frozen pydantic model with a class-level ``type`` string.
Its payload is the model as JSON: Decimals as strings (exact), datetimes in ISO
8601, enums as their values. ``EVENT_TYPES`` maps each type name to its class so
that replay can decode; a subclass of ``Event`` registers itself. A type this
version does not know (a journal written by a newer one) decodes to
``UnknownEvent`` instead of failing the replay.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.config import SymbolOverride
from engine.errors import ExecdeskError
from engine.model import DenialReason, Fill, Order, OrderStatus, Position, TradingState

#: type name -> event class, for decoding the journal.
EVENT_TYPES: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Base of all journal events. Subclasses register under their ``type``
    (the class name unless set explicitly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str] = "Event"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = cls.__name__
        existing = EVENT_TYPES.get(cls.type)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(
                f"journal event type {cls.type!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        EVENT_TYPES[cls.type] = cls

    def payload(self) -> str:
        """The JSON payload stored in the journal (without the type)."""
        return self.model_dump_json()


class UnknownEvent(BaseModel):
    """A journal row whose type this version does not know. Kept as raw data."""

    model_config = ConfigDict(frozen=True)

    type_name: str
    data: dict[str, Any]

    @property
    def type(self) -> str:  # mirrors Event.type for readers
        return self.type_name

    def payload(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


def encode(event: Event) -> tuple[str, str]:
    """(type, JSON payload) for a journal row."""
    return event.type, event.payload()


class EventDecodeError(ExecdeskError, ValueError):
    """A journal row of a known type whose payload the event model refuses."""


def decode(type_name: str, payload: str) -> Event | UnknownEvent:
    """The event a journal row holds. Raises EventDecodeError, naming the type and
    each problem, when the payload is not a valid event of its type."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        return UnknownEvent(type_name=type_name, data=json.loads(payload))
    try:
        return cls.model_validate_json(payload)
    except ValidationError as exc:
        problems = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise EventDecodeError(f"journal event {type_name} is not valid: {problems}") from None


# ---- session -----------------------------------------------------------------


class SessionStarted(Event):
    """A session began, or (resumed=True) a restart continued it."""

    session_id: str
    config_hash: str
    venue_date: date
    resumed: bool = False
    resume_reason: str = ""
    previous_config_hash: str | None = None  # set when a resumed session's config changed


class PreflightChecked(Event):
    """The preflight before the session traded: where, and every warning it found
    (a session with blockers never starts, so they are not here)."""

    venue: str
    endpoint: str
    warnings: list[str] = Field(default_factory=list)


class SessionEnded(Event):
    """The session was sealed: how = "stopped" | "superseded" | ..."""

    how: str


# ---- intents and approval ------------------------------------------------------


class IntentCreated(Event):
    """An order intent with its fixed client_order_id (and decision context:
    bar_ts, signal, decision_price, reason). Journal durably before sending."""

    order: Order
    batch_seq: int | None = None  # the batch (bar) it came from, for id determinism

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id


class IntentDenied(Event):
    """A local check said no; nothing was sent (denied is not rejected)."""

    client_order_id: str
    reason: DenialReason
    detail: str = ""


class ApprovalRequested(Event):
    client_order_id: str
    expires_at: datetime


class IntentApproved(Event):
    client_order_id: str
    by: str = "operator"


class IntentRejected(Event):
    """The operator said no (status DENIED, reason REJECTED_BY_OPERATOR)."""

    client_order_id: str
    by: str = "operator"
    detail: str = ""


class IntentExpired(Event):
    """Nobody approved in time (status EXPIRED, reason APPROVAL_EXPIRED)."""

    client_order_id: str
    at: datetime


# ---- submission ------------------------------------------------------------------


class SubmitSent(Event):
    """The submit request is about to leave. Journal durably before sending."""

    client_order_id: str
    at: datetime | None = None


class SubmitAcked(Event):
    client_order_id: str
    venue_order_id: str
    status: OrderStatus
    at: datetime | None = None


class SubmitRejected(Event):
    """The venue refused the order (it has no such order)."""

    client_order_id: str
    http_status: int | None = None
    code: int | None = None
    message: str = ""


class SubmitUnknown(Event):
    """Outcome unknown (timeout, 5xx, lost response): resolved by lookup, never resent."""

    client_order_id: str
    cause: str


class CancelRequested(Event):
    """A cancel is about to be sent for one order."""

    client_order_id: str
    cause: str = "operator"


# ---- venue -----------------------------------------------------------------------


class OrderStatusChanged(Event):
    client_order_id: str
    status: OrderStatus
    source: Literal["stream", "rest", "reconcile", "lookup"] = "stream"
    venue_order_id: str | None = None
    at: datetime | None = None  # venue time of the change, when known


class FillApplied(Event):
    """One execution. status: the order status the venue reported with it, if any."""

    fill: Fill
    status: OrderStatus | None = None

    @field_validator("fill")
    @classmethod
    def _an_execution(cls, fill: Fill) -> Fill:
        """An execution has a positive quantity at a positive, finite price: anything
        else (a negative quantity in a replayed or hand-edited journal) is refused."""
        if not (fill.qty.is_finite() and fill.qty > 0):
            raise ValueError(f"fill {fill.execution_id}: quantity must be > 0 (got {fill.qty})")
        if not (fill.price.is_finite() and fill.price > 0):
            raise ValueError(f"fill {fill.execution_id}: price must be > 0 (got {fill.price})")
        return fill


class OrderExternal(Event):
    """An order at the venue that this engine did not create: shown, never adopted."""

    order: Order


# ---- trading state and operator ----------------------------------------------------


class TradingStateChanged(Event):
    state: TradingState
    cause: str
    previous: TradingState | None = None


class OverrideSet(Event):
    """A symbol's run-time override; override=None clears it."""

    symbol: str
    override: SymbolOverride | None = None


class KillSwitch(Event):
    phase: Literal["requested", "sent", "confirmed", "flatten"]
    counts: dict[str, int] = Field(default_factory=dict)
    detail: str = ""


class OperatorCommand(Event):
    """A command that came over the session socket, journaled before it runs: which
    client (its id, the OS user and pid behind it) sent what."""

    command: str
    client_id: str
    user: str
    pid: int | None = None
    detail: dict[str, str] = Field(default_factory=dict)


# ---- signals and batches -------------------------------------------------------------


class SignalDropped(Event):
    symbol: str | None = None
    line: str | None = None
    reason: str


class BatchProcessed(Event):
    """Every intent of this batch is journaled: a restart does not process it again."""

    bar_ts: datetime
    batch_seq: int
    intents: int = 0
    kind: str = "score"  # "score" | "weight": what the batch's values (the intents' `signal`) are


class SignalsSkipped(Event):
    """Signal batches of a backlog that were not acted on: a newer batch superseded
    them while they waited in the engine's inbox (docs/signals.md, backlog policy)."""

    count: int
    first_ts: datetime
    last_ts: datetime
    reason: str = "superseded by a newer batch while waiting (signal backlog)"


# ---- snapshots and reconciliation ------------------------------------------------------


class AccountSnapshot(Event):
    account_number: str = ""
    status: str = ""
    cash: Decimal
    equity: Decimal
    last_equity: Decimal
    buying_power: Decimal
    long_market_value: Decimal = Decimal(0)
    short_market_value: Decimal = Decimal(0)
    trading_blocked: bool = False
    shorting_enabled: bool = True


class PositionsSnapshot(Event):
    """The broker's positions (authoritative): a symbol absent here is flat."""

    positions: list[Position]


class ReconcileCompleted(Event):
    ok: bool
    unaccounted: list[str] = Field(default_factory=list)
    trigger: Literal["startup", "retry", "periodic", "reconnect", "in_flight", "kill switch", "flatten"] = "startup"
    counts: dict[str, int] = Field(default_factory=dict)


# ---- the venue is the truth (disagreements resolved by an event) -------------------------


class OrderVanished(Event):
    """An order that was at the venue and that the venue no longer has: absent from
    a complete open+closed listing and 404 by client_order_id (a venue restart, an
    account reset). Final (VANISHED): it leaves every count."""

    client_order_id: str
    detail: str = ""


class OrderRecovered(Event):
    """An order of this engine (its client_order_id names a session of this journal)
    found at the venue while the journal did not know it (a lost journal tail):
    adopted as the engine's own, counted against the limits; its fills follow from
    the venue's cumulative quantity. batch_seq: the batch its id names; a batch with
    an order at the venue is not traded again (its SubmitSent and BatchProcessed
    were written in one durable write before any request left)."""

    order: Order
    batch_seq: int | None = None
    detail: str = ""

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id


class VenueMismatch(Event):
    """The venue is not the one the journal traded with (another account, or a venue
    that has none of the session's orders): the session fails closed."""

    what: Literal["account", "orders"]
    detail: str
    journal_account: str = ""
    venue_account: str = ""
