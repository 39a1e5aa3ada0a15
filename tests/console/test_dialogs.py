"""Dialogs against a real engine on the built-in venue: keys typed faster than the
app handles them land where they were typed, an empty override is refused, and a
dialog on top does not keep redrawing the main screen behind it."""

from __future__ import annotations

from decimal import Decimal

from console.app import ExecDeskApp
from console.screens.help import HelpScreen
from console.screens.override import OverrideScreen
from tests.console.deskkit import Desk, intents_waiting, until
from tests.console.typing_fast import type_fast

SIZE = (160, 48)


def app_for(desk: Desk) -> ExecDeskApp:
    return ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)


async def _open_override(pilot, app: ExecDeskApp) -> OverrideScreen:
    await until(
        pilot, lambda: app.main_screen is not None and app.main_screen.queue.row_count > 0, what="an intent on screen"
    )
    await pilot.press("o")
    await until(pilot, lambda: isinstance(app.screen, OverrideScreen), what="the override dialog")
    return app.screen


async def test_keys_typed_fast_land_in_the_field_they_were_typed_in(desk: Desk) -> None:
    """The operator's report: Tab ^U 1 2 3 Tab Tab ^U 0 . 7 at 60 ms gave USD '1230.'
    and multiplier '7'. Here every key reaches the app before it handled the first."""
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await _open_override(pilot, app)
        assert app.focused is dialog.query_one("#mode"), "the first field (mode) has the focus"
        await type_fast(pilot, "tab", "ctrl+u", "1", "2", "3", "tab", "tab", "ctrl+u", "0", ".", "7")
        values = {name: dialog.query_one(f"#{name}").value for name in ("max-usd", "max-pct", "multiplier")}
        assert values == {"max-usd": "123", "max-pct": "", "multiplier": "0.7"}, values
        # editing keys apply between the characters around them, in order
        await type_fast(pilot, "shift+tab", "shift+tab", "9", "9", "ctrl+u", "4", "5", "backspace", "0")
        assert dialog.query_one("#max-usd").value == "40"
        await type_fast(pilot, "ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, OverrideScreen), what="the dialog to close")
        await app.workers.wait_for_complete()
    symbol = dialog.symbol
    row = desk.handle.snapshot.overrides[symbol]
    assert (row.max_position_usd, row.size_multiplier) == (Decimal("40"), 0.7)


async def test_an_empty_override_is_refused_in_the_dialog(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        dialog = await _open_override(pilot, app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, OverrideScreen), "an override with no field set was applied"
        assert "nothing to override" in str(dialog.query_one("#problem").render())
        await pilot.press("escape")
        await app.workers.wait_for_complete()
    assert desk.handle.snapshot.overrides == {}, "an empty override reached the engine"


async def test_a_dialog_on_top_does_not_redraw_the_main_screen_every_snapshot(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        main = app.main_screen
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the snapshot shown")
        applied: list[int] = []
        original = main.apply

        def counting(snapshot, **kw):
            applied.append(snapshot.seq)
            return original(snapshot, **kw)

        main.apply = counting  # type: ignore[method-assign]
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        applied.clear()
        seen = {desk.handle.snapshot.seq}
        for _ in range(2):  # new bars: new intents and events, nothing the operator must see at once
            before = desk.handle.snapshot.seq
            desk.venue.advance(desk.settings.session.bar_interval)
            await until(pilot, lambda b=before: desk.handle.snapshot.seq > b, what="a new snapshot")
            await pilot.pause(0.3)
            seen.add(desk.handle.snapshot.seq)
        assert len(seen) >= 3, "the engine published no new snapshot: nothing was tested"
        assert len(applied) <= 1, f"the covered main screen was redrawn {len(applied)} times in 0.6 s"
        # what must be seen at once still is: the kill switch from the help screen
        applied.clear()
        await pilot.press("ctrl+k")
        await until(pilot, lambda: bool(applied), timeout=5, what="the HALTED state behind the help screen")
        assert "HALTED" in str(main.query_one("#state-badge").render())
        await pilot.press("escape")
        await until(
            pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the latest snapshot once uncovered"
        )
