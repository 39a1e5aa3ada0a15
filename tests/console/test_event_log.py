"""The event log on a real session: it re-wraps when the terminal is resized, folds
a bar's worth of identical denials into one line with a count, and says what a
dropped stream means instead of printing the exception."""

from __future__ import annotations

from datetime import UTC, datetime

from console.app import ExecDeskApp
from console.widgets.event_log import fold_repeats
from engine.commands import Halt
from engine.snapshot import EventRow
from tests.console.deskkit import Desk, intents_waiting, next_bar, until


def app_for(desk: Desk) -> ExecDeskApp:
    return ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)


def log_lines(app: ExecDeskApp) -> list[str]:
    return [line.text for line in app.main_screen.event_log.query_one("#log-lines").lines]


async def test_the_log_rewraps_when_the_terminal_grows(desk: Desk) -> None:
    app = app_for(desk)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the first snapshot")
        long = "a long line the console wrote while the terminal was narrow " * 3 + "END"
        app.main_screen.event_log.note(long.strip(), desk.handle.snapshot.venue_time)
        await pilot.pause()
        narrow_width = max(len(line.rstrip()) for line in log_lines(app))
        await pilot.resize_terminal(160, 48)
        await pilot.pause(0.3)
        log_width = app.main_screen.event_log.query_one("#log-lines").scrollable_content_region.width
        wide_width = max(len(line.rstrip()) for line in log_lines(app))
        assert log_width > narrow_width + 5, "the resize did not widen the log: nothing was tested"
        assert wide_width > narrow_width + 5, (
            f"not re-wrapped: the longest line is {wide_width} characters in a log {log_width} wide "
            f"(it was {narrow_width} at 80 columns)"
        )
        assert any("END" in line for line in log_lines(app))


async def test_a_bar_of_halted_denials_is_one_line_with_a_count(desk: Desk) -> None:
    intents_waiting(desk)
    desk.handle.execute_sync(Halt(cause="operator: test"))
    next_bar(desk)
    denied = [e for e in desk.handle.snapshot.events if "TRADING_HALTED" in e.text]
    assert len(denied) > 3, "the bar produced no HALTED denials: nothing to fold"
    app = app_for(desk)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app._shown_seq == desk.handle.snapshot.seq, what="the snapshot shown")
        text = "\n".join(log_lines(app))
        starts = [line for line in log_lines(app) if "TRADING_HALTED" in line]
        assert len(starts) == 1, f"{len(denied)} denials gave {len(starts)} lines naming TRADING_HALTED"
        assert f"×{len(denied)}" in text


async def test_a_dropped_trade_stream_is_said_in_words(desk: Desk) -> None:
    app = app_for(desk)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.snapshot.connectivity.trade_stream == "up", what="the trade stream up")
        desk.venue.set_faults(trade_stream_down=True)
        desk.venue.drop_trade_stream()
        words = lambda: " ".join(" ".join(log_lines(app)).split())  # noqa: E731
        await until(
            pilot,
            lambda: "trade stream dropped; reconnecting" in words(),
            timeout=10,
            what="the drop in the operator's words",
        )
        assert "Error" not in words(), words()
        assert "Error" not in str(app.main_screen.banner.render())
        desk.venue.set_faults(trade_stream_down=False)


def _row(seq: int, kind: str, symbol: str | None, text: str) -> EventRow:
    return EventRow(seq=seq, ts=datetime(2026, 3, 5, 15, 0, tzinfo=UTC), kind=kind, symbol=symbol, text=text)


def test_fills_of_several_symbols_are_each_a_line_of_their_own() -> None:
    # a flatten's fills came as "x2 sell 16 BA @ 154.18 (16/16) — BA, BAC": BAC's fill
    # shown with BA's quantity and price
    rows = [
        _row(1, "fill", "BA", "sell 16 BA @ 154.18 (16/16)"),
        _row(2, "fill", "BAC", "sell 1 BAC @ 46.75 (1/46)"),
        _row(3, "fill", "BAC", "sell 45 BAC @ 46.75 (46/46)"),
    ]
    assert [r.text for r in fold_repeats(rows)] == [r.text for r in rows]


def test_a_folded_line_shows_only_the_numbers_its_events_share() -> None:
    rows = [
        _row(1, "order", "BA", "APPROVED buy 16 BA by operator"),
        _row(2, "order", "BAC", "APPROVED buy 46 BAC by operator"),
        _row(3, "order", "C", "APPROVED buy 46 C by operator"),
    ]
    (line,) = fold_repeats(rows)
    assert line.text == "×3 APPROVED buy … by operator — BA, BAC, C"
    assert line.symbol is None
    same = [_row(1, "order", "C", "CANCELED sell 5 C: bar end"), _row(2, "order", "C", "CANCELED sell 5 C: bar end")]
    (line,) = fold_repeats(same)
    assert line.text == "×2 CANCELED sell 5 C: bar end — C"  # "C" is not taken out of "CANCELED"
    shared = [
        _row(1, "order", "BA", "APPROVED buy 10 BA by operator"),
        _row(2, "order", "GE", "APPROVED buy 10 GE by operator"),
    ]
    assert fold_repeats(shared)[0].text == "×2 APPROVED buy 10 by operator — BA, GE"
