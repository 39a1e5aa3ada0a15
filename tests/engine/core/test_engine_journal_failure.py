"""A journal that cannot be written stops trading: HALTED, nothing sent.

How the journal breaks here: the disk is full. SQLite is told, on the engine's
own connection, that the database may not grow past the pages it has
(PRAGMA max_page_count) — the next append fails with SQLITE_FULL, exactly what
a full disk gives. (Making the directory unwritable does not work as root, and
filling a real disk is not something a test should do. The crash drills cover
the same rule with a real OS-level write failure: RLIMIT_FSIZE on the engine
process, see tests/drills.)"""

from __future__ import annotations

from engine import events as ev
from engine.commands import Resume
from tests.support import wait_for


def disk_full(journal) -> None:
    with journal._lock:
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
        journal._conn.execute(f"PRAGMA max_page_count={pages}")


def test_a_journal_that_cannot_be_written_halts_and_sends_nothing(make_rig):
    rig = make_rig()
    rig.bar({"AAPL": 0.5})  # trading normally first
    before = rig.settle()
    assert before.ok, before
    assert len(before.venue_orders) == 1

    disk_full(rig.engine.journal)
    # the next thing the engine journals (a reconciliation, a snapshot, the bar) fails
    wait_for(lambda: not rig.snapshot.connectivity.journal_ok, what="the engine to notice the journal")
    snap = rig.snapshot
    assert snap.trading_state.value == "HALTED"
    assert "journal" in snap.state_cause
    assert any("JOURNAL ERROR" in e.text for e in snap.events)

    # signals keep coming: nothing may leave without an audit trail
    rig.bar({"MSFT": 0.8, "JPM": 0.7, "KO": 0.6})  # returns once the engine processed it
    assert any("3 signal(s), 0 intent(s)" in e.text for e in rig.snapshot.events)
    assert rig.posts.by_cid.keys() == {before.venue_orders[0]["client_order_id"]}
    assert rig.venue.state()["venue"]["orders_total"] == 1
    assert not rig.session.execute_sync(Resume("operator")).ok  # cannot resume without a journal

    # what the journal holds is still true of the venue
    c = rig.settle()
    assert c.ok, c
    assert not [e for e in c.events if isinstance(e, ev.IntentCreated) and e.order.symbol == "MSFT"]
