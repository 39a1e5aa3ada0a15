"""The trading day on the built-in venue at speed, over Thanksgiving week 2026:
Wednesday 25 November (a full day), Thursday 26 (a holiday), Friday 27 (an early
close at 13:00). Given a run started late on the Wednesday, then it trades, runs
the close routine before 16:00, writes reports/2026-11-25.md, skips the holiday,
starts the Friday session before the open (positions held overnight), trades, closes
before the early close and writes reports/2026-11-27.md. The test moves the venue
clock across the night and the quiet hours (the drill API), as an operator drill."""

from __future__ import annotations

import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from engine.day import TradingDay
from engine.journal import Journal
from engine.timezones import NEW_YORK
from tests.pipeline.pipekit import CREDENTIALS
from tests.support import shipped_settings, wait_for

# 15 minutes of venue time (15 s at speed 60) before the close routine: room to be seen
# trading and to fill on a loaded machine
WEDNESDAY_1540 = datetime(2026, 11, 25, 20, 40, tzinfo=UTC)  # 15:40 New York
FRIDAY_0918 = "2026-11-27T14:18:00Z"  # 09:18 New York
FRIDAY_1253 = "2026-11-27T17:53:00Z"  # 12:53 New York
TIMEOUT = 120.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("EXECDESK_", "APCA_")):
            monkeypatch.delenv(name)


def test_two_trading_days_around_a_holiday_and_an_early_close(tmp_path: Path):
    settings = shipped_settings(
        session={"reports_dir": str(tmp_path / "reports"), "close_minutes_before": 5, "preflight_minutes": 10},
        # the venue clock runs 60x (a bar every wall second) and the test venue has no
        # rate limit: Alpaca's per-minute budget would otherwise hold the submits back
        broker={"rate_limit_per_minute": 100000},
    )
    lines: list[str] = []
    day = TradingDay(
        settings,
        journal_path=tmp_path / "journal.sqlite",
        auto_approve=True,
        days=2,
        credentials=CREDENTIALS,
        sim_overrides={
            "start_at": WEDNESDAY_1540,
            "speed": 60,
            "seed": 7,
            "partial_fill_prob": 0.0,
            "rate_limit_per_minute": None,
        },
        log_sink=lambda row: lines.append(row.text),
    )
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(day.run()), daemon=True)
    runner.start()
    try:
        # Wednesday: the session is started at once (its preflight is long past) and trades
        wait_for(lambda: day.phase == "trading", what="the Wednesday session to trade", timeout=TIMEOUT)
        assert day.next is not None and day.next.date == date(2026, 11, 25)
        wait_for(
            lambda: day.phase == "waiting" and len(day.reports) == 1,
            what="the Wednesday close routine and report",
            timeout=TIMEOUT,
        )
        wednesday = day.reports[0]
        assert wednesday.name == "2026-11-25.md" and "2026-11-25" in wednesday.read_text()
        # the holiday is skipped; Friday closes early
        friday = day.next
        assert friday is not None and friday.date == date(2026, 11, 27)
        assert friday.close.astimezone(NEW_YORK).strftime("%H:%M") == "13:00"
        journal = Journal(tmp_path / "journal.sqlite", readonly=True)
        first = journal.sessions()
        assert len(first) == 1 and first[0].how_ended == "day closed 2026-11-25"
        held = _positions_at_venue(day)
        assert held, "the Wednesday session should have traded into positions"

        # the night passes: the Friday session starts before the open, positions held
        day.venue.set_clock(to=FRIDAY_0918)
        wait_for(lambda: day.phase == "trading", what="the Friday session to start", timeout=TIMEOUT)
        assert day.session is not None
        friday_session = day.session.snapshot.session_id
        assert friday_session and friday_session != first[0].session_id
        assert set(day.session.snapshot.positions) == held, "positions are held overnight (at_close = hold)"
        wait_for(
            lambda: day.session is None or day.session.snapshot.market_open,
            what="the Friday open",
            timeout=TIMEOUT,
        )
        # the quiet hours pass: the close routine runs before the early close
        day.venue.set_clock(to=FRIDAY_1253)
        runner.join(TIMEOUT)
        assert not runner.is_alive(), f"the trading day did not end; phase {day.phase}"
    finally:
        day.stop("test over")
        runner.join(30)
    assert outcome == [0]
    assert [p.name for p in day.reports] == ["2026-11-25.md", "2026-11-27.md"]
    assert all(p.exists() for p in day.reports)
    sessions = Journal(tmp_path / "journal.sqlite", readonly=True).sessions()
    assert [s.how_ended for s in sessions] == ["day closed 2026-11-25", "day closed 2026-11-27"]
    assert any("intent" in line for line in lines)
    friday_report = day.reports[1].read_text()
    assert "2026-11-27" in friday_report and friday_session in friday_report


def _positions_at_venue(day: TradingDay) -> set[str]:
    from alpaca.trading.client import TradingClient

    client = TradingClient(CREDENTIALS.key_id, CREDENTIALS.secret_key, paper=True, url_override=day.venue.trading_url)
    return {p.symbol for p in client.get_all_positions()}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--day", "--bars", "3"], "--bars and the trading day (--day) do not go together"),
        (["run", "--days", "2"], "--days needs --day"),
    ],
)
def test_run_refuses_options_the_trading_day_does_not_take(argv, message, capsys):
    from engine.cli import main
    from tests.support import SHIPPED_CONFIG

    assert main(["--config", str(SHIPPED_CONFIG), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_venue_that_does_not_answer_is_asked_again_not_the_end_of_the_run(monkeypatch):
    import io

    import engine.day
    from engine.backoff import Backoff

    monkeypatch.setattr(engine.day, "CALENDAR_RETRY", Backoff(initial=0.01, cap=0.01))
    out = io.StringIO()
    day = TradingDay(shipped_settings(), out=out)
    answers = iter([ConnectionError("down"), TimeoutError("slow"), "the clock"])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert day._ask(read) == "the clock"
    assert out.getvalue().count("did not answer") == 2
    day.stop()
    assert day._ask(read) is None, "a stopped run asks no more"
