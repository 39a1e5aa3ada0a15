"""The fills screen (`f`): this session's fills with the P&L each realized, and
realized against unrealized P&L — also in the status line."""

from __future__ import annotations

from console.screens.fills import FillsScreen
from engine.commands import ApproveAll
from tests.console.deskkit import Desk, intents_waiting, screen_text, until, wait_for
from tests.console.test_screens_snapshot import WIDE, app_for


async def test_fills_screen_and_pl_split(desk: Desk) -> None:
    intents_waiting(desk)
    desk.handle.execute_sync(ApproveAll())
    wait_for(lambda: len(desk.handle.snapshot.fills) >= 3, what="fills in the snapshot")
    app = app_for(desk)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the snapshot shown")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert " real " in text and " unreal " in text, "the status line splits the session's P&L"
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FillsScreen), what="the fills screen")
        await pilot.pause(0.2)
        snap = desk.handle.snapshot
        text = screen_text(app)
        assert f"Fills · {len(snap.fills)} this session" in text
        for f in snap.fills[-3:]:
            assert f.client_order_id in text, f"fill of {f.client_order_id} not shown"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main_screen, what="back on the main screen")
