"""The close routine's own logic (engine/day.py), on an in-memory stand-in for the
session that answers CancelOrder as the Engine does (no working order without a venue
order id). Given a submit still unanswered when the routine starts (the client's
request budget holds it back), when its answer arrives, then it is cancelled too and
the routine says nothing is still open."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

import engine.day
from engine.commands import CancelOrder, CommandResult, RejectAll
from engine.day import MarketDay, TradingDay
from engine.snapshot import OrderRow
from engine.timezones import NEW_YORK
from tests.support import shipped_settings

DAY = MarketDay(
    date(2026, 11, 25),
    datetime(2026, 11, 25, 9, 30, tzinfo=NEW_YORK),
    datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK),
)


def _row(cid: str, venue_order_id: str | None, status: str) -> OrderRow:
    return OrderRow(
        client_order_id=cid,
        venue_order_id=venue_order_id,
        symbol="AAPL",
        side="buy",
        qty=Decimal(1),
        filled_qty=Decimal(0),
        filled_avg_price=None,
        limit_price=Decimal("100"),
        order_type="limit",
        status=status,
        submitted_at=None,
    )


@dataclass
class _Session:
    """Working orders of ours: "a" at the venue, "b" a submit answered only after
    `answer_after` snapshots. A cancel of an order at the venue ends it."""

    answer_after: int
    reads: int = 0
    working: dict[str, str | None] = field(default_factory=lambda: {"a": "v-a", "b": None})
    commands: list[object] = field(default_factory=list)
    stopped: str | None = None

    @property
    def snapshot(self) -> SimpleNamespace:
        self.reads += 1
        if self.reads > self.answer_after and "b" in self.working:
            self.working["b"] = "v-b"  # the venue answered the submit
        orders = {cid: _row(cid, vid, "new" if vid else "submitting") for cid, vid in self.working.items()}
        return SimpleNamespace(orders=orders, open_order_count=len(orders), positions={})

    def stop_signals(self) -> None:
        pass

    def execute_sync(self, command: object, timeout: float = 10.0) -> CommandResult:
        self.commands.append(command)
        if isinstance(command, RejectAll):
            return CommandResult(True, "none waiting")
        assert isinstance(command, CancelOrder)
        cid = command.client_order_id
        if self.working.get(cid) is None:  # the Engine's answer for an order not at the venue
            return CommandResult(False, f"no working order {cid}")
        del self.working[cid]
        return CommandResult(True, f"cancel sent for {cid}", 1)

    def stop(self, how: str = "stopped") -> None:
        self.stopped = how


@pytest.fixture
def day(tmp_path, monkeypatch) -> tuple[TradingDay, io.StringIO]:
    monkeypatch.setattr(engine.day, "CLOSE_SETTLE_TIMEOUT", 5.0)
    out = io.StringIO()
    run = TradingDay(shipped_settings(session={"reports_dir": str(tmp_path)}), out=out)
    monkeypatch.setattr(run, "_write_report", lambda d: Path(tmp_path) / f"{d.date}.md")
    return run, out


def test_a_submit_answered_during_the_close_routine_is_cancelled_too(day):
    run, out = day
    session = run.session = _Session(answer_after=3)
    run._close_routine(DAY)
    cancelled = [c.client_order_id for c in session.commands if isinstance(c, CancelOrder)]
    assert sorted(cancelled) == ["a", "b"], cancelled
    assert session.working == {}
    assert "2 working order(s) cancelled, 0 still open" in out.getvalue(), out.getvalue()
    assert session.stopped == "day closed 2026-11-25"


def test_a_submit_never_answered_is_said_after_the_bounded_wait(day, monkeypatch):
    monkeypatch.setattr(engine.day, "CLOSE_SETTLE_TIMEOUT", 0.5)
    run, out = day
    session = run.session = _Session(answer_after=10**9)
    run._close_routine(DAY)
    assert [c.client_order_id for c in session.commands if isinstance(c, CancelOrder)] == ["a"]
    assert "1 working order(s) cancelled, 1 still open (1 submit(s) never answered)" in out.getvalue()
