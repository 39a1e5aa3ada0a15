"""What the Engine's own tasks put on its inbox: command envelopes, timer ticks
and the results of background venue I/O. Each has one handler in the Engine's
dispatch table (engine.core.engine); the results are applied inside the engine
task, so nothing but that task mutates state."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.broker.base import CancelAllOutcome, SubmitOutcome, VenueAccount, VenueOrder, VenuePosition
from engine.commands import Command


@dataclass(slots=True)
class CommandEnvelope:
    command: Command
    future: asyncio.Future


@dataclass(slots=True)
class Timer:
    name: str


@dataclass(slots=True)
class Submitted:
    """A submit's outcome (acked, rejected or unknown) and its wall time."""

    client_order_id: str
    outcome: SubmitOutcome
    wall_ms: float


@dataclass(slots=True)
class Resolved:
    """A lookup by client_order_id answered: the venue's order, or None (absent)."""

    client_order_id: str
    order: VenueOrder | None


@dataclass(slots=True)
class ThrottleCleared:
    """A submit refused for the rate (429) was looked up and is not at the venue."""

    client_order_id: str
    attempt: int


@dataclass(slots=True)
class CancelAsked:
    client_order_id: str
    cause: str


@dataclass(slots=True)
class CancelUnknown:
    client_order_id: str
    symbol: str
    message: str


@dataclass(slots=True)
class AccountRead:
    account: VenueAccount
    evaluate: bool
    since: int | None = None  # the portfolio's fills_applied when the read was asked (None: at start-up)


@dataclass(slots=True)
class PositionsRead:
    positions: Sequence[VenuePosition]
    since: int | None = None  # the portfolio's fills_applied when the read was asked


@dataclass(slots=True)
class ReconcileRead:
    """What a reconciliation fetched; `done` is set once it was applied."""

    trigger: str
    venue_orders: list[VenueOrder]
    positions: Sequence[VenuePosition]
    lookups: dict[str, VenueOrder | None]
    unaccounted: list[str]
    done: asyncio.Future
    account: VenueAccount | None = None  # read at start-up and after reconnects: is it the journal's?
    probed: tuple[str, ...] = ()  # the session's orders looked up: does the venue know the session?
    since: int | None = None  # the portfolio's fills_applied when the reads were asked


@dataclass(slots=True)
class CancelAllAnswered:
    """The kill switch's cancel-all answered."""

    outcome: CancelAllOutcome
    attempt: int


@dataclass(slots=True)
class KillOpenSeen:
    """The venue's open orders while the kill switch waits for its cancels."""

    open_ids: set[str]


@dataclass(slots=True)
class FlattenReady:
    """A round of a flatten: create the closing orders (round 1: the cancels are
    done; later rounds: the venue's positions as read after the previous round)."""

    cause: str
    future: asyncio.Future | None  # answered by round 1
    round: int = 1
    positions: Sequence[VenuePosition] | None = None
    campaign: int = 0
    since: int | None = None  # the portfolio's fills_applied when `positions` was asked


@dataclass(slots=True)
class SignalsSuperseded:
    """Signal batches the inbox took out of a backlog because a newer batch
    superseded them before the engine came to them (engine.core.inbox): not acted
    on, journaled as SignalsSkipped with their count and time span."""

    count: int
    first_ts: datetime
    last_ts: datetime
