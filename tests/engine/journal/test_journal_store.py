"""The journal as a store: exact round trips, owner-only files, durability across
a SIGKILL, failures that surface as JournalError, and the session rule."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from engine import events as ev
from engine.config import SymbolOverride
from engine.journal import Journal, JournalError
from engine.model import DenialReason, Position, RolloutMode, TradingState
from tests.engine.journal.journal_builders import T0, fill, intent

REPO = Path(__file__).resolve().parents[3]


def test_given_events_with_decimals_when_replayed_then_every_value_is_exact(journal):
    written = [
        intent("xd-a-0-AAPL-0", qty="0.000000001", limit="123.4500"),
        ev.IntentDenied(client_order_id="xd-a-0-AAPL-0", reason=DenialReason.QUOTE_STALE, detail="age 31s"),
        fill("xd-a-0-AAPL-0", "e1", qty="3.3333333333333333333", price="0.0001"),
        ev.AccountSnapshot(
            cash=Decimal("100000.00"),
            equity=Decimal("100123.456789"),
            last_equity=Decimal("1E+5"),
            buying_power=Decimal("200000"),
        ),
        ev.PositionsSnapshot(
            positions=[Position(symbol="MSFT", qty=Decimal("-7"), avg_entry_price=Decimal("410.1234"))]
        ),
        ev.OverrideSet(
            symbol="NVDA", override=SymbolOverride(mode=RolloutMode.AUTO, max_position_usd=Decimal("2500.50"))
        ),
        ev.TradingStateChanged(state=TradingState.HALTED, cause="kill switch", previous=TradingState.ACTIVE),
        ev.BatchProcessed(bar_ts=T0, batch_seq=0, intents=1),
    ]
    for i, e in enumerate(written):
        journal.append(e, durable=(i % 2 == 0))
    replayed = [entry.event for entry in journal.replay(journal.session_id)]
    assert replayed[0].type == "SessionStarted"
    assert replayed[1:] == written
    order = replayed[1].order
    assert (order.qty, order.limit_price) == (Decimal("0.000000001"), Decimal("123.4500"))
    assert str(order.limit_price) == "123.4500", "trailing zeros are part of the exact value"
    assert replayed[3].fill.qty == Decimal("3.3333333333333333333")
    assert replayed[4].last_equity == Decimal("1E+5")
    seqs = [entry.seq for entry in journal.replay()]
    assert seqs == sorted(seqs) and len(seqs) == len(written) + 1


def test_given_a_permissive_umask_when_the_journal_is_created_then_every_file_is_owner_only(journal_path):
    old = os.umask(0o000)
    try:
        with Journal(journal_path) as j:
            j.open_session("cfg")
            j.append(ev.SignalDropped(symbol="AAPL", reason="stale"), durable=True)
            files = [journal_path, Path(f"{journal_path}-wal"), Path(f"{journal_path}-shm")]
            modes = {p.name: oct(p.stat().st_mode & 0o777) for p in files}
    finally:
        os.umask(old)
    assert modes == {p.name: "0o600" for p in files}, f"expected owner-only files, found {modes}"


def test_given_a_world_readable_journal_when_opened_then_it_is_made_owner_only(journal_path):
    journal_path.parent.mkdir(parents=True)
    journal_path.touch(mode=0o644)
    os.chmod(journal_path, 0o644)
    Journal(journal_path).close()
    assert journal_path.stat().st_mode & 0o777 == 0o600


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from engine import events as ev
    from engine.journal import Journal
    from tests.engine.journal.journal_builders import intent
    j = Journal({path!r})
    j.open_session("cfg")
    for i in range(50):
        j.append(ev.SignalDropped(symbol="AAPL", reason=f"noise {{i}}"))
    j.append(intent("xd-crash-0-AAPL-0"), durable=True)
    os.kill(os.getpid(), signal.SIGKILL)  # right after append returned: no close, no cleanup
    """
)


def test_given_a_durable_intent_when_the_process_is_killed_right_after_then_it_is_in_the_journal(journal_path):
    code = _CHILD.format(path=str(journal_path), tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with Journal(journal_path) as j:
        events = [entry.event for entry in j.replay()]
        info = j.open_session("cfg")
    intents = [e for e in events if isinstance(e, ev.IntentCreated)]
    assert [i.client_order_id for i in intents] == ["xd-crash-0-AAPL-0"]
    assert len(events) == 52, "session start, 50 events, the intent"
    assert info.resumed and "did not end cleanly" in info.reason


def test_given_a_full_database_when_appending_then_journal_error_and_it_stays_unwritable(journal):
    journal.append(ev.SignalDropped(reason="fits"))
    pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
    journal._conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full now
    with pytest.raises(JournalError, match="cannot be written"):
        for _ in range(10_000):
            journal.append(ev.SignalDropped(reason="x" * 2000), durable=True)
    assert not journal.ok
    with pytest.raises(JournalError, match="since"):
        journal.append(intent("xd-a-0-AAPL-0"), durable=True)


def test_given_a_closed_database_when_appending_then_journal_error(journal):
    journal._conn.close()  # the database went away underneath the journal
    with pytest.raises(JournalError):
        journal.append(intent("xd-a-0-AAPL-0"), durable=True)
    with pytest.raises(JournalError):
        journal.append_many([ev.SignalDropped(reason="x")])


def test_given_a_read_only_journal_when_appending_then_journal_error(journal, journal_path):
    with Journal(journal_path, readonly=True) as reader:
        assert [e.event.type for e in reader.replay()] == ["SessionStarted"]
        with pytest.raises(JournalError, match="read-only"):
            reader.append(ev.SignalDropped(reason="x"))


def test_given_a_path_that_cannot_hold_a_journal_when_opening_then_journal_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path / "a-file" / "journal.sqlite")
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path)  # a directory
    not_sqlite = tmp_path / "garbage.sqlite"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError):
        Journal(not_sqlite)


def test_given_journaled_events_when_someone_edits_them_then_sqlite_refuses(journal, journal_path):
    journal.append(ev.SignalDropped(reason="x"), durable=True)
    raw = sqlite3.connect(journal_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE events SET payload='{}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM events")
    raw.close()


def test_group_commit_is_all_or_nothing(journal):
    before = journal.last_seq()
    seqs = journal.append_many([intent(f"xd-a-0-AAPL-{i}") for i in range(5)], durable=True)
    assert seqs == list(range(before + 1, before + 6))


def test_an_unknown_event_type_replays_as_raw_data(journal, journal_path):
    journal.append(ev.SignalDropped(reason="x"))
    raw = sqlite3.connect(journal_path)
    raw.execute(
        "INSERT INTO events(ts, session_id, type, payload) "
        "VALUES ('2026-03-05T14:30:00+00:00', 's', 'FromTheFuture', '{\"a\": 1}')"
    )
    raw.commit()
    raw.close()
    last = list(journal.replay())[-1].event
    assert isinstance(last, ev.UnknownEvent) and last.type == "FromTheFuture" and last.data == {"a": 1}


# ---- the session rule --------------------------------------------------------------------------

D1, D2 = date(2026, 3, 5), date(2026, 3, 6)


def _open(path: Path, config_hash: str, day: date, **kw):
    j = Journal(path)
    return j, j.open_session(config_hash, day, **kw)


def test_a_restart_after_a_crash_continues_the_session_even_with_another_config(journal_path):
    j, first = _open(journal_path, "cfg-a", D1)
    j.close()  # no seal: a crash
    j, again = _open(journal_path, "cfg-b", D2)
    assert (again.session_id, again.resumed, again.config_changed) == (first.session_id, True, True)
    started = [e.event for e in j.replay() if isinstance(e.event, ev.SessionStarted)]
    assert started[-1].previous_config_hash == "cfg-a"
    j.close()


def test_a_clean_restart_the_same_day_with_the_same_config_continues_the_session(journal_path):
    j, first = _open(journal_path, "cfg-a", D1)
    j.seal("stopped")
    j.close()
    j, again = _open(journal_path, "cfg-a", D1)
    assert again.session_id == first.session_id and again.resumed
    assert j.latest_session().ended_at is None
    j.close()


@pytest.mark.parametrize("config_hash, day", [("cfg-a", D2), ("cfg-b", D1)])
def test_a_clean_restart_on_another_day_or_config_starts_a_new_session(journal_path, config_hash, day):
    j, first = _open(journal_path, "cfg-a", D1)
    j.seal("stopped")
    j.close()
    j, second = _open(journal_path, config_hash, day)
    assert second.session_id != first.session_id and not second.resumed
    assert second.session_id.startswith(day.strftime("%Y%m%d"))
    assert [s.how_ended for s in j.sessions()] == ["stopped", None]
    j.close()


def test_the_operator_can_start_a_new_session_after_a_crash_and_the_old_one_is_superseded(journal_path):
    j, first = _open(journal_path, "cfg-a", D1)
    j.close()
    j, second = _open(journal_path, "cfg-a", D1, new=True)
    assert second.session_id != first.session_id and not second.resumed
    assert [s.how_ended for s in j.sessions()] == ["superseded", None]
    j.close()


def test_appending_needs_an_open_session(journal_path):
    with Journal(journal_path) as j:
        with pytest.raises(RuntimeError, match="open_session"):
            j.append(ev.SignalDropped(reason="x"))
        j.open_session("cfg", D1)
        j.seal()
        with pytest.raises(RuntimeError, match="open_session"):
            j.append(ev.SignalDropped(reason="x"))


_SYNC_PROBE = textwrap.dedent(
    """
    import os
    from engine import events as ev
    from engine.journal import Journal
    j = Journal({path!r})
    j.open_session("cfg")
    os.write(2, b"@plain\\n")
    for _ in range(5):
        j.append(ev.SignalDropped(reason="x"))
    os.write(2, b"@durable\\n")
    for _ in range(3):
        j.append(ev.SignalDropped(reason="x"), durable=True)
    os.write(2, b"@group\\n")
    j.append_many([ev.SignalDropped(reason="x")] * 10, durable=True)
    os.write(2, b"@end\\n")
    """
)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the fsyncs")
def test_a_durable_append_is_fsynced_before_it_returns_and_a_plain_one_is_not(journal_path, tmp_path):
    trace = tmp_path / "trace"
    code = _SYNC_PROBE.format(path=str(journal_path))
    proc = subprocess.run(
        ["strace", "-e", "trace=fsync,fdatasync,write", "-o", str(trace), sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    if proc.returncode != 0 and b"ptrace" in proc.stderr:
        pytest.skip("ptrace is not permitted here")
    assert proc.returncode == 0, proc.stderr.decode()
    syncs: dict[str, int] = {}
    phase = None
    for line in trace.read_text().splitlines():
        if 'write(2, "@' in line:
            phase = line.split('"@')[1].split("\\")[0]
        elif phase and ("fsync(" in line or "fdatasync(" in line):
            syncs[phase] = syncs.get(phase, 0) + 1
    assert syncs.get("plain", 0) == 0, f"plain appends should not sync, found {syncs}"
    assert syncs.get("durable") == 3, f"one sync per durable append expected, found {syncs}"
    assert syncs.get("group") == 1, f"one sync per group commit expected, found {syncs}"
