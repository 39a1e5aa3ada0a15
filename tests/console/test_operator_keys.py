"""The operator's keys against a real engine on the built-in venue: approve puts an
order at the venue, reject does not, the kill switch leaves nothing open there from
any screen, overrides reach the engine and survive a restart."""

from __future__ import annotations

from decimal import Decimal

from console.app import ExecDeskApp
from console.screens.confirm import ConfirmScreen
from console.screens.main import MainScreen
from console.screens.override import OverrideScreen
from engine.model import TradingState
from tests.console.deskkit import Desk, console_settings, intents_waiting, quotes_away_from_limits, until

SIZE = (160, 48)


def log_words(screen) -> str:
    """The event log's text as one line (the log wraps long lines at its width)."""
    return " ".join(" ".join(line.text for line in screen.event_log.query_one("#log-lines").lines).split())


def app_for(desk: Desk) -> ExecDeskApp:
    return ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)


async def test_approve_puts_the_selected_intent_at_the_venue(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await until(
            pilot,
            lambda: screen.queue.selected_key is not None and not screen.queue.new_keys,
            what="an intent under the cursor, on screen long enough to approve",
        )
        intent_id = screen.queue.selected_key
        await pilot.press("a")
        await until(pilot, lambda: intent_id not in desk.handle.snapshot.intents, what="the intent to leave the queue")
        await app.workers.wait_for_complete()
        order = desk.venue_order(intent_id)
        assert order is not None, f"approved intent {intent_id} was not found at the venue"
        assert order.client_order_id == intent_id


async def test_reject_sends_nothing_to_the_venue(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(
            pilot,
            lambda: screen.queue.selected_key is not None and not screen.queue.new_keys,
            what="an intent under the cursor, on screen long enough to approve",
        )
        intent_id = screen.queue.selected_key
        await pilot.press("r")
        await until(pilot, lambda: intent_id not in desk.handle.snapshot.intents, what="the intent to leave the queue")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: intent_id not in screen.queue._source, what="the row to leave the table")
    assert desk.venue_order(intent_id) is None, f"rejected intent {intent_id} reached the venue"


async def _approve_all(pilot, app: ExecDeskApp, desk: Desk) -> None:
    """Approve every waiting intent through the confirm dialog."""
    n = len(desk.handle.snapshot.intents)
    queue = app.main_screen.queue
    await until(pilot, lambda: queue.row_count == n and not queue.new_keys, what="every intent on screen long enough")
    await pilot.press("A")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the approve-all confirmation")
    await pilot.press("y")
    await until(pilot, lambda: not desk.handle.snapshot.intents, what=f"{n} intents to leave the queue")
    await app.workers.wait_for_complete()


async def _orders_resting_at_the_venue(pilot, app: ExecDeskApp, desk: Desk) -> int:
    """Approve every waiting intent with quotes moved away, so orders rest at the venue."""
    quotes_away_from_limits(desk)
    await _approve_all(pilot, app, desk)
    await until(pilot, lambda: len(desk.venue_open_orders()) > 0, what="orders resting at the venue")
    await until(pilot, lambda: app.main_screen.orders.row_count > 0, what="working orders on screen")
    return len(desk.venue_open_orders())


async def test_kill_switch_from_the_main_screen_leaves_nothing_open_at_the_venue(desk: Desk) -> None:
    intents_waiting(desk, at_least=2)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        resting = await _orders_resting_at_the_venue(pilot, app, desk)
        await pilot.press("ctrl+k")
        # HALTED shows at once, before the engine has answered
        badge = app.screen.query_one("#state-badge")
        assert "HALTED" in str(badge.render())
        await app.workers.wait_for_complete()
        await until(
            pilot,
            lambda: desk.handle.snapshot.kill_switch.phase == "confirmed",
            what="the venue to confirm the cancels",
        )
        assert desk.handle.snapshot.trading_state is TradingState.HALTED
        assert desk.venue_open_orders() == []
        assert desk.handle.snapshot.kill_switch.cancels_confirmed >= resting
        await until(
            pilot,
            lambda: "venue confirmed" in str(app.screen.query_one("#banner").render()),
            what="'venue confirmed N cancels' in the banner",
        )
        await until(pilot, lambda: app.main_screen.orders.row_count == 0, what="no working order on screen")


async def test_kill_switch_works_inside_the_override_dialog_while_typing(desk: Desk) -> None:
    intents_waiting(desk, at_least=2)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await _orders_resting_at_the_venue(pilot, app, desk)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OverrideScreen), what="the override dialog")
        app.screen.query_one("#max-usd").focus()
        await pilot.press("5", "0")  # the operator is typing in an Input
        await pilot.press("ctrl+k")
        await app.workers.wait_for_complete()
        await until(
            pilot,
            lambda: desk.handle.snapshot.kill_switch.phase == "confirmed",
            what="the venue to confirm the cancels",
        )
        assert isinstance(app.screen, OverrideScreen), "the dialog stays open: the kill switch is not a key for it"
        assert desk.handle.snapshot.trading_state is TradingState.HALTED
        assert desk.venue_open_orders() == []
        main = app.screen_stack[0]
        assert "HALTED" in str(main.query_one("#state-badge").render())


async def test_approve_is_disabled_while_halted(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(
            pilot,
            lambda: screen.queue.selected_key is not None and not screen.queue.new_keys,
            what="an intent under the cursor, on screen long enough to approve",
        )
        assert screen.check_action("approve", ()) is True
        await pilot.press("ctrl+k")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: desk.handle.snapshot.trading_state is TradingState.HALTED, what="HALTED")
        # greyed out (None) while intents wait, left out (False) once the queue is empty
        assert not screen.check_action("approve", ())
        assert not screen.check_action("approve_all", ())
        if screen.queue.selected_key is not None:
            intent_id = screen.queue.selected_key
            await pilot.press("a")
            await app.workers.wait_for_complete()
            assert desk.venue_order(intent_id) is None


async def test_override_reaches_the_engine_and_survives_a_restart(tmp_path, pinned_session_id) -> None:
    journal = tmp_path / "journal.sqlite"
    first = Desk(journal)
    try:
        app = app_for(first)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, OverrideScreen), what="the override dialog")
            dialog = app.screen
            dialog.query_one("#symbol").value = "AAPL"
            dialog.query_one("#mode").value = "auto"
            dialog.query_one("#max-usd").value = "5000"
            dialog.query_one("#multiplier").value = "0.5"
            dialog.query_one("#side").value = "long_only"
            await pilot.press("ctrl+s")
            await app.workers.wait_for_complete()
            await until(pilot, lambda: "AAPL" in first.handle.snapshot.overrides, what="the override in the snapshot")
        row = first.handle.snapshot.overrides["AAPL"]
        assert (row.mode, row.max_position_usd, row.size_multiplier, row.side) == (
            "auto",
            Decimal("5000"),
            0.5,
            "long_only",
        )
    finally:
        first.stop()

    second = Desk(journal)
    try:
        row = second.handle.snapshot.overrides.get("AAPL")
        assert row is not None, "the override did not survive the restart"
        assert (row.mode, row.max_position_usd, row.size_multiplier, row.side) == (
            "auto",
            Decimal("5000"),
            0.5,
            "long_only",
        )
        app = app_for(second)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, OverrideScreen), what="the override dialog")
            app.screen.query_one("#symbol").value = "AAPL"
    finally:
        second.stop()


async def test_keymap_from_the_configuration_remaps_approve(tmp_path, pinned_session_id) -> None:
    desk = Desk(tmp_path / "journal.sqlite", console_settings(approve="y"))
    try:
        intents_waiting(desk)
        app = app_for(desk)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await until(
                pilot,
                lambda: screen.queue.selected_key is not None and not screen.queue.new_keys,
                what="an intent under the cursor, on screen long enough to approve",
            )
            intent_id = screen.queue.selected_key
            await pilot.press("a")  # no longer approve
            await pilot.pause(0.2)
            assert intent_id in desk.handle.snapshot.intents
            await pilot.press("y")
            await until(pilot, lambda: intent_id not in desk.handle.snapshot.intents, what="approve on y")
            await app.workers.wait_for_complete()
        assert desk.venue_order(intent_id) is not None
    finally:
        desk.stop()


async def test_quit_with_working_orders_asks_and_says_they_stay(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await _orders_resting_at_the_venue(pilot, app, desk)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the quit confirmation")
        assert "stay working at the venue" in app.screen.detail
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert app.is_running
    assert desk.venue_open_orders(), "quitting the console cancelled orders at the venue"


async def test_the_command_palette_offers_what_applies_now(desk: Desk) -> None:
    from console.keys import BY_ID

    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.main_screen
        await until(
            pilot,
            lambda: screen.queue.row_count > 0 and not screen.queue.new_keys,
            what="intents on screen long enough to approve",
        )

        def offered() -> set[str]:
            titles = {command.title for command in app.get_system_commands(app.screen)}
            return {key_id for key_id, key in BY_ID.items() if key.description in titles}

        active = offered()
        assert {"kill_switch", "approve", "reject", "approve_all", "reject_all", "override", "help", "quit"} <= active
        assert "resume" not in active and "flatten" not in active and "cancel_order" not in active
        await pilot.press("ctrl+k")
        await until(pilot, lambda: desk.handle.snapshot.trading_state is TradingState.HALTED, what="HALTED")
        await app.workers.wait_for_complete()
        await pilot.pause()
        halted = offered()
        assert "resume" in halted, "Resume is not offered while HALTED"
        assert "approve" not in halted and "approve_all" not in halted


async def test_keys_that_do_not_apply_say_why(desk: Desk) -> None:
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.main_screen
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the first snapshot")
        assert desk.handle.snapshot.trading_state is TradingState.ACTIVE and not desk.handle.snapshot.orders

        for key, words in (
            ("U", "already ACTIVE"),
            ("c", "no working orders"),
            ("a", "approval queue is empty"),
            ("A", "approval queue is empty"),
            ("F", "no position"),
        ):
            await pilot.press(key)
            await until(pilot, lambda w=words: w in log_words(screen), timeout=3, what=f"{key!r} to say {words!r}")


async def test_the_footer_shows_resume_and_flatten_when_halted(desk: Desk) -> None:
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the first snapshot")

        def footer_actions() -> set[str]:
            return {
                binding.action
                for (_node, binding, enabled, _tip) in app.active_bindings.values()
                if binding.show and enabled
            }

        assert "resume" not in footer_actions()
        await pilot.press("ctrl+k")
        await until(pilot, lambda: desk.handle.snapshot.trading_state is TradingState.HALTED, what="HALTED")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: "resume" in footer_actions(), timeout=3, what="Resume in the footer")


async def test_a_lost_trade_stream_shows_in_the_status_bar_and_the_log(desk: Desk) -> None:
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshot.connectivity.trade_stream == "up", what="the trade stream up")
        desk.venue.set_faults(trade_stream_down=True)
        desk.venue.drop_trade_stream()
        banner = app.main_screen.banner
        await until(pilot, lambda: "trade stream" in str(banner.render()), what="the banner to say the stream is down")
        assert banner.display
        log_text = "\n".join(line.text for line in app.main_screen.event_log.query_one("#log-lines").lines)
        assert "degraded" in log_text and "trade stream" in log_text
        desk.venue.set_faults(trade_stream_down=False)
        await until(pilot, lambda: not banner.display, timeout=30, what="the banner to go once the stream is back")


async def test_the_cursor_stays_on_its_intent_when_rows_above_it_go(desk: Desk) -> None:
    from engine.commands import RejectIntent

    intents_waiting(desk, at_least=3)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        queue = app.main_screen.queue
        await until(pilot, lambda: queue.row_count >= 3 and not queue.new_keys, what="three intents on screen")
        queue.move_cursor(row=2)
        await pilot.pause()
        chosen = queue.selected_key
        first = next(iter(desk.handle.snapshot.intents))
        assert first != chosen
        await desk.handle.execute(RejectIntent(first))  # e.g. from another terminal
        await until(pilot, lambda: first not in queue._source, what="the first row to go")
        assert queue.selected_key == chosen, "the cursor moved to another intent"
        await pilot.press("a")
        await until(pilot, lambda: chosen not in desk.handle.snapshot.intents, what="the chosen intent approved")
        await app.workers.wait_for_complete()
    assert desk.venue_order(chosen) is not None


def test_the_console_keys_are_the_bindings_the_configuration_validates() -> None:
    from console.keys import KEYS
    from engine.config import CONSOLE_BINDINGS

    assert {key.id: key.key for key in KEYS} == CONSOLE_BINDINGS


async def test_a_row_just_on_screen_is_not_approved(tmp_path, pinned_session_id) -> None:
    """The operator's report: `a` on an empty queue as a bar landed approved `buy 47 BAC`."""
    settings = console_settings()
    # long enough that a loaded machine still looks at the row while it is new
    settings.console.new_row_guard_ms = 10_000
    desk = Desk(tmp_path / "journal.sqlite", settings)
    try:
        intents_waiting(desk)
        app = app_for(desk)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.main_screen
            await until(pilot, lambda: screen.queue.selected_key is not None, what="an intent on screen")
            intent_id = screen.queue.selected_key
            assert screen.queue.is_new(intent_id)
            symbol_cell = screen.queue._cells[intent_id][0]
            assert "on yellow" in str(symbol_cell.style), "a new row is not highlighted"
            await pilot.press("a")
            await until(
                pilot,
                lambda: "look at it first" in log_words(screen),
                timeout=3,
                what="approve to say why nothing happened",
            )
            await pilot.press("A")
            await until(
                pilot,
                lambda: "just arrived" in log_words(screen),
                timeout=3,
                what="approve all to say why nothing happened",
            )
            assert not isinstance(app.screen, ConfirmScreen)
            await app.workers.wait_for_complete()
            assert intent_id in desk.handle.snapshot.intents and desk.venue_order(intent_id) is None
            await until(pilot, lambda: not screen.queue.is_new(intent_id), timeout=20, what="the guard to pass")
            await until(
                pilot,
                lambda: "on yellow" not in str(screen.queue._cells[intent_id][0].style),
                timeout=2,
                what="the highlight to go once the guard passed",
            )
            await pilot.press("a")
            await until(pilot, lambda: intent_id not in desk.handle.snapshot.intents, what="approve once seen")
            await app.workers.wait_for_complete()
    finally:
        desk.stop()


async def test_reject_all_asks_first_like_approve_all(desk: Desk) -> None:
    intents_waiting(desk)
    app = app_for(desk)
    async with app.run_test(size=SIZE) as pilot:
        queue = app.main_screen.queue
        await until(pilot, lambda: queue.row_count > 0 and not queue.new_keys, what="intents on screen")
        n = len(desk.handle.snapshot.intents)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the reject-all confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert len(desk.handle.snapshot.intents) == n, "reject all acted without a yes"
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the reject-all confirmation")
        await pilot.press("y")
        await until(pilot, lambda: not desk.handle.snapshot.intents, what="every intent rejected")
        await app.workers.wait_for_complete()
