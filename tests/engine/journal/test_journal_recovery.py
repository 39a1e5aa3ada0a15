"""Recovery: the state replay rebuilds is the state that was live, and a restart
after a crash continues the session so a batch keeps its client_order_ids and a
processed batch is not processed again."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

from engine import events as ev
from engine.config import SymbolOverride
from engine.journal import Journal, recover
from engine.model import DenialReason, InvalidStateTransition, OrderStatus, RolloutMode, TradingState
from engine.orders import OrderBook, OrderBookError, bar_number, make_client_order_id
from tests.engine.journal.journal_builders import at, book_state, external, fill, process_batch

S = OrderStatus
REPO = Path(__file__).resolve().parents[3]


def test_given_a_busy_session_when_the_journal_is_replayed_then_the_book_equals_the_live_one(journal):
    live = OrderBook()
    live.ledger.session_id = journal.session_id
    refused = []

    def engine_applies(event, durable=False):
        journal.append(event, durable=durable)
        try:
            live.apply(event)
        except (InvalidStateTransition, OrderBookError) as exc:
            refused.append(str(exc))  # journaled, refused live: replay must refuse it too

    process_batch(journal, live, at(0), ["AAPL", "MSFT", "NVDA", "AMZN"])
    a, m, n, z = (o.client_order_id for o in live.orders.values())
    engine_applies(ev.ApprovalRequested(client_order_id=a, expires_at=at(60)))
    engine_applies(ev.ApprovalRequested(client_order_id=m, expires_at=at(30)))
    engine_applies(ev.ApprovalRequested(client_order_id=z, expires_at=at(90)))
    journal.append(live.approve(a))
    for e in live.expire(at(45)):
        journal.append(e)
    engine_applies(ev.IntentDenied(client_order_id=n, reason=DenialReason.QUOTE_STALE, detail="age 31s"))
    engine_applies(ev.SubmitSent(client_order_id=a, at=at(46)), durable=True)
    engine_applies(ev.SubmitAcked(client_order_id=a, venue_order_id="v-a", status=S.ACCEPTED))
    engine_applies(ev.OrderStatusChanged(client_order_id=a, status=S.NEW))
    engine_applies(fill(a, "e1", qty="4", price="187.21"))
    engine_applies(fill(a, "e1", qty="4", price="187.21"))  # the stream repeated itself
    engine_applies(ev.OrderStatusChanged(client_order_id=a, status=S.CANCELED))
    engine_applies(fill(a, "e2", qty="1", price="187.19"))  # late, after the cancel
    engine_applies(ev.OrderStatusChanged(client_order_id=a, status=S.NEW))  # stale, reordered: refused
    engine_applies(external("ext-1", S.NEW, symbol="TSLA"))
    engine_applies(ev.TradingStateChanged(state=TradingState.REDUCING, cause="daily loss"))
    engine_applies(ev.OverrideSet(symbol="NVDA", override=SymbolOverride(mode=RolloutMode.OFF)))
    engine_applies(ev.OverrideSet(symbol="AAPL", override=SymbolOverride(mode=RolloutMode.AUTO)))
    engine_applies(ev.OverrideSet(symbol="AAPL", override=None))
    process_batch(journal, live, at(60), ["AAPL", "TSLA"])
    assert len(refused) == 1 and "canceled -> new" in refused[0]

    recovered = recover(journal.replay())
    assert book_state(recovered.book) == book_state(live)
    assert [reason for _, reason in recovered.book.skipped] == refused
    assert recovered.trading_state is TradingState.REDUCING
    assert recovered.overrides == {"NVDA": SymbolOverride(mode=RolloutMode.OFF)}
    assert recovered.book.get(a).filled_qty == Decimal("5")
    assert recovered.book.get(m).denial is DenialReason.APPROVAL_EXPIRED
    assert [o.client_order_id for o in recovered.book.awaiting_approval] == [z]
    assert recovered.last_seq == journal.last_seq()


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date
    from engine.journal import Journal
    from engine.orders import OrderBook
    from tests.engine.journal.journal_builders import at, process_batch
    j = Journal({path!r})
    j.open_session("cfg", date(2026, 3, 5))
    book = OrderBook()
    book.ledger.session_id = j.session_id
    print(j.session_id, flush=True)
    process_batch(j, book, at(0), ["AAPL", "MSFT", "NVDA"])
    process_batch(j, book, at(60), ["AAPL", "MSFT", "NVDA", "AMZN"], stop_after=2)
    os.kill(os.getpid(), signal.SIGKILL)  # mid-batch, two of four intents journaled
    """
)


def test_given_a_crash_mid_batch_when_restarted_then_the_batch_keeps_its_ids_and_finished_ones_are_skipped(
    journal_path,
):
    code = _CHILD.format(path=str(journal_path), tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    crashed_session = proc.stdout.strip()

    from datetime import date

    with Journal(journal_path) as j:
        info = j.open_session("cfg", date(2026, 3, 5))
        assert info.session_id == crashed_session and info.resumed
        book = recover(j.replay()).book
        assert book.ledger.session_id == crashed_session
        before = set(book.orders)
        assert len(before) == 5

        assert process_batch(j, book, at(0), ["AAPL", "MSFT", "NVDA"]) == [], "bar 0 was processed"
        finished = process_batch(j, book, at(60), ["AAPL", "MSFT", "NVDA", "AMZN"])
        # a batch's number is its bar's (seconds from the session's date): the same after the crash
        bar1, bar2 = bar_number(crashed_session, at(60)), bar_number(crashed_session, at(120))
        assert bar1 is not None and bar2 == bar1 + 60
        assert finished == [make_client_order_id(crashed_session, bar1, s, 0) for s in ("NVDA", "AMZN")]
        assert {make_client_order_id(crashed_session, bar1, s, 0) for s in ("AAPL", "MSFT")} <= before
        new_bar = process_batch(j, book, at(120), ["AAPL"])
        assert new_bar == [make_client_order_id(crashed_session, bar2, "AAPL", 0)]

        intents = [e.event.client_order_id for e in j.replay() if isinstance(e.event, ev.IntentCreated)]
        assert len(intents) == len(set(intents)) == 8, "no intent journaled twice"
