"""80x24 is a complete screen: with a four-digit day P&L and ten intents waiting the
status bar keeps both lines, the queue shows all ten, the footer keeps the kill
switch, and the help screen shows every description and binding id.

The scene is a hand-built snapshot (console.dev): a four-digit P&L needs fills and
price moves, which the built-in venue does not make the same from run to run."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType

from console.app import ExecDeskApp
from console.dev import T0, InMemoryHandle, demo_snapshot
from console.keys import KEYS
from engine.config import Settings
from engine.snapshot import IntentRow
from tests.console.deskkit import screen_text, until

NARROW = (80, 24)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "UNH"]


def busy_snapshot():
    intents = {
        f"s1-b7-{sym}-{i}": IntentRow(
            f"s1-b7-{sym}-{i}",
            sym,
            "buy" if i % 2 else "sell",
            Decimal(10 + i),
            Decimal("190.44"),
            Decimal("1904.40"),
            0.5,
            "ok",
            "",
            T0 + timedelta(seconds=48),
            "signal",
        )
        for i, sym in enumerate(SYMBOLS)
    }
    return dataclasses.replace(
        demo_snapshot(), intents=MappingProxyType(intents), day_pl=Decimal("-1234.56"), equity=Decimal("98765.44")
    )


def busy_app() -> ExecDeskApp:
    settings = Settings()
    settings.console.new_row_guard_ms = 0  # no "new" highlight in a picture
    return ExecDeskApp(InMemoryHandle(busy_snapshot()), settings, clock_in_view=False)


async def _shown(pilot) -> None:
    app: ExecDeskApp = pilot.app
    await until(
        pilot,
        lambda: app.main_screen is not None and app.main_screen.queue.row_count == len(SYMBOLS),
        what="ten intents on screen",
    )
    await pilot.pause(0.2)


async def test_every_fact_is_on_the_80x24_main_screen() -> None:
    app = busy_app()
    async with app.run_test(size=NARROW) as pilot:
        await _shown(pilot)
        text = screen_text(app)
        lines = text.splitlines()
        assert "-1,234.56" in lines[0] and "PA-DEV-0001" in lines[0] and "ACTIVE" in lines[0], lines[0]
        assert "REST" in lines[1] and "bar" in lines[1], f"the connectivity/clock line is gone: {lines[1]!r}"
        missing = [sym for sym in SYMBOLS if f" {sym} " not in text]
        assert not missing, f"intents not on screen at 80x24: {missing}"
        assert "Working orders · 3 open" in text and "Positions · 2 held" in text
        assert "KILL" in lines[-1], f"the kill switch is not in the footer: {lines[-1]!r}"


async def test_the_help_screen_at_80x24_shows_every_description_and_binding_id() -> None:
    app = busy_app()
    async with app.run_test(size=NARROW) as pilot:
        await _shown(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        text = screen_text(app)
        words = set(text.replace("█", " ").split())
        assert "…" not in text, "something on the help screen is cut"
        for key in KEYS:
            assert key.id in words, f"binding id {key.id} not shown"
            cut = [word for word in key.description.split() if word not in words]
            assert not cut, f"description of {key.id} misses {cut}: {key.description}"


def test_main_screen_80x24_four_digit_pl_ten_intents(snap_compare) -> None:
    assert snap_compare(busy_app(), terminal_size=NARROW, run_before=_shown)


async def test_the_status_line_says_how_many_symbols_are_polled_on_a_limited_plan() -> None:
    """Issue 12: which symbols stream and which are polled is visible in the console
    (the lists are in status --json); the connectivity line still fits 80x24."""
    from engine.snapshot import MarketDataStatus

    app = busy_app()
    async with app.run_test(size=NARROW) as pilot:
        await _shown(pilot)
        assert "polled" not in screen_text(app).splitlines()[1], "nothing polled: nothing said"
        streamed = tuple(f"S{i}" for i in range(30))
        polled = tuple(f"P{i}" for i in range(23))
        app.handle.publish(market_data=MarketDataStatus(streamed=streamed, polled=polled, stream_limit=30))
        await until(pilot, lambda: "polled" in screen_text(app).splitlines()[1], what="the polled count shown")
        line = screen_text(app).splitlines()[1]
        assert "(30 streamed, 23 polled)" in line and "bar" in line, line
