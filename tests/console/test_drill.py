"""Drill-down: Enter on an intent (or an order, or a position) opens its history
from the journal, asked of the engine (QueryHistory): the signal and sizing, the
pre-trade verdict, and what happened since; Esc goes back. Snapshot of the screen
with the journal's clock pinned (its times are wall-clock times)."""

from __future__ import annotations

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
