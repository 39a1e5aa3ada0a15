"""The embeddable Python API (docs/api.md): `Desk` takes the team's batches of scores
or target weights; a `BatchResult` says per symbol what became of each: the intent,
the verdict, the orders' client ids.

`Desk.open` runs a session inside the team's own process: a Session (engine/session.py)
whose signal source is a PushSource. `Desk.attach` is a client of a session running
elsewhere (`execdesk run`, the console's background session) over its control socket:
its batches go to that session's BatchService, which pushes them into a PushSource of
the session — the same inbox, checks and journal as `execdesk run`'s own source, one
path, not a second engine. Every command the console has is a method of both."""

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

from engine import session_protocol as sp
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
from engine.control import ControlError, SessionClient, socket_path_for
from engine.errors import ExecdeskError
from engine.model import Order, OrderStatus
from engine.session import Session
from engine.signals import DroppedSignal, PushSource, SignalBatch, SignalInputError, SignalKind
from engine.signals.push import _timestamp
from engine.snapshot import EngineSnapshot, EventRow

__all__ = [
    "BatchResult",
    "BatchService",
    "Desk",
    "DeskError",
    "OrderResult",
    "SignalInputError",
    "SymbolResult",
    "Verdict",
]

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


class BatchService:
    """The session's side of the batches a Desk hands in, in process or over the
    control socket (`submit_batch`): pushed into a PushSource of the session — the
    Desk's own source in process; next to the configured source (a file, stdin...)
    one named "socket" with a pump of its own — then waited for until the Engine has
    taken them. Runs on the session's loop."""

    def __init__(self, engine: Any, source: PushSource):
        self.engine = engine
        self.source = source
        self._pump: asyncio.Task | None = None

    @classmethod
    def start(cls, engine: Any, signal_source: Any, max_age: float) -> BatchService:
        """The service of a started Engine (call on its loop)."""
        if isinstance(signal_source, PushSource):
            return cls(engine, signal_source)
        source = PushSource(known_symbols=frozenset(engine.symbols), max_age=max_age, name="socket")
        service = cls(engine, source)
        service._pump = asyncio.get_running_loop().create_task(service._run_pump(), name="socket-batches")
        return service

    async def _run_pump(self) -> None:
        market = self.engine.market_view()
        async for batch in self.source.batches(market):
            await self.engine.submit_batch(batch)

    async def aclose(self) -> None:
        """No new batches; what was pushed already still reaches the Engine."""
        await self.source.aclose()
        if self._pump is not None:
            await asyncio.wait({self._pump}, timeout=5)

    async def submit(
        self, ts: datetime | str, values: Mapping[Any, Any], kind: SignalKind, timeout: float = 60.0
    ) -> tuple[SignalBatch, dict[str, Decimal], dict[str, tuple[str, str]], list[OrderResult]]:
        """Push one batch and wait until the Engine has taken it: (the batch, its values
        as taken, why each symbol without an order has none, the batch's orders). Raises
        SignalInputError (nothing sent) or DeskError."""
        engine = self.engine
        if not engine.started or engine.stopping:
            raise DeskError("the session is not running")
        batch = self.source.push(engine.market_view(), ts, values, kind, after=engine.last_bar_ts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not engine.book.ledger.is_processed(batch.ts):
            if loop.time() > deadline or engine.stopping:
                raise DeskError(f"the engine did not take the batch {batch.ts.isoformat()} within {timeout:.0f} s")
            await asyncio.sleep(POLL / 5)
        taken = _taken(batch)
        return batch, taken, self.why_no_order(batch.ts, kind, taken), self.orders(batch.ts)

    def orders(self, ts: datetime) -> list[OrderResult]:
        """The batch's orders as the book has them now, in the order they were made."""
        return [_order_result(o) for o in self.engine.book.orders.values() if _of_batch(o, ts)]

    def why_no_order(self, ts: datetime, kind: SignalKind, values: Mapping[str, Decimal]) -> dict[str, tuple[str, str]]:
        """For each symbol of a just-sized batch without an order, why (read as sized)."""
        engine = self.engine
        has_order = {o.symbol for o in engine.book.orders.values() if _of_batch(o, ts)}
        limits = engine.limits
        out: dict[str, tuple[str, str]] = {}
        for symbol, value in values.items():
            if symbol in has_order:
                continue
            book = engine.portfolio.books.get(symbol)
            if book is None or not book.quote_ok:
                out[symbol] = ("NO_QUOTE", f"{symbol}: no usable quote when the batch was sized")
            elif kind is SignalKind.SCORE and abs(value) < limits.signal_threshold and limits.below_threshold == "hold":
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


class Desk:
    """The team's process at the desk: `Desk.open()` runs the session here,
    `Desk.attach()` is a client of a session running elsewhere. The same methods
    either way; close with close() or a `with` block."""

    def __init__(
        self,
        session: Session | None,
        source: PushSource | None,
        events: queue.Queue[EventRow],
        *,
        client: SessionClient | None = None,
        journal: Path | None = None,
    ):
        self.session = session  # None when attached
        self.client = client  # the SessionClient when attached
        self._source = source
        self._events = events
        self._journal = journal
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
        session = Session.from_settings(
            settings,
            journal_path=journal,
            sim_overrides=dict(sim or {}),
            auto_approve=auto_approve,
            credentials=credentials,
            signal_source=source,
            log_sink=_sink(events, on_event),
        )
        session.start(timeout)
        return cls(session, source, events)

    @classmethod
    def attach(
        cls,
        journal: str | Path | None = None,
        *,
        config: str | Path | Settings | None = None,
        name: str = "desk",
        read_only: bool = False,
        on_event: Callable[[EventRow], None] | None = None,
        timeout: float = 30.0,
    ) -> Desk:
        """Attach to the session running on `journal` (None: session.journal_path of
        `config`) over its control socket, as the console does. Its batches go through
        that session's inbox, checks and journal (each journaled with this client's id);
        close() detaches and never stops the session. A read_only Desk may look and
        pull the kill switch, nothing else. Raises DeskError when no session answers."""
        if journal is None:
            settings = config if isinstance(config, Settings) else load_settings(config)
            journal = settings.session.journal_path
        path = Path(journal)
        events: queue.Queue[EventRow] = queue.Queue(EVENT_BUFFER)
        client = SessionClient(socket_path_for(path), name=name, read_only=read_only, on_event=_sink(events, on_event))
        try:
            client.start(timeout)
        except ControlError as exc:
            raise DeskError(str(exc)) from None
        return cls(None, None, events, client=client, journal=path)

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, how: str = "stopped") -> None:
        """In process: stop in order (no new orders, open orders left working, journal
        sealed). Attached: detach; the session keeps running."""
        if not self._closed:
            self._closed = True
            if self.client is not None:
                self.client.close()
            elif self.session is not None:
                self.session.stop(how=how)

    @property
    def attached(self) -> bool:
        """True for a client of a session elsewhere (Desk.attach)."""
        return self.client is not None

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
            if self.client is not None:
                return self._submit_remote(ts, values, kind, timeout)
            service = self._service()
            batch, taken, no_order, orders = self._on_loop(service.submit(ts, values, kind, timeout), timeout + 5)
            result = BatchResult(ts=batch.ts, kind=kind, values=taken, no_order=no_order, _desk=self)
            return _fill(result, orders)

    def _submit_remote(
        self, ts: datetime | str, values: Mapping[str, Any], kind: SignalKind, timeout: float
    ) -> BatchResult:
        client = self._attached_client()
        if isinstance(ts, datetime):
            ts = _timestamp(ts)  # refuses a naive datetime here, in the same words
        answer = client.ask(sp.batch_request(ts, kind, values), timeout + 5)
        if not answer.get("ok"):
            problems = answer.get("problems")
            if problems:
                raise SignalInputError(tuple(sp.decode_value(DroppedSignal, p) for p in problems))
            raise DeskError(str(answer.get("error") or answer.get("message") or "the session refused the batch"))
        taken = {s: Decimal(v) for s, v in answer.get("values", {}).items()}
        no_order = {s: (str(w[0]), str(w[1])) for s, w in answer.get("no_order", {}).items()}
        result = BatchResult(
            ts=datetime.fromisoformat(answer["ts"]), kind=kind, values=taken, no_order=no_order, _desk=self
        )
        return _fill(result, _decode_orders(answer.get("orders", [])))

    def wait_final(self, batch: BatchResult, timeout: float = 60.0) -> BatchResult:
        """Until every order of the batch is final (filled, canceled, expired, denied,
        rejected) or `timeout` seconds pass (then batch.timed_out is True)."""
        deadline = time.monotonic() + timeout
        while True:
            self._refresh(batch)
            if batch.final:
                batch.timed_out = False
                return batch
            if time.monotonic() >= deadline or self._gone():
                batch.timed_out = True
                return batch
            time.sleep(POLL)

    def _refresh(self, result: BatchResult) -> BatchResult:
        if self.client is not None:
            answer = self._attached_client().ask({"cmd": "batch", "ts": result.ts.isoformat()}, 30)
            if not answer.get("ok"):
                raise DeskError(str(answer.get("error") or answer.get("message")))
            return _fill(result, _decode_orders(answer.get("orders", [])))
        service = self._service()

        async def read() -> list[OrderResult]:
            return service.orders(result.ts)

        return _fill(result, self._on_loop(read(), 30))

    # ------------------------------------------------------------------ looking

    @property
    def snapshot(self) -> EngineSnapshot:
        """The latest published EngineSnapshot (what the console renders)."""
        if self.client is not None:
            return self.client.snapshot
        assert self.session is not None
        return self.session.snapshot

    @property
    def journal_path(self) -> Path:
        if self.session is not None:
            return self.session.journal_path
        assert self._journal is not None
        return self._journal

    @property
    def venue(self) -> Any:
        """The built-in venue (engine.sim.SimVenue) of a session in this process when
        broker.kind = "sim", else None (always None when attached)."""
        return self.session.venue if self.session is not None else None

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
        if self.client is not None:
            return self._attached_client().execute_sync(command, timeout=timeout)
        self._engine()
        assert self.session is not None
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

    def _gone(self) -> bool:
        if self.client is not None:
            return self._closed
        assert self.session is not None
        return self.session.wait(0)

    def _attached_client(self) -> SessionClient:
        if self._closed or self.client is None:
            raise DeskError("the desk is closed (detached)")
        return self.client

    def _engine(self) -> Any:
        engine = self.session.engine if self.session is not None else None
        if self._closed or engine is None or self.session is None or self.session.wait(0):
            raise DeskError("the desk is closed")
        return engine

    def _service(self) -> BatchService:
        self._engine()
        service = self.session.batches if self.session is not None else None
        if service is None:
            raise DeskError("the desk is closed")
        return service

    def _on_loop(self, coro: Any, timeout: float) -> Any:
        loop = self.session._loop if self.session is not None else None
        if loop is None or loop.is_closed():
            coro.close()
            raise DeskError("the desk is closed")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def _sink(events: queue.Queue[EventRow], on_event: Callable[[EventRow], None] | None) -> Callable[[EventRow], None]:
    """Queue each event row for events() (dropping the oldest when full), then on_event."""

    def sink(row: EventRow) -> None:
        try:
            events.put_nowait(row)
        except queue.Full:
            events.get_nowait()
            events.put_nowait(row)
        if on_event is not None:
            on_event(row)

    return sink


def _taken(batch: SignalBatch) -> dict[str, Decimal]:
    """The batch's values as the Engine took them."""
    return {s: Decimal(repr(float(v))) for s, v in batch.signals.items()}


def _decode_orders(data: Any) -> list[OrderResult]:
    """The orders of a batch as the session sent them."""
    return [sp.decode_value(OrderResult, o) for o in data or ()]


def _of_batch(order: Order, ts: datetime) -> bool:
    return order.bar_ts == ts and order.reason == "signal" and not order.external


def _order_result(o: Order) -> OrderResult:
    return OrderResult(
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


def _fill(result: BatchResult, orders: list[OrderResult]) -> BatchResult:
    """Rebuild the result's symbols from the batch's orders as they are now."""
    by_symbol: dict[str, list[OrderResult]] = {s: [] for s in result.values}
    for o in orders:
        by_symbol.setdefault(o.symbol, []).append(o)
    result.symbols = {
        s: _symbol_result(s, result.values.get(s, Decimal(0)), os_, result.no_order.get(s))
        for s, os_ in by_symbol.items()
    }
    result.final = all(r.final for r in result.symbols.values())
    return result


def _symbol_result(
    symbol: str, value: Decimal, orders: list[OrderResult], why_not: tuple[str, str] | None = None
) -> SymbolResult:
    views = tuple(orders)  # in the order the Engine created them
    if not views:
        reason, detail = why_not or ("NO_CHANGE", f"{symbol}: no change needed")
        return SymbolResult(symbol, value, Verdict.NO_ORDER, reason=reason, detail=detail)
    last = views[-1]
    status = OrderStatus(last.status)
    verdict = _VERDICT_OF.get(status, Verdict.SENT)
    return SymbolResult(symbol, value, verdict, views, reason=last.denial, detail=last.detail)
