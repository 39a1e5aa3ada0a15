"""The console tests' desk: a real Session (the Engine on the built-in venue, frozen
venue clock, fixed seed, its own journal) and helpers to drive and observe it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from engine.config import Credentials, Settings
from tests.support import shipped_settings, wait_for, wait_for_async

#: Monday 2 March 2026, 10:00 New York: the regular session is open
START_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SEED = 7
SESSION_ID = "20260302-console"
CREDENTIALS = Credentials(key_id="CONSOLETESTKEY01", secret_key="console-test-secret-0001")


def console_settings(**keymap: str) -> Settings:
    # every symbol on the stream (the unlimited plan, SIP): the screens render the same
    # prices whatever the moment of a REST poll (the free plan polls 23 of the 53)
    return shipped_settings(console={"keymap": dict(keymap)}, broker={"feed": "sip"}, sim={"plan": "unlimited"})


class Desk:
    """A started Session plus what the tests need to look at the venue directly."""

    def __init__(self, journal_path: Path, settings: Settings | None = None) -> None:
        from engine.session import Session

        self.settings = settings or console_settings()
        self.journal_path = journal_path
        self.session = Session.from_settings(
            self.settings,
            journal_path=journal_path,
            sim_overrides={"frozen_clock": True, "seed": SEED, "start_at": START_AT},
            auto_approve=False,
            credentials=CREDENTIALS,
        )
        self.handle = self.session.start()

    @property
    def venue(self):
        return self.session.venue

    def trading_client(self):
        """alpaca-py against the venue: what is at the venue, as a broker sees it."""
        from alpaca.trading.client import TradingClient

        return TradingClient(
            CREDENTIALS.key_id, CREDENTIALS.secret_key, paper=True, url_override=self.venue.trading_url
        )

    def venue_open_orders(self) -> list:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        return self.trading_client().get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))

    def venue_order(self, client_order_id: str):
        """The venue's order with this client_order_id, or None if it never got there."""
        from alpaca.common.exceptions import APIError

        try:
            return self.trading_client().get_order_by_client_id(client_order_id)
        except APIError:
            return None

    def stop(self) -> None:
        self.session.stop()


async def until(pilot, predicate: Callable[[], bool], *, timeout: float = 15.0, what: str = "") -> None:
    """Let the app run until predicate() holds; fail saying what was awaited."""
    await wait_for_async(predicate, timeout=timeout, what=what, every=0.05, pause=pilot.pause)
    await pilot.pause()


def next_bar(desk: Desk, *, timeout: float = 10.0) -> None:
    """Move the venue clock one bar on (the demo model signals on each bar) and
    wait until the engine has processed it."""
    before = desk.handle.snapshot.bars_processed
    desk.venue.advance(desk.settings.session.bar_interval)
    wait_for(
        lambda: desk.handle.snapshot.bars_processed > before, timeout=timeout, what="the engine to process the next bar"
    )


def intents_waiting(desk: Desk, *, at_least: int = 1, bars: int = 5) -> None:
    """Advance bar by bar until the approval queue holds intents. After each bar the
    snapshot is given a moment to show that bar's intents: moving the clock on too
    early (a loaded machine publishes late) would expire them at the next bar."""
    for _ in range(bars):
        next_bar(desk)
        try:
            wait_for(lambda: len(desk.handle.snapshot.intents) >= at_least, timeout=3.0, what="intents")
            return
        except AssertionError:
            continue
    assert len(desk.handle.snapshot.intents) >= at_least, (
        f"expected {at_least} intents waiting after {bars} bars, found {len(desk.handle.snapshot.intents)}"
    )


def quotes_away_from_limits(desk: Desk, pct: str = "0.01") -> None:
    """Move each waiting intent's quote 1% away from its limit (buys: ask above it,
    sells: bid below it), so that once approved the orders rest at the venue instead
    of filling at once: the kill switch then has something to cancel."""
    from decimal import Decimal

    away = Decimal(pct)
    for intent in desk.handle.snapshot.intents.values():
        if intent.limit_price is None:
            continue
        limit = intent.limit_price
        if intent.side == "buy":
            bid, ask = limit * (1 + away), limit * (1 + away) + Decimal("0.02")
        else:
            bid, ask = limit * (1 - away) - Decimal("0.02"), limit * (1 - away)
        desk.venue.set_quote(intent.symbol, bid.quantize(Decimal("0.01")), ask.quantize(Decimal("0.01")))


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (the screen and the ones behind it)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
