"""The HALTED banner names the real cause, and a HALT, a trip or a lost venue link
rings the bell and shows a notification once."""

from __future__ import annotations

from console.app import ExecDeskApp
from console.dev import InMemoryHandle, demo_snapshot
from engine.config import Settings
from engine.model import TradingState
from engine.snapshot import KillSwitchStatus
from tests.console.deskkit import Desk, until

SIZE = (160, 48)


def _counting_bell(app: ExecDeskApp) -> list[int]:
    rung: list[int] = []
    original = app.bell

    def bell() -> None:
        rung.append(1)
        original()

    app.bell = bell  # type: ignore[method-assign]
    return rung


def _notes(app: ExecDeskApp, words: str) -> int:
    return sum(1 for note in app._notifications if words in note.message)


async def test_the_banner_names_an_automatic_trip_not_the_kill_switch() -> None:
    """A daily-loss trip halts through the kill switch machinery; the banner used to
    say 'kill switch, venue confirmed 0 cancels'. (A hand-built snapshot: the trip
    itself is the engine's, tested there.)"""
    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        rung = _counting_bell(app)
        handle.publish(
            trading_state=TradingState.HALTED,
            state_cause="automatic: daily_loss: day P&L -2,150.00 past the limit -2,000.00",
            kill_switch=KillSwitchStatus(phase="confirmed", cancels_requested=0, cancels_confirmed=0),
        )
        banner = app.main_screen.banner
        await until(pilot, lambda: "HALTED" in str(banner.render()), what="the HALTED banner")
        text = str(banner.render())
        assert text.startswith("HALTED: daily-loss trip: day P&L -2,150.00"), text
        assert "venue confirmed 0 cancels" in text
        assert len(rung) == 1 and _notes(app, "daily-loss trip") == 1
        handle.publish(day_pl=handle.snapshot.day_pl - 1)  # the next snapshot, still HALTED
        await pilot.pause(0.3)
        assert len(rung) == 1, "the bell rang again for the same HALT"


async def test_the_kill_switch_and_a_lost_trade_stream_ring_once_each(desk: Desk) -> None:
    app = ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.snapshot.connectivity.trade_stream == "up", what="the trade stream up")
        rung = _counting_bell(app)
        await pilot.press("ctrl+k")
        await app.workers.wait_for_complete()
        await until(pilot, lambda: desk.handle.snapshot.kill_switch.phase == "confirmed", what="the cancels confirmed")
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the snapshot shown")
        assert len(rung) == 1, f"the bell rang {len(rung)} times for one HALT"
        assert _notes(app, "HALTED") == 1
        desk.venue.set_faults(trade_stream_down=True)
        desk.venue.drop_trade_stream()
        await until(pilot, lambda: len(rung) == 2, timeout=10, what="the bell for the lost trade stream")
        assert _notes(app, "trade stream") == 1
        await pilot.pause(0.5)
        assert len(rung) == 2
        desk.venue.set_faults(trade_stream_down=False)


async def test_every_automatic_trip_is_named_by_its_own_cause() -> None:
    """The engine's real trips (daily loss, venue outage, error rate), as the engine
    words them into the state cause, read as that trip on the banner and in the
    Resume question, never as the kill switch."""
    from decimal import Decimal

    from console.screens.confirm import ConfirmScreen
    from console.widgets.status_bar import state_reason
    from engine.core.halt import trip_state_cause
    from engine.risk import TradingStateRules
    from tests.support import shipped_settings

    rules = TradingStateRules(shipped_settings(risk_management={"daily_loss_confirmations": 1, "error_window": 2}))
    trips = {
        "daily-loss trip": rules.evaluate_daily_loss(Decimal(90_000), Decimal(100_000), TradingState.ACTIVE),
        "venue-outage trip": (
            rules.venue_status(False, 0.0, TradingState.ACTIVE) or rules.venue_status(False, 1e6, TradingState.ACTIVE)
        ),
        "error-rate trip": (
            rules.record_request(False, TradingState.ACTIVE) or rules.record_request(False, TradingState.ACTIVE)
        ),
    }
    for words, trip in trips.items():
        assert trip is not None, f"no {words} from the rules"
        handle = InMemoryHandle(demo_snapshot())
        handle.publish(trading_state=trip.state, state_cause=trip_state_cause(trip))
        reason = state_reason(handle.snapshot)
        assert reason.startswith(f"{words}: {trip.detail}"), reason
        assert "kill switch" not in reason
        app = ExecDeskApp(handle, Settings(), clock_in_view=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda app=app, words=words: words in str(app.main_screen.banner.render()), what=words)
            await pilot.press("U")
            await until(pilot, lambda app=app: isinstance(app.screen, ConfirmScreen), what="the Resume question")
            question = app.screen
            assert isinstance(question, ConfirmScreen)
            assert words in str(question.question), question.question
