"""A trading session: everything the Engine needs, built from the configuration
— the built-in venue (broker.kind = "sim") or an Alpaca endpoint, the
AlpacaBroker, the journal, the signal source — and the Engine running in its
own thread with its own event loop, held through an EngineHandle.

A session owns its journal: it takes the journal's exclusive lock (engine/lock.py)
before anything else and holds it until it has stopped; it serves its control
socket (engine/control.py) before it trades, and does not start if it cannot.

Used alike by `execdesk run` (headless, also the background session that
`execdesk console` starts), the in-process console and the tests."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.broker.alpaca import AlpacaBroker, resolve_urls
from engine.commands import CommandResult, Halt, SessionCommand, StopSession
from engine.config import Credentials, Settings, credentials_from_env, install_url_redaction
from engine.control import ControlError, ControlServer, Link
from engine.core import Engine
from engine.core.observe import EngineObserver
from engine.doctor import PreflightFailed, PreflightReport, run_preflight
from engine.errors import ExecdeskError
from engine.events import OperatorCommand
from engine.journal import Journal, JournalError
from engine.lock import JournalLock, JournalLocked, RuntimeDirError, socket_path_for
from engine.model import OrderStatus
from engine.snapshot import EngineSnapshot, EventRow
from engine.universe import Universe

if TYPE_CHECKING:
    from engine.sim import SimVenue

if TYPE_CHECKING:
    from engine.sim import SimVenue

log = logging.getLogger("execdesk.session")


class SessionError(ExecdeskError):
    """A session could not start; the message says why, for the operator."""


@dataclass
class VenueEndpoints:
    trading_url: str | None
    data_url: str | None
    trading_stream_url: str | None
    data_stream_url: str | None


class Session:
    """Owns the venue (when built in), the engine thread and its loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        journal_path: str | Path | None = None,
        sim_overrides: dict[str, Any] | None = None,
        auto_approve: bool = False,
        credentials: Credentials | None = None,
        signal_source: Any = None,
        log_sink: Callable[[EventRow], None] | None = None,
        new_session: bool = False,
        venue: Any = None,
        venue_speed: float = 1.0,
        observers: Sequence[EngineObserver] = (),
    ):
        """`venue`: a built-in venue already running, owned by the caller, used instead of
        starting one and left running at stop (its clock runs at `venue_speed`).
        `observers`: handed to the Engine before it starts (engine.core.observe)."""
        if auto_approve and settings.is_live:
            raise SessionError("--auto-approve is refused in live mode: every live order needs an operator")
        self.settings = settings
        self.journal_path = Path(journal_path or settings.session.journal_path)
        self.sim_overrides = dict(sim_overrides or {})
        self.auto_approve = auto_approve
        self.credentials = credentials
        self.signal_source = signal_source
        self.log_sink = log_sink
        self.new_session = new_session
        self.venue: SimVenue | None = venue
        self.venue_speed = venue_speed
        self.observers = tuple(observers)
        self._owns_venue = venue is None
        self.engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._stopped = threading.Event()
        self._signal_task: asyncio.Task | None = None
        self._stop_requested: asyncio.Event | None = None
        self.control: ControlServer | None = None
        #: the batches a Desk hands in, here or over the socket (engine.desk.BatchService)
        self.batches: Any = None
        self.log_path: Path | None = None
        self._how = "stopped"
        self.lock = JournalLock(self.journal_path)
        self.socket_path = socket_path_for(self.journal_path)
        #: set once the session was asked to stop (by StopSession or stop()); its cause
        self.stop_requested = threading.Event()
        self.stop_cause = ""
        self.preflight_report: PreflightReport | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Session:
        return cls(settings, **kwargs)

    # ------------------------------------------------------------- building

    def _start_venue(self) -> tuple[Credentials, VenueEndpoints, float]:
        s = self.settings
        if s.broker.kind == "sim":
            if self.venue is None:
                creds, self.venue, speed = start_builtin_venue(s, self.credentials, self.sim_overrides)
            else:  # shared: started and stopped by the caller (the trading day)
                creds = Credentials(key_id=self.venue.key_id, secret_key=self.venue.secret_key)
                speed = self.venue_speed
            venue = self.venue
            return (
                creds,
                VenueEndpoints(
                    venue.trading_url,
                    venue.data_url,
                    venue.trading_stream_url,
                    venue.data_stream_url,
                ),
                speed,
            )
        from_env = self.credentials or credentials_from_env()
        if from_env is None:
            raise SessionError(
                'broker.kind = "alpaca" needs APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment'
            )
        return from_env, VenueEndpoints(None, None, None, None), 1.0

    # ------------------------------------------------------------- preflight

    def preflight(self, universe: Universe | None = None) -> PreflightReport:
        """Start the venue (if built in) and run the preflight against it, without
        starting the engine (`execdesk doctor`); stop() ends the venue."""
        creds, urls, _speed = self._start_venue()
        return self._run_preflight(creds, urls, universe)

    def _run_preflight(self, creds: Credentials, urls: VenueEndpoints, universe: Universe | None) -> PreflightReport:
        resolved = resolve_urls(self.settings, trading_url=urls.trading_url, data_url=urls.data_url)
        report = run_preflight(
            self.settings,
            creds,
            resolved.trading,
            resolved.data,
            universe=universe,
            builtin=self.settings.broker.kind == "sim",
        )
        self.preflight_report = report
        return report

    def _note_preflight(self) -> None:
        """The preflight's warnings in the event log and the journal (after the
        journal is open: the session has started by then)."""
        report, engine = self.preflight_report, self.engine
        if report is None or engine is None:
            return
        warnings = [f"{f.check}: {f.message}" for f in report.warnings]
        engine.recorder.journal(ev.PreflightChecked(venue=report.venue, endpoint=report.endpoint, warnings=warnings))
        if not warnings:
            return  # a clean preflight is in the journal; the event log stays for what needs the operator
        for text in warnings:
            engine.note("info", None, f"preflight WARNING: {text}")
        engine.note("info", None, f"preflight passed ({report.endpoint}, {len(warnings)} warning(s))")

    def _build_engine(self) -> Engine:
        universe = self.settings.load_universe()
        creds, urls, speed = self._start_venue()
        report = self._run_preflight(creds, urls, universe)  # before the journal is touched
        if not report.passed:
            raise PreflightFailed(report)
        broker = AlpacaBroker(
            self.settings,
            creds,
            trading_url=urls.trading_url,
            data_url=urls.data_url,
            trading_stream_url=urls.trading_stream_url,
            data_stream_url=urls.data_stream_url,
        )
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        journal = Journal(self.journal_path)
        return Engine(
            self.settings,
            broker,
            journal,
            universe,
            venue_kind="SIM" if self.settings.broker.kind == "sim" else "ALPACA",
            clock_speed=speed,
            auto_approve=self.auto_approve,
            log_sink=self.log_sink,
            new_session=self.new_session,
            observers=self.observers,
        )

    # ------------------------------------------------------------- running

    def _configure_logging(self) -> None:
        """Library and engine log records go to a file next to the journal, never to
        the terminal (a stray line on stderr would tear the console's screen). Left
        alone when the host program (a test runner) has configured logging."""
        root = logging.getLogger()
        install_url_redaction(tuple(root.handlers))
        if root.handlers:
            return
        path = self.journal_path.with_name(self.journal_path.name + ".log")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        install_url_redaction((handler,))
        root.setLevel(logging.INFO)
        self.log_path = path

    def start(self, timeout: float = 60.0) -> Session:
        """Start the venue (if built in) and the engine thread; return once the
        engine has started (start-up reconciliation done or failed closed).
        Refuses (SessionError) when another process holds the journal."""
        try:
            self.lock.acquire(self.socket_path)
        except JournalLocked as exc:
            raise SessionError(str(exc)) from None
        except OSError as exc:
            raise SessionError(f"cannot lock the journal {self.journal_path}: {exc.strerror or exc}") from None
        self._configure_logging()
        self._thread = threading.Thread(target=self._thread_main, name="execdesk-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise SessionError(f"the engine did not start within {timeout:.0f} s")
        if self._start_error is not None:
            err = self._start_error
            self.stop(how="failed to start")
            if isinstance(err, (SessionError, PreflightFailed)):
                raise err
            raise SessionError(f"the engine could not start: {err}") from err
        return self

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._stopped.set()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            self.engine = self._build_engine()  # the preflight blocks: nothing else runs here yet
            # the control socket first: a session nobody can halt from outside does not trade
            control = ControlServer(
                self.socket_path, lambda: self.snapshot, self.execute_here, journal_command=self._journal_command
            )
            try:
                await control.start()
            except (ControlError, RuntimeDirError, OSError) as exc:
                raise SessionError(
                    f"cannot serve the control socket {self.socket_path}: {exc}; not trading without it"
                ) from None
            self.control = control
            await self.engine.start()
            self._note_preflight()
            if self.signal_source is None:
                from engine.signals import open_source

                self.signal_source = open_source(self.settings, known_symbols=frozenset(self.engine.symbols))
            self._signal_task = asyncio.get_running_loop().create_task(self._pump_signals())
            from engine.desk import BatchService  # batches of a Desk, in process or attached (submit_batch)

            self.batches = BatchService.start(self.engine, self.signal_source, self.settings.signals.max_age)
            control.batches = self.batches
        except BaseException as exc:  # reported to the starting thread
            self._start_error = exc
            self._started.set()
            if self.control is not None:
                await self.control.stop("the session failed to start")
            if self.engine is not None and self.engine.started:
                try:
                    await self.engine.stop("failed to start")
                except Exception:  # the start's own error is what the operator must see, not a thread traceback
                    log.exception("stopping the engine after a failed start")
            return
        self._started.set()
        await self._stop_requested.wait()
        # close the source first so its last word (a truncated line) still reaches the engine
        try:
            await asyncio.wait_for(self.signal_source.aclose(), timeout=5)
            if self.batches is not None:
                await asyncio.wait_for(self.batches.aclose(), timeout=5)
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        if self._signal_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._signal_task), timeout=2)
            except (TimeoutError, Exception):
                self._signal_task.cancel()
                await asyncio.gather(self._signal_task, return_exceptions=True)
        await asyncio.sleep(0)  # let the engine take the last batch off its inbox
        await self._drain_submits()
        await self.engine.stop(self._how)
        if self.control is not None:
            await self.control.stop(self._how)

    # ------------------------------------------------------------- stopping

    @property
    def drain_timeout(self) -> float:
        """How long an orderly stop waits for submits on the wire to be answered."""
        return float(self.settings.order_management.submit_timeout)

    def _unanswered(self) -> list[str]:
        """Orders whose submit has left and whose answer is not journaled yet (sent,
        or unknown and being looked up)."""
        assert self.engine is not None
        return [
            o.client_order_id
            for o in self.engine.open_orders()
            if o.status in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN)
        ]

    async def _drain_submits(self) -> None:
        """Wait, at most drain_timeout, for every submit already on the wire to be
        answered and its answer journaled (acked, rejected, or found by lookup), so
        that the sealed journal says what the venue did. What is still unanswered
        then is left to the next start's reconciliation, and said so."""
        engine = self.engine
        if engine is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout
        quiet = 0
        while loop.time() < deadline:
            # two looks in a row with nothing in flight: a batch taken off the inbox
            # between them would have shown its submits as SUBMITTING
            quiet = quiet + 1 if not self._unanswered() else 0
            if quiet >= 2:
                return
            await asyncio.sleep(0.05)
        left = self._unanswered()
        if left:
            engine.note(
                "error",
                None,
                f"stopping: {len(left)} submit(s) not answered within {self.drain_timeout:.0f} s "
                f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''}): the next start looks them up",
            )

    async def _pump_signals(self) -> None:
        assert self.engine is not None
        market = self.engine.market_view()
        async for batch in self.signal_source.batches(market):
            await self.engine.submit_batch(batch)

    def stop_signals(self, timeout: float = 10.0) -> None:
        """Close the signal source (what it already read still reaches the Engine) and
        wait for the pump to end: no new batches, the session otherwise running."""
        loop, source = self._loop, self.signal_source
        if loop is None or loop.is_closed() or source is None:
            return

        async def close() -> None:
            await source.aclose()
            if self.batches is not None:
                await self.batches.aclose()
            if self._signal_task is not None:
                await asyncio.wait({self._signal_task}, timeout=timeout)

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout + 5)

    @property
    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot if self.engine is not None else EngineSnapshot()

    @property
    def link(self) -> Link:
        """In process the console is always attached, until the session has stopped."""
        if self._stopped.is_set() or self.stop_requested.is_set():
            return Link("gone", f"the session ended: {self._how}")
        return Link("up", "in process")

    async def execute_here(self, command: SessionCommand) -> CommandResult:
        """Run a command on the session's own loop: StopSession is the session's,
        everything else the Engine's."""
        if isinstance(command, StopSession):
            return self._request_stop(f"stopped by {command.cause}")
        if self.engine is None or not self.engine.started or self.engine.stopping:
            return CommandResult(False, "the engine is not running")
        return await self.engine.execute(command)

    def _request_stop(self, how: str) -> CommandResult:
        if self.stop_requested.is_set():
            return CommandResult(False, f"the session is already stopping ({self.stop_cause})")
        self.stop_cause = how
        self._how = how
        self.stop_requested.set()
        if self._loop is not None and self._stop_requested is not None:
            # after the answer has gone out
            self._loop.call_later(0.2, self._stop_requested.set)
        return CommandResult(True, "session stopping: no new orders, open orders left working, journal sealed")

    def _journal_command(self, event: OperatorCommand) -> None:
        if self.engine is None or not self.engine.started:
            return
        try:
            # the kill switch does not wait for an fsync: its own events follow at once
            self.engine.journal.append(event, durable=event.command != "halt")
        except (JournalError, RuntimeError) as exc:
            log.warning("could not journal the command %s: %s", event.command, exc)

    def _call(self, command: SessionCommand) -> Future:
        if self._loop is None or self.engine is None or self._loop.is_closed():
            f: Future = Future()
            f.set_result(CommandResult(False, "the engine is not running"))
            return f
        if isinstance(command, Halt):
            return self._halt_from_thread(command, self._loop)
        return asyncio.run_coroutine_threadsafe(self.execute_here(command), self._loop)

    def _halt_from_thread(self, command: Halt, loop: asyncio.AbstractEventLoop) -> Future:
        """The kill switch from another thread (the in-process console, execute_sync):
        its cancel-all handed to the broker's cancel worker from this thread, once no
        submit may leave any more (Halting.send_ahead); the rest run in a plain callback
        at the loop's next turn (Engine.halt_now), not in a task (one more turn, behind
        whatever the first one scheduled) that then waits for the engine task to take
        it off the inbox (another turn). Measured with a 53-order batch answering on the
        loop: those turns were most of the kill switch's tail, and one turn alone could
        take 50 ms."""
        f: Future = Future()
        engine = self.engine
        sent = None
        if engine is not None and engine.running and not engine.stopping:
            # the cancel-all leaves from this thread, before the loop gets to the Halt
            sent = engine.halt.send_ahead(loop)

        def run() -> None:
            engine = self.engine
            if engine is None or not engine.started or engine.stopping:
                if sent is not None:
                    sent.close()  # its answer is not awaited: the session is stopping
                    f.set_result(CommandResult(False, "the engine is stopping: cancel-all sent, not tracked"))
                else:
                    f.set_result(CommandResult(False, "the engine is not running"))
                return
            result = engine.halt_now(command, sent)
            if result is not None:
                f.set_result(result)
                return
            task = loop.create_task(self.execute_here(command))  # start-up: through the inbox
            task.add_done_callback(lambda t: _copy_outcome(t, f))

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop closed meanwhile
            if sent is not None:
                sent.close()
            f.set_result(CommandResult(False, "the engine is not running"))
        return f

    async def execute(self, command: SessionCommand) -> CommandResult:
        return await asyncio.wrap_future(self._call(command))

    def execute_sync(self, command: SessionCommand, timeout: float = 10.0) -> CommandResult:
        return self._call(command).result(timeout)

    def stop(self, timeout: float | None = None, how: str = "stopped") -> None:
        """Stop in order: no new orders, submits on the wire answered (at most
        drain_timeout), open orders left working, journal sealed (saying `how` the
        session ended), venue stopped."""
        if not self.stop_requested.is_set():
            self._how = how
            self.stop_cause = how
            self.stop_requested.set()
        if timeout is None:
            timeout = 30.0 + self.drain_timeout
        if self._loop is not None and not self._loop.is_closed() and self._stop_requested is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop_requested.set)
            except RuntimeError:
                pass
            self._stopped.wait(timeout)
        if self.venue is not None and self._owns_venue:
            self.venue.stop()
            self.venue = None
        if self._thread is None or self._stopped.is_set():
            self.lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _copy_outcome(task: asyncio.Task, f: Future) -> None:
    if task.cancelled():
        f.cancel()
    elif (exc := task.exception()) is not None:
        f.set_exception(exc)
    else:
        f.set_result(task.result())


def start_builtin_venue(
    settings: Settings, credentials: Credentials | None = None, overrides: dict[str, Any] | None = None
) -> tuple[Credentials, Any, float]:
    """Start the built-in venue `[sim]` describes (with `overrides` of its options):
    (the credentials it accepts, the started SimVenue, its clock speed; 0 = frozen)."""
    from engine.sim import SimVenue  # the built-in venue, in-process

    s = settings
    creds = (
        credentials
        or credentials_from_env()
        or Credentials(key_id="SIM" + secrets.token_hex(8).upper(), secret_key=secrets.token_urlsafe(24))
    )
    options: dict[str, Any] = {
        "key_id": creds.key_id,
        "secret_key": creds.secret_key,
        "seed": s.sim.seed,
        "speed": s.sim.speed,
        "port": 0,
        "universe_path": str(s.universe_file()),
        "bars_csv": s.sim.bars_csv or None,
        "partial_fill_prob": s.sim.partial_fill_prob,
        "margin_multiplier": s.sim.margin_multiplier,
        "starting_cash": s.sim.starting_cash,
        "rate_limit_per_minute": s.sim.rate_limit_per_minute or None,
        "plan": s.sim.plan,
    }
    options.update(overrides or {})
    venue = SimVenue(**options)
    venue.start()
    return creds, venue, 0.0 if options.get("frozen_clock") else float(options.get("speed", 1.0))
