"""The trading day (`execdesk run --day`, or `[session] schedule = "day"`): for each
trading day of the venue's calendar (GET /v2/calendar, holidays and early closes
included) a session starts `preflight_minutes` before the open (its start-up
reconciliation is the preflight and fails closed), trades through the regular
session, and `close_minutes_before` the close runs the close routine: signals
stopped, pending approvals rejected, working orders cancelled, positions flattened
if `at_close = "flatten"` (default hold), the session sealed and the day's execution
report written to `<reports_dir>/YYYY-MM-DD.md`. Then it stops or waits for the next
trading day (`after_close`). The built-in venue, when used, lives across the days."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

from engine.backoff import Backoff
from engine.commands import CancelOrder, Flatten, RejectAll
from engine.config import Credentials, Settings, credentials_from_env
from engine.errors import ExecdeskError
from engine.exitcodes import ExitCode
from engine.snapshot import EventRow
from engine.timezones import NEW_YORK

T = TypeVar("T")

CLOSE_SETTLE_TIMEOUT = 60.0  # wall seconds the close routine waits for cancels and flatten fills
CALENDAR_DAYS_AHEAD = 15  # days of calendar asked for at a time (covers any run of holidays)
CALENDAR_RETRY = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0.5)  # the venue's clock or calendar failed


class TradingDayError(ExecdeskError):
    """The day cannot be run: no calendar, no credentials."""


@dataclass(frozen=True)
class MarketDay:
    """One trading day of the venue's calendar (open and close as aware UTC datetimes)."""

    date: date
    open: datetime
    close: datetime


class VenueCalendar:
    """The venue's clock and calendar, through alpaca-py's TradingClient."""

    def __init__(self, credentials: Credentials, trading_url: str | None, *, paper: bool = True):
        from alpaca.trading.client import TradingClient

        self._client = TradingClient(
            credentials.key_id, credentials.secret_key, paper=paper, url_override=trading_url, raw_data=False
        )

    def now(self) -> datetime:
        return self._client.get_clock().timestamp  # type: ignore[union-attr]

    def days(self, start: date, end: date) -> list[MarketDay]:
        from alpaca.trading.requests import GetCalendarRequest

        rows = self._client.get_calendar(GetCalendarRequest(start=start, end=end))
        return [
            MarketDay(
                row.date,  # type: ignore[union-attr]
                row.open.replace(tzinfo=NEW_YORK),  # type: ignore[union-attr]
                row.close.replace(tzinfo=NEW_YORK),  # type: ignore[union-attr]
            )
            for row in rows
        ]

    def next_day(self, now: datetime, close_lead: timedelta) -> MarketDay:
        """The trading day whose close routine is still ahead of `now`."""
        start = now.astimezone(NEW_YORK).date()
        days = self.days(start, start + timedelta(days=CALENDAR_DAYS_AHEAD))
        for day in days:
            if day.close - close_lead > now:
                return day
        raise TradingDayError(f"the venue's calendar has no trading day from {start} to {CALENDAR_DAYS_AHEAD} days on")


class TradingDay:
    """Runs trading days one after another (see the module docstring). `phase` says
    where it is: starting, waiting, preflight, trading, closing, done."""

    def __init__(
        self,
        settings: Settings,
        *,
        journal_path: str | Path | None = None,
        auto_approve: bool = False,
        days: int | None = None,
        out: TextIO | None = None,
        credentials: Credentials | None = None,
        sim_overrides: dict[str, Any] | None = None,
        log_sink: Callable[[EventRow], None] | None = None,
    ):
        self.settings = settings
        self.journal_path = Path(journal_path or settings.session.journal_path)
        self.auto_approve = auto_approve
        self.days = days
        self.out = out or sys.stdout
        self.credentials = credentials
        self.sim_overrides = dict(sim_overrides or {})
        self.log_sink = log_sink
        self.reports: list[Path] = []
        self.days_done: list[date] = []
        self.phase = "starting"
        self.next: MarketDay | None = None  # the day being waited for or traded
        self.session: Any = None
        self.venue: Any = None
        self.reason = ""
        self._stop = threading.Event()

    # ------------------------------------------------------------------ control

    def stop(self, reason: str = "stopped") -> None:
        self.reason = reason
        self._stop.set()

    def _on_signal(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.stop(signal.Signals(signum).name)

    def _say(self, text: str) -> None:
        print(f"day: {text}", file=self.out, flush=True)

    def _sink(self, row: EventRow) -> None:
        if self.log_sink is not None:
            self.log_sink(row)
        else:
            print(f"{row.ts.strftime('%Y-%m-%dT%H:%M:%S')} {row.kind:<9} {row.text}", file=self.out, flush=True)

    # ------------------------------------------------------------------ running

    def run(self) -> int:
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a closed terminal stops it in order too
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            return self._run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.phase = "done"

    def _run(self) -> int:
        from engine.session import Session, start_builtin_venue

        s = self.settings
        speed = 1.0
        if s.broker.kind == "sim":
            creds, self.venue, speed = start_builtin_venue(s, self.credentials, self.sim_overrides)
            trading_url: str | None = self.venue.trading_url
        else:
            found = self.credentials or credentials_from_env()
            if found is None:
                raise TradingDayError('broker.kind = "alpaca" needs APCA_API_KEY_ID and APCA_API_SECRET_KEY')
            creds, trading_url = found, s.broker.trading_url or None
        calendar = VenueCalendar(creds, trading_url, paper=not s.is_live)
        close_lead = timedelta(minutes=s.session.close_minutes_before)
        preflight = timedelta(minutes=s.session.preflight_minutes)
        try:
            while not self._stop.is_set():
                found_day = self._ask(lambda: calendar.next_day(calendar.now(), close_lead))
                if found_day is None:
                    break
                day = self.next = found_day
                close_at = day.close - close_lead
                self._say(
                    f"next trading day {day.date}: open {_ny(day.open)}, close {_ny(day.close)} New York; "
                    f"preflight at {_ny(day.open - preflight)}, close routine at {_ny(close_at)}"
                )
                self.phase = "waiting"
                if not self._until(calendar, day.open - preflight, speed):
                    break
                self.phase = "preflight"
                self.session = Session.from_settings(
                    s,
                    journal_path=self.journal_path,
                    auto_approve=self.auto_approve,
                    credentials=creds,
                    log_sink=self._sink,
                    venue=self.venue,
                    venue_speed=speed,
                )
                self.session.start()  # start-up reconciliation: fails closed (SessionError)
                snap = self.session.snapshot
                self._say(
                    f"preflight {day.date}: session {snap.session_id} reconciled, "
                    f"{'ready' if snap.trading_ready else 'NOT READY: ' + snap.not_ready_reason}; "
                    f"equity {snap.equity:,.2f}, {len(snap.positions)} position(s)"
                )
                self.phase = "trading"
                if not self._until(calendar, close_at, speed):
                    self.session.stop(how=f"stopped: {self.reason}" if self.reason else "stopped")
                    self.session = None
                    break
                self.phase = "closing"
                self._close_routine(day)
                self.days_done.append(day.date)
                if s.session.after_close == "stop" or (self.days is not None and len(self.days_done) >= self.days):
                    self.reason = self.reason or f"{len(self.days_done)} trading day(s) done"
                    break
        finally:
            if self.session is not None:
                self.session.stop(how=f"stopped: {self.reason}" if self.reason else "stopped")
                self.session = None
            if self.venue is not None:
                self.venue.stop()
        self._say(f"stopped ({self.reason or 'done'}); reports: {', '.join(map(str, self.reports)) or 'none'}")
        return ExitCode.OK

    def _until(self, calendar: VenueCalendar, when: datetime, speed: float) -> bool:
        """Wait until the venue clock reaches `when` (False if stopped first). The clock
        is read again at least every second on the built-in venue (drills move it)."""
        cap = 1.0 if self.venue is not None else 30.0
        while not self._stop.is_set():
            now = self._ask(calendar.now)
            if now is None:
                return False
            left = (when - now).total_seconds()
            if left <= 0:
                return True
            wall = left / speed if speed > 0 else cap
            self._stop.wait(max(0.02, min(wall, cap)))
        return False

    def _ask(self, read: Callable[[], T]) -> T | None:
        """A read of the venue's clock or calendar, retried by CALENDAR_RETRY while the
        venue does not answer (a night is long: an outage must not end the run).
        None when stopped meanwhile."""
        delays = CALENDAR_RETRY.delays()
        while not self._stop.is_set():
            try:
                return read()
            except TradingDayError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the venue: retried
                wait = next(delays)
                self._say(f"the venue's clock/calendar did not answer ({type(exc).__name__}); again in {wait:.0f} s")
                self._stop.wait(wait)
        return None

    def _close_routine(self, day: MarketDay) -> None:
        session, s = self.session, self.settings.session
        session.stop_signals()
        session.execute_sync(RejectAll(), timeout=30)
        asked: set[str] = set()
        deadline = time.monotonic() + CLOSE_SETTLE_TIMEOUT
        in_flight = 0
        while time.monotonic() < deadline:  # every working order of ours, cancelled
            snap = session.snapshot
            in_flight = 0
            for cid, row in snap.orders.items():
                if cid in asked or row.external:
                    continue
                if row.venue_order_id is None:
                    # a submit not answered yet (the client's budget may hold it back):
                    # nothing to cancel at the venue until it is, so wait for its answer
                    in_flight += 1
                    continue
                if session.execute_sync(CancelOrder(cid), timeout=30).ok:
                    asked.add(cid)
            if snap.open_order_count == 0:
                break
            time.sleep(0.1)
        if s.at_close == "flatten":
            result = session.execute_sync(Flatten("close"), timeout=60)
            self._say(f"at the close: flatten: {result.message}")
            while time.monotonic() < deadline:
                snap = session.snapshot
                if not snap.positions and snap.open_order_count == 0:
                    break
                time.sleep(0.1)
        snap = session.snapshot
        held = f"{len(snap.positions)} position(s) " + ("held overnight" if s.at_close == "hold" else "left")
        waiting = f" ({in_flight} submit(s) never answered)" if in_flight and snap.open_order_count else ""
        self._say(
            f"close routine {day.date}: {len(asked)} working order(s) cancelled, "
            f"{snap.open_order_count} still open{waiting}; {held}"
        )
        session.stop(how=f"day closed {day.date}")
        self.session = None
        self.reports.append(self._write_report(day))

    def _write_report(self, day: MarketDay) -> Path:
        from engine.report.command import render_report

        folder = Path(self.settings.session.reports_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{day.date.isoformat()}.md"
        # through the report cache: the day's `execdesk report` afterwards reads it, not the events
        path.write_text(render_report(self.journal_path, None, "md", "orders", False), encoding="utf-8")
        self._say(f"report {day.date}: {path}")
        return path


def _ny(t: datetime) -> str:
    return t.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M")
