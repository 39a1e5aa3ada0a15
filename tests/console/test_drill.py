"""Drill-down: Enter on an intent (or an order, or a position) opens its history
from the journal, asked of the engine (QueryHistory): the signal and sizing, the
pre-trade verdict, and what happened since; Esc goes back. Snapshot of the screen
with the journal's clock pinned (its times are wall-clock times)."""

from __future__ import annotations

import re

import pytest

import engine.journal
from console.screens.drill import DrillScreen
from tests.console.deskkit import Desk, screen_text, until
from tests.console.test_screens_snapshot import WIDE, app_for, desk_waiting, shown


@pytest.fixture
def pinned_journal_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.journal, "_utcnow", lambda: "2026-03-02T15:00:00.000000+00:00")


async def _drill(pilot) -> None:
    app = pilot.app
    await shown(pilot)
    await until(pilot, lambda: app.main_screen.queue.row_count > 0, what="intents on screen")
    await pilot.pause(0.2)
    app.main_screen.queue.focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DrillScreen), what="the history screen")
    await pilot.pause(0.2)


async def test_enter_on_an_intent_opens_its_history(desk: Desk, pinned_journal_clock: None) -> None:
    desk_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=WIDE) as pilot:
        await _drill(pilot)
        screen = app.screen
        assert isinstance(screen, DrillScreen)
        row = desk.handle.snapshot.intents[screen.key]
        kinds = [kind for _, kind, _ in screen.result.rows]
        assert kinds == ["intent", "checks", "verdict"], kinds
        text = screen_text(app)
        assert f"History of intent {row.intent_id}" in text and "passed the pre-trade checks" in text
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main_screen, what="back on the main screen")


def test_drill_down_snapshot(desk: Desk, pinned_journal_clock: None, snap_compare) -> None:
    desk_waiting(desk)
    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=_drill)


def desk_holding(desk: Desk) -> str:
    """One intent of the first bar approved and filled (one order alone, so its fill
    price is the same on every run), the bar's other intents rejected; the engine has
    settled. Returns the symbol held."""
    from engine.commands import ApproveIntent, RejectAll
    from tests.console.deskkit import wait_for
    from tests.console.test_screens_snapshot import settled

    desk_waiting(desk)
    first = min(desk.handle.snapshot.intents.values(), key=lambda row: row.intent_id)
    assert desk.handle.execute_sync(ApproveIntent(first.intent_id)).ok
    wait_for(lambda: first.symbol in desk.handle.snapshot.positions, what=f"a position in {first.symbol}")
    # the bar's other intents are rejected, so that nothing else trades
    assert desk.handle.execute_sync(RejectAll()).ok
    wait_for(lambda: not desk.handle.snapshot.intents, timeout=15, what="the bar's other intents rejected")
    # the stop timer takes the newest bar's close as a price for what is held; that
    # close (the end of the bar) is newer than the frozen venue's last quote, so from
    # then on it is the mark: wait for it, so the picture does not depend on the timer
    engine = desk.session.engine
    assert engine is not None
    wait_for(
        lambda: engine.portfolio.books[first.symbol].ref_source == "bar close",
        what=f"the stop timer's bar-close price of {first.symbol}",
    )
    # (a frozen venue's silent data stream is expected: every symbol stays streamed,
    # whatever the time this took, so the status line does not depend on it)
    assert not desk.handle.snapshot.market_data.polled
    settled(desk)
    return first.symbol


async def _drill_position(pilot) -> None:
    app = pilot.app
    await shown(pilot)
    positions = app.main_screen.positions
    await until(pilot, lambda: positions.row_count > 0, what="a position on screen")
    positions.focus()
    positions.move_cursor(row=0, animate=False)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DrillScreen), what="the position's history")
    await pilot.pause(0.2)


async def test_enter_on_a_position_shows_its_fills_and_a_price_chart(desk: Desk, pinned_journal_clock: None) -> None:
    from console.widgets.price_chart import PriceChartView

    symbol = desk_holding(desk)
    held = desk.handle.snapshot.positions[symbol]
    app = app_for(desk)
    for size in (WIDE, (80, 24)):
        async with app.run_test(size=size) as pilot:
            await _drill_position(pilot)
            screen = app.screen
            assert isinstance(screen, DrillScreen) and screen.key == symbol
            chart = screen.result.chart
            assert chart is not None and chart.symbol == symbol
            # the engine's prices: the closes of the minute bars it holds, in time order
            assert len(chart.prices) >= 2 and [ts for ts, _ in chart.prices] == sorted(ts for ts, _ in chart.prices)
            assert [kind for _, kind, _ in chart.marks] == ["entry"], chart.marks
            assert chart.stop == held.stop_price and chart.stop is not None
            view = screen.query_one(PriceChartView)
            assert view.size.height == max(6, min(16, size[1] // 3)) and view.size.width > 40
            text = screen_text(app)
            assert "▲" in text and f"stop {chart.stop:.2f}" in text, "the entry marker and the stop level on screen"
            assert "fill" in text, "the history rows are still shown under the chart"
            fill_at = re.findall(rf"{symbol} @ (\S+)", text)
            assert fill_at and all(re.fullmatch(r"[\d,]+\.\d\d", p) for p in fill_at), fill_at  # as on every screen
            app = app_for(desk)


def test_position_drill_down_snapshot(desk: Desk, pinned_journal_clock: None, snap_compare) -> None:
    desk_holding(desk)
    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=_drill_position)


def test_position_drill_down_snapshot_80x24(desk: Desk, pinned_journal_clock: None, snap_compare) -> None:
    desk_holding(desk)
    assert snap_compare(app_for(desk), terminal_size=(80, 24), run_before=_drill_position)
