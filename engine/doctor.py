"""The preflight: can this configuration trade on its venue? Asked of the venue
through alpaca-py before anything else happens — the keys, paper or live, the
account's status and blocks, the market-data plan (which feed is entitled, the
stream's symbol limit), every universe symbol's asset record (one listing), the
clock and the calendar. Every session runs it first (a blocker stops the session,
warnings are shown and journaled); `execdesk doctor [--json]` runs it on its own."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from requests.adapters import HTTPAdapter

from engine.broker.wire import Failure, Scrubber, asset_from_raw, clock_from_raw, failure_of
from engine.config import (
    ALPACA_LIVE_TRADING_HOST,
    ALPACA_PAPER_TRADING_HOST,
    Credentials,
    Settings,
    redact_urls,
    url_host,
)
from engine.errors import ExecdeskError
from engine.timezones import NEW_YORK
from engine.universe import Universe

# Alpaca's free (Basic, IEX) plan: at most this many symbols on the market-data
# stream (trades and quotes); the paid plan (SIP) has no such limit.
FREE_PLAN_STREAM_SYMBOLS = 30
# On Alpaca's own endpoints the machine's clock should agree with the venue's.
MAX_CLOCK_SKEW = timedelta(seconds=60)
CALENDAR_DAYS = 14


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"  # shown and journaled; the session starts
    BLOCKER = "blocker"  # the session does not start


@dataclass(frozen=True)
class Finding:
    check: str  # endpoint | credentials | account | data_plan | assets | clock | calendar
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "severity": self.severity.value, "message": self.message}


@dataclass
class PreflightReport:
    venue: str  # the trading URL, credentials redacted
    endpoint: str  # "paper" | "live" | "built-in venue" | "other endpoint"
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(check, severity, message))

    def _of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity is severity]

    @property
    def blockers(self) -> list[Finding]:
        return self._of(Severity.BLOCKER)

    @property
    def warnings(self) -> list[Finding]:
        return self._of(Severity.WARNING)

    @property
    def passed(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "venue": self.venue,
            "endpoint": self.endpoint,
            "blockers": [f"{f.check}: {f.message}" for f in self.blockers],
            "warnings": [f"{f.check}: {f.message}" for f in self.warnings],
            "findings": [f.to_dict() for f in self.findings],
        }

    def render(self) -> str:
        lines = [f"execdesk doctor: {self.venue} ({self.endpoint})"]
        lines += [f"  {f.severity.value:<8} {f.check}: {f.message}" for f in self.findings]
        if self.passed:
            tail = f"preflight passed ({len(self.warnings)} warning(s))"
        else:
            tail = f"preflight FAILED: {len(self.blockers)} blocker(s), {len(self.warnings)} warning(s)"
        return "\n".join([*lines, tail])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


class PreflightFailed(ExecdeskError):
    """The preflight found blockers: each is one line of `problems`."""

    def __init__(self, report: PreflightReport):
        self.report = report
        self.problems = [f"preflight: {f.check}: {f.message}" for f in report.blockers]
        super().__init__("\n".join(self.problems))


def endpoint_kind(trading_url: str, *, builtin: bool = False) -> str:
    if builtin:
        return "built-in venue"
    host = url_host(trading_url)
    if host == ALPACA_LIVE_TRADING_HOST:
        return "live"
    if host == ALPACA_PAPER_TRADING_HOST:
        return "paper"
    return "other endpoint"


# ---- the venue, through alpaca-py --------------------------------------------------


class _TimeoutAdapter(HTTPAdapter):
    """No retries, and a timeout on every request (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(self, request, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class _Venue:
    """The few reads the preflight makes, each asked once (no retry by alpaca-py)."""

    def __init__(self, settings: Settings, credentials: Credentials, trading_url: str, data_url: str) -> None:
        from alpaca.data.historical.stock import StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        key, secret = credentials.key_id, credentials.secret_key
        self.scrub = Scrubber([key, secret])
        self.trading = TradingClient(key, secret, paper=not settings.is_live, raw_data=True, url_override=trading_url)
        self.data = StockHistoricalDataClient(key, secret, raw_data=True, url_override=data_url)
        adapter = _TimeoutAdapter(float(settings.broker.request_timeout))
        for client in (self.trading, self.data):
            client._retry = 0
            client._retry_codes = []
            client._session.mount("http://", adapter)
            client._session.mount("https://", adapter)

    def ask(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, Failure | None]:
        try:
            return fn(*args), None
        except Exception as exc:
            return None, failure_of(exc, self.scrub)

    def close(self) -> None:
        for client in (self.trading, self.data):
            client._session.close()


def _refused_keys(f: Failure) -> bool:
    return f.kind == "http" and f.status in (401, 403)


# ---- the checks ------------------------------------------------------------------------


def run_preflight(
    settings: Settings,
    credentials: Credentials,
    trading_url: str,
    data_url: str,
    *,
    universe: Universe | None = None,
    builtin: bool = False,
) -> PreflightReport:
    """Every check against the venue at trading_url / data_url (blocking calls: run
    it in a thread from async code). Never raises for what the venue answers."""
    universe = universe if universe is not None else settings.load_universe()
    report = PreflightReport(redact_urls(trading_url), endpoint_kind(trading_url, builtin=builtin))
    _check_endpoint(report, settings)
    venue = _Venue(settings, credentials, trading_url, data_url)
    try:
        if not _check_account(report, venue, settings, credentials, trading_url):
            return report  # without the account nothing else can be asked
        allow = set(settings.rollout.allowlist)
        traded = [s for s in universe.symbols if not allow or s in allow]
        _check_data_plan(report, venue, settings, traded)
        _check_assets(report, venue, settings, universe, traded)
        _check_clock_and_calendar(report, venue, builtin=builtin or report.endpoint == "other endpoint")
    finally:
        venue.close()
    return report


def _check_endpoint(report: PreflightReport, settings: Settings) -> None:
    kind = report.endpoint
    if kind == "live" and not settings.is_live:
        report.add(
            "endpoint",
            Severity.BLOCKER,
            f"{report.venue} is Alpaca's live trading endpoint, and this is not a live session "
            '(live trading needs execution.mode = "live" and --live)',
        )
    elif kind == "live":
        report.add("endpoint", Severity.OK, f"LIVE trading at {report.venue} (confirmed with --live)")
    elif kind == "paper" and settings.execution.mode == "live":
        report.add(
            "endpoint",
            Severity.WARNING,
            f'execution.mode = "live", but {report.venue} is Alpaca\'s paper endpoint: orders go to the paper account',
        )
    else:
        report.add("endpoint", Severity.OK, f"{kind} at {report.venue} ({settings.execution.mode} trading)")


def _check_account(
    report: PreflightReport, venue: _Venue, settings: Settings, credentials: Credentials, trading_url: str
) -> bool:
    raw, failure = venue.ask(venue.trading.get_account)
    if failure is not None:
        if _refused_keys(failure):
            hint = ""
            if report.endpoint in ("paper", "live"):
                hint = (
                    f"; keys of a paper account work only on https://{ALPACA_PAPER_TRADING_HOST}, "
                    f"those of a live account only on https://{ALPACA_LIVE_TRADING_HOST}"
                )
            report.add(
                "credentials",
                Severity.BLOCKER,
                f"the API key or secret is wrong: {report.venue} refused APCA_API_KEY_ID = "
                f"{credentials.masked_key_id} with {failure.detail}{hint}",
            )
        elif failure.kind in ("timeout", "connection"):
            report.add("credentials", Severity.BLOCKER, f"cannot reach the venue at {report.venue}: {failure.detail}")
        else:
            report.add("credentials", Severity.BLOCKER, f"GET /v2/account failed: {failure.detail}")
        return False
    if not isinstance(raw, dict):
        report.add("credentials", Severity.BLOCKER, "GET /v2/account: unreadable answer")
        return False
    report.add("credentials", Severity.OK, f"APCA_API_KEY_ID = {credentials.masked_key_id} accepted")
    number, status = str(raw.get("account_number") or "?"), str(raw.get("status") or "").upper()
    blocked = False
    if status not in ("ACTIVE", "ACCOUNT_UPDATED"):
        report.add(
            "account",
            Severity.BLOCKER,
            f"account {number} is {status or 'of unknown status'}: the venue takes orders only from ACTIVE accounts",
        )
        blocked = True
    if raw.get("account_blocked"):
        report.add("account", Severity.BLOCKER, f"account {number} is blocked (account_blocked): it cannot trade")
        blocked = True
    if raw.get("trading_blocked") or raw.get("trade_suspended_by_user"):
        why = " (suspended by the user: suspend_trade)" if raw.get("trade_suspended_by_user") else ""
        report.add("account", Severity.BLOCKER, f"trading is blocked for account {number} (trading_blocked){why}")
        blocked = True
    if not blocked:
        report.add(
            "account",
            Severity.OK,
            f"account {number} {status}: equity {raw.get('equity')}, buying power {raw.get('buying_power')}, "
            f"multiplier {raw.get('multiplier')}, shorting {'on' if raw.get('shorting_enabled') else 'off'}",
        )
    return True


def _check_data_plan(report: PreflightReport, venue: _Venue, settings: Settings, traded: Sequence[str]) -> None:
    from alpaca.data.enums import DataFeed
    from alpaca.data.requests import StockLatestQuoteRequest

    if not traded:
        report.add("data_plan", Severity.WARNING, "no symbol to trade: the universe and the allowlist name none")
        return
    probe = traded[0]

    def latest(feed: str) -> Failure | None:
        req = StockLatestQuoteRequest(symbol_or_symbols=[probe], feed=DataFeed(feed))
        return venue.ask(venue.data.get_stock_latest_quote, req)[1]

    feed = settings.broker.feed
    failure = latest(feed)
    if failure is not None:
        if failure.is_http(403) and "subscription" in failure.message.lower():
            report.add(
                "data_plan",
                Severity.BLOCKER,
                f'broker.feed = "{feed}" is not in this account\'s market-data plan ({failure.detail}; the '
                f'stream would refuse it with 409 insufficient subscription): set broker.feed = "iex"',
            )
        elif _refused_keys(failure):
            report.add("data_plan", Severity.BLOCKER, f"the market-data API refused the keys: {failure.detail}")
        else:
            report.add("data_plan", Severity.WARNING, f"market data could not be probed: {failure.detail}")
        return
    sip = failure if feed == "sip" else latest("sip")
    if sip is None:
        report.add(
            "data_plan",
            Severity.OK,
            f'feed "{feed}" entitled; the plan includes SIP: no stream symbol limit ({len(traded)} symbols)',
        )
        return
    if not (sip.is_http(403) and "subscription" in sip.message.lower()):
        report.add("data_plan", Severity.OK, f'feed "{feed}" entitled (the plan could not be told: {sip.detail})')
        return
    if len(traded) > FREE_PLAN_STREAM_SYMBOLS:
        # not a problem: the engine streams what the plan allows and polls the rest
        # over REST (engine/core/quotes.py, [market_data]); said so the operator knows
        polled = len(traded) - FREE_PLAN_STREAM_SYMBOLS
        every = settings.market_data.poll_interval
        report.add(
            "data_plan",
            Severity.OK,
            f'feed "{feed}" entitled on the free plan (SIP refused), whose market-data stream takes at most '
            f"{FREE_PLAN_STREAM_SYMBOLS} symbols: {FREE_PLAN_STREAM_SYMBOLS} of {len(traded)} streamed, "
            f"{polled} polled over REST every {every:g} s",
        )
    else:
        report.add(
            "data_plan",
            Severity.OK,
            f'feed "{feed}" entitled on the free plan: {len(traded)} symbols, within its stream limit '
            f"of {FREE_PLAN_STREAM_SYMBOLS}",
        )


def _listed(symbols: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(symbols[:limit])
    return shown + (f" and {len(symbols) - limit} more" if len(symbols) > limit else "")


def _check_assets(
    report: PreflightReport, venue: _Venue, settings: Settings, universe: Universe, traded: Sequence[str]
) -> None:
    from alpaca.trading.enums import AssetClass
    from alpaca.trading.requests import GetAssetsRequest

    # one listing of every US equity (not a request per symbol)
    raw, failure = venue.ask(venue.trading.get_all_assets, GetAssetsRequest(asset_class=AssetClass.US_EQUITY))
    if failure is not None or not isinstance(raw, list):
        why = failure.detail if failure is not None else "unreadable answer"
        report.add("assets", Severity.BLOCKER, f"GET /v2/assets failed: {why}")
        return
    wanted = set(universe.symbols)
    records = {}
    for row in raw:
        if isinstance(row, dict) and row.get("symbol") in wanted:
            try:
                records[row["symbol"]] = asset_from_raw(row)
            except (KeyError, TypeError, ValueError):
                continue
    trading = set(traded)
    missing = [s for s in universe.symbols if s not in records]
    untradable = [
        s for s in universe.symbols if s in records and not (records[s].tradable and records[s].status == "active")
    ]
    for symbols, what in (
        (missing, "not an asset at the venue"),
        (untradable, "not tradable at the venue (tradable = false or status not active)"),
    ):
        used = [s for s in symbols if s in trading]
        unused = [s for s in symbols if s not in trading]
        if used:
            report.add("assets", Severity.BLOCKER, f"{what}: {_listed(used)}")
        if unused:
            report.add("assets", Severity.WARNING, f"{what} (outside rollout.allowlist): {_listed(unused)}")
    flags = {a.symbol: a for a in universe.assets}
    not_shortable = [s for s in traded if s in records and flags[s].shortable and not records[s].shortable]
    hard_to_borrow = [s for s in traded if s in records and flags[s].easy_to_borrow and not records[s].easy_to_borrow]
    if not_shortable:
        report.add(
            "assets",
            Severity.WARNING,
            f"shortable in the universe file, not at the venue (short sells are denied): {_listed(not_shortable)}",
        )
    if hard_to_borrow:
        report.add(
            "assets",
            Severity.WARNING,
            f"easy to borrow in the universe file, hard to borrow at the venue: {_listed(hard_to_borrow)}",
        )
    if settings.position_sizing.fractional:
        whole = [s for s in traded if s in records and not records[s].fractionable]
        if whole:
            report.add(
                "assets",
                Severity.WARNING,
                f"position_sizing.fractional = true, but not fractionable at the venue: {_listed(whole)}",
            )
    if not missing and not untradable:
        report.add(
            "assets",
            Severity.OK,
            f"{len(universe.symbols)} universe symbols, every one active and tradable at the venue "
            f"({len(traded)} traded)",
        )


def _ny(ts: datetime) -> str:
    return ts.astimezone(NEW_YORK).strftime("%a %Y-%m-%d %H:%M ET")


def _check_clock_and_calendar(report: PreflightReport, venue: _Venue, *, builtin: bool) -> None:
    from alpaca.trading.requests import GetCalendarRequest

    raw, failure = venue.ask(venue.trading.get_clock)
    try:
        clock = clock_from_raw(raw) if failure is None else None
    except (KeyError, TypeError, ValueError) as exc:
        failure, clock = Failure("unreadable", message=str(exc)), None
    if clock is None:
        report.add("clock", Severity.BLOCKER, f"GET /v2/clock failed: {failure.detail if failure else '?'}")
        return
    state = f"open, closes {_ny(clock.next_close)}" if clock.is_open else f"closed, opens {_ny(clock.next_open)}"
    report.add("clock", Severity.OK, f"venue time {_ny(clock.timestamp)}: market {state}")
    skew = abs(datetime.now(UTC) - clock.timestamp)
    if not builtin and skew > MAX_CLOCK_SKEW:
        report.add(
            "clock",
            Severity.WARNING,
            f"this machine's clock differs from the venue's by {skew.total_seconds():.0f} s: bar times and "
            "quote ages are judged on the venue's clock, but check the machine's time",
        )
    today = clock.timestamp.astimezone(NEW_YORK).date()
    req = GetCalendarRequest(start=today, end=today + timedelta(days=CALENDAR_DAYS))
    days, failure = venue.ask(venue.trading.get_calendar, req)
    if failure is not None or not isinstance(days, list):
        why = failure.detail if failure is not None else "unreadable answer"
        report.add("calendar", Severity.WARNING, f"GET /v2/calendar failed: {why}")
        return
    if not days:
        report.add("calendar", Severity.WARNING, f"no trading day in the next {CALENDAR_DAYS} days")
        return
    first = days[0] if isinstance(days[0], dict) else {}
    report.add(
        "calendar",
        Severity.OK,
        f"{len(days)} trading day(s) in the next {CALENDAR_DAYS} days; the next is {first.get('date')} "
        f"({first.get('open')}-{first.get('close')} ET)",
    )
