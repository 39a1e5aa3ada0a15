"""Snapshot tests of the console's screens on a real session (built-in venue, frozen
venue clock, fixed seed, pinned session id): the main screen at 160x48 and 80x24,
the approval flow, the HALTED state, the override dialog and the help screen.

Deterministic by construction: no wall clock in view (ages and time left come
from the frozen venue clock), no blinking cursor, the engine settled and every
worker finished before the picture is taken, an exact terminal size. The scenes
avoid fills: the built-in venue's fill prices are not yet the same from run to run
(they depend on the order in which concurrent requests arrive).
Update after an intended change: pytest tests/console --snapshot-update."""

from __future__ import annotations

from console.app import ExecDeskApp
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.screens.override import OverrideScreen
from engine.commands import ApproveAll
from engine.model import TradingState
from tests.console.deskkit import Desk, intents_waiting, quotes_away_from_limits, until, wait_for

WIDE = (160, 48)
NARROW = (80, 24)


def settled(desk: Desk) -> None:
    """Wait until the engine's snapshot stops changing (the clock is frozen, so it does)."""
    import time

    last, quiet_since = desk.handle.snapshot.seq, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() - quiet_since < 0.5:
        assert time.monotonic() < deadline, "the engine's snapshot kept changing"
        time.sleep(0.05)
        seq = desk.handle.snapshot.seq
        if seq != last:
            last, quiet_since = seq, time.monotonic()


def desk_waiting(desk: Desk) -> None:
    """One bar in: the approval queue holds the bar's intents; the engine has settled."""
    intents_waiting(desk)
    settled(desk)


def desk_with_resting_orders(desk: Desk) -> None:
    """The bar's intents approved with the quotes moved away from their limits, so
    the orders rest at the venue (nothing fills); the engine has settled."""
    intents_waiting(desk)
    quotes_away_from_limits(desk)
    desk.handle.execute_sync(ApproveAll())
    wait_for(lambda: not desk.handle.snapshot.intents, what="the bar approved")
    wait_for(lambda: len(desk.venue_open_orders()) > 0, what="orders resting at the venue")
    settled(desk)


def app_for(desk: Desk) -> ExecDeskApp:
    return ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)


async def shown(pilot, log_filter: str = "!conn") -> None:
    """The app shows the engine's latest snapshot and no command is in flight.
    The event log hides what arrives in a different order from run to run:
    connection events (the trade stream and market data connect concurrently)."""
    app: ExecDeskApp = pilot.app
    await app.workers.wait_for_complete()
    await until(pilot, lambda: app._shown_seq == app.handle.snapshot.seq, what="the latest snapshot shown")
    queue = app.main_screen.queue
    await until(pilot, lambda: not queue.new_keys and not queue._fresh, what="no row highlighted as new")
    app.main_screen.event_log.set_filter(log_filter)
    await pilot.pause()


def test_main_screen_wide(desk: Desk, snap_compare) -> None:
    desk_waiting(desk)
    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=shown)


def test_main_screen_80x24(desk: Desk, snap_compare) -> None:
    desk_waiting(desk)
    assert snap_compare(app_for(desk), terminal_size=NARROW, run_before=shown)


def test_approval_flow_asks_before_approving_all(desk: Desk, snap_compare) -> None:
    desk_waiting(desk)

    async def ask(pilot) -> None:
        await shown(pilot)
        await pilot.press("A")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), what="the confirmation")

    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=ask)


def test_halted_after_the_kill_switch(desk: Desk, snap_compare) -> None:
    desk_with_resting_orders(desk)

    async def kill(pilot) -> None:
        await shown(pilot)
        await pilot.press("ctrl+k")
        await pilot.app.workers.wait_for_complete()
        await until(
            pilot,
            lambda: (
                desk.handle.snapshot.trading_state is TradingState.HALTED
                and desk.handle.snapshot.kill_switch.phase == "confirmed"
            ),
            what="the venue to confirm the cancels",
        )
        settled(desk)
        # cancel confirmations stream back in any order, and the console's own
        # notes land between the engine's events wherever their timing puts them
        await shown(pilot, log_filter="!conn !canceled !desk")

    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=kill)


def test_override_dialog(desk: Desk, snap_compare) -> None:
    desk_waiting(desk)

    async def open_dialog(pilot) -> None:
        await shown(pilot)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(pilot.app.screen, OverrideScreen), what="the override dialog")

    assert snap_compare(app_for(desk), terminal_size=WIDE, run_before=open_dialog)


def test_help_screen(desk: Desk, snap_compare) -> None:
    async def open_help(pilot) -> None:
        await shown(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")

    assert snap_compare(app_for(desk), terminal_size=NARROW, run_before=open_help)
