"""Truthful messages (issue 11, item 10): what the event log says is what happened.

- "bar HH:MM: N signal(s), M intent(s)" only when the batch's intents were journaled;
- never "trading ready" right after a journal error halted trading;
- the kill switch's "venue confirmed N cancels" counts the orders the venue canceled,
  not those that filled before their cancel.

The first runs a real session (Rig); the other two drive an Engine's handlers directly
on a real journal: the venue's answers are given as the typed records the broker
would have made of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from engine import events as ev
from engine.config import load_settings
from engine.core import Engine
from engine.core import messages as msg
from engine.journal import Journal, JournalError
from engine.model import OrderStatus, TradingState
from engine.universe import Universe
from tests.engine.core.test_engine_journal_failure import disk_full
from tests.engine.journal.journal_builders import fill, intent
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[3]


def quiet_rig(make_rig):
    """A rig whose engine journals nothing on its own (no periodic reconciliation,
    position or account refresh): the next write is the one the test makes."""
    return make_rig(
        {
            "monitoring": {
                "order_reconciliation_interval": 3600,
                "position_update_interval": 3600,
                "risk_check_interval": 3600,
            }
        }
    )


def test_a_bar_whose_intents_could_not_be_journaled_is_not_said_to_have_any(make_rig):
    rig = quiet_rig(make_rig)
    rig.bar({"AAPL": 0.5})
    assert any("1 signal(s), 1 intent(s)" in e.text for e in rig.snapshot.events)
    before = rig.settle()  # its fill journaled: nothing of the first bar is still to be written
    assert before.ok, before

    disk_full(rig.engine.journal)  # the batch's one durable write is the next write
    rig.bar({"MSFT": 0.8, "JPM": 0.7, "KO": 0.6})
    # the journal error publishes a snapshot in the middle of the bar: wait for its line
    [said] = wait_for(
        lambda: [e.text for e in rig.snapshot.events if "3 signal(s)" in e.text],
        what="the bar's line in the event log",
    )
    assert "3 signal(s), 0 intent(s)" in said and "journal cannot be written, nothing sent" in said, said
    assert rig.snapshot.trading_state is TradingState.HALTED
    assert not [e for e in rig.journal_events() if isinstance(e, ev.IntentCreated) and e.order.symbol == "MSFT"]


def offline_engine(tmp_path: Path) -> Engine:
    """An Engine on a real journal with an open session, not started: its handlers are
    called directly (broker None: nothing here reaches for it)."""
    settings = load_settings(ROOT / "config" / "execution.toml", env={})
    universe = Universe.load(ROOT / "config" / "universe.toml")
    eng = Engine(settings, broker=None, journal=Journal(tmp_path / "j.sqlite"), universe=universe)  # type: ignore[arg-type]
    eng.recorder.open_journal()
    return eng


def fill_the_disk(journal: Journal) -> None:
    """The disk is full (see test_engine_journal_failure) and a write has found out."""
    disk_full(journal)
    for _ in range(10_000):
        try:
            journal.append(ev.SignalDropped(reason="filling the disk " + "x" * 4000))
        except JournalError:
            return
    raise AssertionError("the journal never filled up")


async def test_no_trading_ready_right_after_the_journal_failed_at_the_start_up_reconciliation(tmp_path):
    eng = offline_engine(tmp_path)
    assert not eng.trading_ready
    fill_the_disk(eng.journal)
    done = asyncio.get_running_loop().create_future()
    eng.handle(msg.ReconcileRead("startup", [], [], {}, [], done))
    texts = [e.text for e in eng.snapshot.events] + [e.text for e in eng.publisher._events]  # noqa: SLF001
    assert any("JOURNAL ERROR" in t for t in texts), texts
    assert not any("trading ready" in t for t in texts), texts
    assert not eng.trading_ready and "journal" in eng.not_ready_reason
    assert eng.state is TradingState.HALTED


def test_the_kill_switch_counts_cancels_the_venue_made_not_fills_that_came_first(tmp_path):
    eng = offline_engine(tmp_path)
    now = datetime(2026, 3, 5, 14, 31, tzinfo=UTC)
    for i, cid in enumerate(("a1", "a2", "a3")):
        eng.recorder.record(intent(cid, symbol=("AAPL", "MSFT", "JPM")[i], qty="10"))
        eng.recorder.record(ev.SubmitSent(client_order_id=cid, at=now))
        eng.recorder.record(ev.SubmitAcked(client_order_id=cid, venue_order_id=f"v{i}", status=OrderStatus.NEW, at=now))
    eng.halt.kill_ids, eng.halt.kill_open = {"v0", "v1", "v2"}, {"v0", "v1", "v2"}
    eng.kill = eng.kill.__class__(phase="sent", cancels_requested=3)
    # the venue: two canceled, one filled in full before its cancel arrived
    eng.recorder.record(ev.OrderStatusChanged(client_order_id="a1", status=OrderStatus.CANCELED))
    eng.recorder.record(ev.OrderStatusChanged(client_order_id="a2", status=OrderStatus.CANCELED))
    eng.recorder.record(fill("a3", "x1", "10", symbol="JPM", status=OrderStatus.FILLED))
    assert eng.book.get("a3").status is OrderStatus.FILLED
    eng.halt.check_kill_progress()

    assert eng.kill.phase == "confirmed"
    assert eng.kill.cancels_confirmed == 2
    assert "venue confirmed 2 cancels, 1 filled before its cancel" in eng.kill.detail
    said = [e.text for e in eng.publisher._events if e.kind == "kill"]  # noqa: SLF001
    assert said[-1] == "kill switch: venue confirmed 2 cancels, 1 filled before its cancel"
    j = Journal(tmp_path / "j.sqlite", readonly=True)
    try:
        [confirmed] = [e.event for e in j.replay() if isinstance(e.event, ev.KillSwitch)]
    finally:
        j.close()
    assert confirmed.phase == "confirmed" and confirmed.counts == {"confirmed": 2, "filled": 1}
    assert Decimal(eng.book.get("a3").filled_qty) == 10
