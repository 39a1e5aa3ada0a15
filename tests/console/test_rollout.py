"""The rollout view on a real session: every universe symbol with its mode and
where it comes from; a filtered bulk change reaches the engine as one journaled
override per symbol, after a yes, and the view shows the new source."""

from __future__ import annotations

from console import format as fmt
from console.app import ExecDeskApp
from console.screens.confirm import ConfirmScreen
from console.screens.rollout import RolloutScreen
from tests.console.deskkit import Desk, screen_text, until

SIZE = (160, 48)


def app_for(desk: Desk) -> ExecDeskApp:
    return ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)


async def _open(pilot, app: ExecDeskApp) -> RolloutScreen:
    await until(pilot, lambda: app._shown_seq == app.handle.snapshot.seq, what="the first snapshot")
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, RolloutScreen), what="the rollout view")
    await pilot.pause()
    return app.screen


async def test_a_filtered_bulk_change_sets_every_shown_symbol_after_a_yes(desk: Desk) -> None:
    universe = desk.settings.load_universe()
    energy = {a.symbol for a in universe.assets if a.sector == "Energy"}
    assert len(energy) >= 2
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        view = await _open(pilot, app)
        assert view.query_one("#rollout-table").row_count == len(universe.assets)
        await pilot.press("slash", *"energy", "enter")
        await pilot.pause()
        assert {r[0] for r in view.shown()} == energy
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the bulk confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert not desk.handle.snapshot.overrides, "a bulk change was sent without a yes"
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the bulk confirmation")
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: set(desk.handle.snapshot.overrides) == energy, what="one override per symbol")
        assert {row.mode for row in desk.handle.snapshot.overrides.values()} == {"auto"}
        await until(
            pilot,
            lambda: all(r[7] == "run-time" and r[2] == "auto" for r in view.shown()),
            timeout=3,
            what="the view to show the run-time overrides",
        )
        venue_time = desk.handle.snapshot.venue_time
        assert venue_time is not None
        assert {r[8] for r in view.shown()} == {fmt.venue_clock(venue_time)}, "each says when it was changed"


def test_rollout_view(desk: Desk, snap_compare) -> None:
    async def open_view(pilot) -> None:
        await _open(pilot, pilot.app)
        assert "Rollout · 53 of 53 symbols" in screen_text(pilot.app)

    assert snap_compare(app_for(desk), terminal_size=SIZE, run_before=open_view)
