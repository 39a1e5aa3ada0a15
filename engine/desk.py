"""The embeddable Python API (docs/api.md): `Desk` runs a session inside the team's
own process and takes its batches of scores or target weights; a `BatchResult` says
per symbol what became of each: the intent, the verdict, the orders' client ids.

A Desk is a Session (engine/session.py) whose signal source is a PushSource: the same
inbox, checks, journal and control socket as `execdesk run` — one path, not a second
engine. Every command the console has is a method."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.commands import (
    ApproveAll,
    ApproveIntent,
    CancelOrder,
    Command,
    CommandResult,
    Flatten,
    Halt,
    RejectAll,
    RejectIntent,
    Resume,
    SetOverride,
)
from engine.config import Credentials, Settings, load_settings
from engine.errors import ExecdeskError
from engine.model import Order, OrderStatus
from engine.session import Session
from engine.signals import PushSource, SignalBatch, SignalInputError, SignalKind
from engine.snapshot import EngineSnapshot, EventRow

__all__ = ["BatchResult", "Desk", "DeskError", "OrderResult", "SignalInputError", "SymbolResult", "Verdict"]

POLL = 0.05  # seconds between looks while waiting for a batch or its orders
EVENT_BUFFER = 10_000  # event rows kept for events() before the oldest are dropped


class DeskError(ExecdeskError):
    """The Desk cannot do what was asked (not open, batch not taken in time)."""


class Verdict(StrEnum):
    """What became of one symbol of a batch (its latest order decides)."""

    NO_ORDER = "no_order"  # valid, but sizing wanted no change
    DENIED = "denied"  # a pre-trade check (or the operator) said no: nothing sent
    AWAITING_APPROVAL = "awaiting_approval"
    SENT = "sent"  # at the venue (or on its way), not final yet
    FILLED = "filled"
    REJECTED = "rejected"  # the venue said no
    CANCELED = "canceled"
    EXPIRED = "expired"


_VERDICT_OF = {
    OrderStatus.DENIED: Verdict.DENIED,
    OrderStatus.AWAITING_APPROVAL: Verdict.AWAITING_APPROVAL,
    OrderStatus.FILLED: Verdict.FILLED,
    OrderStatus.REJECTED: Verdict.REJECTED,
    OrderStatus.CANCELED: Verdict.CANCELED,
    OrderStatus.EXPIRED: Verdict.EXPIRED,
    OrderStatus.DONE_FOR_DAY: Verdict.EXPIRED,
}


@dataclass(frozen=True)
class OrderResult:
    """One order (intent) of a batch, as the Engine's book has it now."""

    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    limit_price: Decimal | None
    status: str  # an OrderStatus value
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    denial: str | None  # the DenialReason code when denied
    detail: str | None

    @property
    def final(self) -> bool:
        return OrderStatus(self.status).is_final


@dataclass(frozen=True)
class SymbolResult:
    """One symbol of a batch: the value given, the verdict and its orders."""

    symbol: str
    value: Decimal  # the score or weight as given
    verdict: Verdict
    orders: tuple[OrderResult, ...] = ()
    reason: str | None = None  # the denial code; for no_order NO_QUOTE, BELOW_THRESHOLD or NO_CHANGE
    detail: str | None = None

    @property
    def client_order_ids(self) -> tuple[str, ...]:
        return tuple(o.client_order_id for o in self.orders)

    @property
    def intent(self) -> OrderResult | None:
        """The order sizing wanted for this symbol (None: no change was needed)."""
        return self.orders[-1] if self.orders else None

    @property
    def final(self) -> bool:
        return all(o.final for o in self.orders)


@dataclass
class BatchResult:
    """What one batch became, symbol by symbol. `refresh()` reads the book again,
    `wait(timeout)` until every order of the batch is final (`final`) or the time is
    up (`timed_out`)."""

    ts: datetime
    kind: SignalKind
    values: dict[str, Decimal] = field(default_factory=dict)  # the batch as taken
    no_order: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # why, as sized
    symbols: dict[str, SymbolResult] = field(default_factory=dict)
    final: bool = False
    timed_out: bool = False
    _desk: Desk | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, symbol: str) -> SymbolResult:
        return self.symbols[symbol]

    def __iter__(self) -> Iterator[SymbolResult]:
        return iter(self.symbols.values())

    @property
    def client_order_ids(self) -> tuple[str, ...]:
        return tuple(cid for r in self.symbols.values() for cid in r.client_order_ids)

    def by_verdict(self, verdict: Verdict) -> list[str]:
        return sorted(s for s, r in self.symbols.items() if r.verdict is verdict)

    def refresh(self) -> BatchResult:
        if self._desk is not None:
            self._desk._refresh(self)
        return self

    def wait(self, timeout: float = 60.0) -> BatchResult:
        if self._desk is None:
            raise DeskError("this result is not tied to an open Desk")
        return self._desk.wait_final(self, timeout)


class Desk:
    """A trading session in this process, fed by its caller. Open with Desk.open();
    close with close() or a `with` block."""

    def __init__(self, session: Session, source: PushSource, events: queue.Queue[EventRow]):
        self.session = session
        self._source = source
        self._events = events
        self._lock = threading.Lock()  # one batch at a time, in order
        self._closed = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        config: str | Path | Settings | None = None,
        *,
        journal: str | Path | None = None,
        venue: str | None = None,
        live: bool = False,
        auto_approve: bool = False,
        credentials: Credentials | None = None,
        sim: Mapping[str, Any] | None = None,
        on_event: Callable[[EventRow], None] | None = None,
        timeout: float = 60.0,
    ) -> Desk:
        """Start a session: `config` is a configuration file (None: config/execution.toml
        and EXECDESK_* overrides) or Settings; `venue` "sim" (the built-in venue) or
        "alpaca" overrides broker.kind; `live=True` is the second switch of live
        trading (with execution.mode = "live"); `sim` are options of the built-in venue
        (seed, start_at, frozen_clock, speed...). Returns once start-up reconciliation
        is done; raises SessionError (or a ConfigError) when the session cannot start."""
        settings = config if isinstance(config, Settings) else load_settings(config, live_confirmed=live)
        if settings.is_live and not live:
            raise DeskError('execution.mode = "live" needs live=True as well: live trading takes two switches')
        if venue is not None:
            if venue not in ("sim", "alpaca"):
                raise DeskError(f'venue must be "sim" (the built-in venue) or "alpaca", not {venue!r}')
            settings = settings.model_copy(update={"broker": settings.broker.model_copy(update={"kind": venue})})
        allow = set(settings.rollout.allowlist)  # the symbols the Engine trades, as for every source
        known = frozenset(s for s in settings.load_universe().symbols if not allow or s in allow)
        source = PushSource(known_symbols=known, max_age=settings.signals.max_age)
        events: queue.Queue[EventRow] = queue.Queue(EVENT_BUFFER)

        def sink(row: EventRow) -> None:
            try:
                events.put_nowait(row)
            except queue.Full:
                events.get_nowait()
                events.put_nowait(row)
            if on_event is not None:
                on_event(row)

        session = Session.from_settings(
            settings,
            journal_path=journal,
            sim_overrides=dict(sim or {}),
            auto_approve=auto_approve,
            credentials=credentials,
            signal_source=source,
            log_sink=sink,
        )
        session.start(timeout)
        return cls(session, source, events)

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, how: str = "stopped") -> None:
        """Stop in order: no new orders, open orders left working, journal sealed."""
        if not self._closed:
            self._closed = True
            self.session.stop(how=how)

    # ------------------------------------------------------------------ batches

    def submit_signals(self, ts: datetime | str, scores: Mapping[str, float | Decimal]) -> BatchResult:
        """One bar of scores in [-1, 1] (sized as docs/risk.md says). Returns once the
        Engine has taken the batch: intents made, checked, sent or queued for approval.
        Raises SignalInputError, and sends nothing, if any symbol or value is bad."""
        return self._submit(ts, scores, SignalKind.SCORE)

    def submit_targets(self, ts: datetime | str, weights: Mapping[str, float | Decimal]) -> BatchResult:
        """One bar of target weights: signed fractions of equity in [-1, 1] (0 = flat)."""
        return self._submit(ts, weights, SignalKind.WEIGHT)

    def _submit(
        self, ts: datetime | str, values: Mapping[str, Any], kind: SignalKind, timeout: float = 60
    ) -> BatchResult:
        with self._lock:
            engine = self._engine()

            async def push() -> SignalBatch:
                return self._source.push(engine.market_view(), ts, values, kind)

            batch = self._on_loop(push(), timeout)
            taken = {s: Decimal(repr(float(v))) for s, v in batch.signals.items()}
            result = BatchResult(ts=batch.ts, kind=kind, values=taken, _desk=self)
            deadline = time.monotonic() + timeout
            while not self._on_loop(self._processed(batch.ts), timeout):
                if time.monotonic() > deadline or self.session.wait(0):
                    raise DeskError(f"the engine did not take the batch {batch.ts.isoformat()} within {timeout:.0f} s")
                time.sleep(POLL / 5)
            result.no_order = self._on_loop(self._why_no_order(result), timeout)
            return self._refresh(result)

    def wait_final(self, batch: BatchResult, timeout: float = 60.0) -> BatchResult:
        """Until every order of the batch is final (filled, canceled, expired, denied,
        rejected) or `timeout` seconds pass (then batch.timed_out is True)."""
        deadline = time.monotonic() + timeout
        while True:
            self._refresh(batch)
            if batch.final:
                batch.timed_out = False
                return batch
            if time.monotonic() >= deadline or self.session.wait(0):
                batch.timed_out = True
                return batch
            time.sleep(POLL)

    def _refresh(self, result: BatchResult) -> BatchResult:
        async def read() -> list[Order]:
            return [o.model_copy() for o in self._engine().book.orders.values() if _of_batch(o, result.ts)]

        orders = self._on_loop(read(), 30)
        values = result.values
        by_symbol: dict[str, list[Order]] = {s: [] for s in values}
        for o in orders:
            by_symbol.setdefault(o.symbol, []).append(o)
        result.symbols = {
            s: _symbol_result(s, values.get(s, Decimal(0)), os_, result.no_order.get(s)) for s, os_ in by_symbol.items()
        }
        result.final = all(r.final for r in result.symbols.values())
        return result

    async def _processed(self, ts: datetime) -> bool:
        return self._engine().book.ledger.is_processed(ts)

    async def _why_no_order(self, result: BatchResult) -> dict[str, tuple[str, str]]:
        """For each symbol of a just-sized batch without an order, why (read as sized)."""
        engine = self._engine()
        has_order = {o.symbol for o in engine.book.orders.values() if _of_batch(o, result.ts)}
        limits = engine.limits
        out: dict[str, tuple[str, str]] = {}
        for symbol, value in result.values.items():
            if symbol in has_order:
                continue
            book = engine.portfolio.books.get(symbol)
            if book is None or not book.quote_ok:
                out[symbol] = ("NO_QUOTE", f"{symbol}: no usable quote when the batch was sized")
            elif (
                result.kind is SignalKind.SCORE
                and abs(value) < limits.signal_threshold
                and limits.below_threshold == "hold"
            ):
                out[symbol] = (
                    "BELOW_THRESHOLD",
                    f"{symbol}: |{value}| < signal_threshold {limits.signal_threshold}: the position is held",
                )
            else:
                out[symbol] = (
                    "NO_CHANGE",
                    f"{symbol}: at its target, or the change is below min_trade_size {limits.min_trade_size}",
                )
        return out

    # ------------------------------------------------------------------ looking

    @property
    def snapshot(self) -> EngineSnapshot:
        """The latest published EngineSnapshot (what the console renders)."""
        return self.session.snapshot

    @property
    def journal_path(self) -> Path:
        return self.session.journal_path

    @property
    def venue(self) -> Any:
        """The built-in venue (engine.sim.SimVenue) when broker.kind = "sim", else None."""
        return self.session.venue

    def events(self, timeout: float = 0.0) -> Iterator[EventRow]:
        """The event log's rows as they happen (fills, denials, orders, state...):
        yields what has arrived, waiting up to `timeout` seconds for each next one."""
        while True:
            try:
                yield self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ commands

    def execute(self, command: Command, timeout: float = 30.0) -> CommandResult:
        """Any engine command (engine.commands); the methods below are shorthands."""
        self._engine()
        return self.session.execute_sync(command, timeout=timeout)

    def approve(self, intent_id: str) -> CommandResult:
        return self.execute(ApproveIntent(intent_id))

    def approve_all(self) -> CommandResult:
        return self.execute(ApproveAll())

    def reject(self, intent_id: str) -> CommandResult:
        return self.execute(RejectIntent(intent_id))

    def reject_all(self) -> CommandResult:
        return self.execute(RejectAll())

    def override(self, symbol: str, **fields: Any) -> CommandResult:
        """A run-time override of one symbol: mode, max_position_usd, max_position_pct,
        size_multiplier, side (see SetOverride); override(symbol, clear=True) removes it."""
        if "max_position_usd" in fields and fields["max_position_usd"] is not None:
            fields["max_position_usd"] = Decimal(str(fields["max_position_usd"]))
        return self.execute(SetOverride(symbol, **fields))

    def cancel(self, client_order_id: str) -> CommandResult:
        return self.execute(CancelOrder(client_order_id))

    def halt(self, cause: str = "api") -> CommandResult:
        """The kill switch: HALTED, every open order cancelled at the venue."""
        return self.execute(Halt(cause))

    def resume(self, cause: str = "api") -> CommandResult:
        return self.execute(Resume(cause))

    def flatten(self, cause: str = "api") -> CommandResult:
        """Close every position (reduce-only orders, past approval)."""
        return self.execute(Flatten(cause), timeout=60.0)

    # ------------------------------------------------------------------ plumbing

    def _engine(self) -> Any:
        engine = self.session.engine
        if self._closed or engine is None or self.session.wait(0):
            raise DeskError("the desk is closed")
        return engine

    def _on_loop(self, coro: Any, timeout: float) -> Any:
        loop = self.session._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise DeskError("the desk is closed")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _of_batch(order: Order, ts: datetime) -> bool:
    return order.bar_ts == ts and order.reason == "signal" and not order.external


def _symbol_result(
    symbol: str, value: Decimal, orders: list[Order], why_not: tuple[str, str] | None = None
) -> SymbolResult:
    views = tuple(
        OrderResult(
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side.value,
            qty=o.qty,
            limit_price=o.limit_price,
            status=o.status.value,
            filled_qty=o.filled_qty,
            filled_avg_price=o.filled_avg_price,
            denial=o.denial.value if o.denial is not None else None,
            detail=o.denial_detail,
        )
        for o in orders  # in the order the Engine created them
    )
    if not views:
        reason, detail = why_not or ("NO_CHANGE", f"{symbol}: no change needed")
        return SymbolResult(symbol, value, Verdict.NO_ORDER, reason=reason, detail=detail)
    last = views[-1]
    status = OrderStatus(last.status)
    verdict = _VERDICT_OF.get(status, Verdict.SENT)
    return SymbolResult(symbol, value, verdict, views, reason=last.denial, detail=last.detail)
