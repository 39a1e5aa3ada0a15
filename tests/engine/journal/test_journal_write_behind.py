"""Journal.append_later / flush: the write-behind of the engine's non-durable
events. Rows keep the order of the calls whatever write commits them, a reader
sees every row appended before it asked, and a write that fails fails the
journal as a failed append does."""

from __future__ import annotations

import pytest

from engine import events as ev
from engine.journal import Journal, JournalError
from engine.model import OrderStatus
from tests.engine.journal.journal_builders import fill, intent


def _types(path) -> list[str]:
    with Journal(path, readonly=True) as ro:
        return [e.event.type for e in ro.replay()]


def _cids(journal) -> list[str]:
    out = []
    for entry in journal.replay():
        e = entry.event
        if isinstance(e, ev.FillApplied):
            out.append(e.fill.execution_id)
        elif isinstance(e, ev.SubmitAcked):
            out.append(e.venue_order_id)
    return out


def test_rows_wait_for_the_flush_then_commit_in_call_order(journal, journal_path) -> None:
    journal.append_many([intent("c1"), ev.SubmitSent(client_order_id="c1")], durable=True)
    journal.append_later(ev.SubmitAcked(client_order_id="c1", venue_order_id="v1", status=OrderStatus.NEW))
    journal.append_later(fill("c1", "x1", "4"))
    assert journal.unflushed == 2
    # another process (the console, `execdesk report`) does not see them yet
    assert "SubmitAcked" not in _types(journal_path)
    journal.flush()
    assert journal.unflushed == 0
    assert _types(journal_path)[-2:] == ["SubmitAcked", "FillApplied"]


def test_any_other_write_commits_the_waiting_rows_first(journal, journal_path) -> None:
    journal.append_later(fill("c1", "x1", "1"))
    seq = journal.append(fill("c1", "x2", "1"))  # a plain append: after the waiting row
    journal.append_later(fill("c1", "x3", "1"))
    journal.append_many([fill("c1", "x4", "1")], durable=True)  # the group commit: after it too
    assert journal.unflushed == 0
    assert _cids(journal) == ["x1", "x2", "x3", "x4"]
    assert seq == journal.last_seq() - 2


def test_a_reader_in_the_same_process_sees_the_waiting_rows(journal) -> None:
    journal.append_later(fill("c1", "x1", "1"))
    assert _cids(journal) == ["x1"]  # replay committed it first
    assert journal.unflushed == 0


def test_seal_and_close_commit_the_waiting_rows(journal_path) -> None:
    j = Journal(journal_path)
    j.open_session("cfg-1")
    j.append_later(fill("c1", "x1", "1"))
    j.seal()
    j.open_session("cfg-1")
    j.append_later(fill("c1", "x2", "1"))
    j.close()
    with Journal(journal_path, readonly=True) as ro:
        assert [e.event.fill.execution_id for e in ro.replay() if isinstance(e.event, ev.FillApplied)] == ["x1", "x2"]


def test_a_failed_flush_fails_the_journal(journal) -> None:
    with journal._lock:  # noqa: SLF001 - the disk is full (as tests/engine/core does it)
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]  # noqa: SLF001
        journal._conn.execute(f"PRAGMA max_page_count={pages}")  # noqa: SLF001
    for i in range(200):  # enough rows to need a new page
        journal.append_later(fill("c1", f"x{i}", "1"))
    with pytest.raises(JournalError):
        journal.flush()
    assert not journal.ok
    with pytest.raises(JournalError):
        journal.append_later(fill("c1", "y", "1"))
    with pytest.raises(JournalError):
        journal.append(fill("c1", "z", "1"))
