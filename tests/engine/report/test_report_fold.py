"""The report fold (engine/report/fold.py): a report of a journal that moved on since the
last report continues the fold the report cache kept with the rows journaled since, and
says exactly what a full replay (building.build_report) says, byte for byte in every
format: on the report tests' journal and on a 10,000-order one, grown row by row through
the points where it matters (a batch half journaled, a new session, a seal, a session
resumed, rows of a kind this version does not know); a fold that cannot say (an earlier
session's row after a later one's, a journal replaced by another) gives way to a full
replay."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.journal import Journal
from engine.report import building
from engine.report.cache import cache_path
from engine.report.command import render_report, report_data
from engine.report.renderers import render_data
from tests.engine.report.big_journal import JournalCopy, write_big_journal
from tests.engine.report.report_journal import B0, B1, build, counted_builds

GENERATED_AT = datetime(2026, 3, 6, 12, 0, tzinfo=UTC).isoformat()
FORMATS = (("text", "orders"), ("md", "orders"), ("csv", "orders"), ("csv", "fills"), ("json", "orders"))


def _renderings(data: dict) -> dict[tuple[str, str], str]:
    data = dict(data, generated_at=GENERATED_AT)
    return {(fmt, table): render_data(data, fmt, table=table) for fmt, table in FORMATS}


def _assert_as_replayed(path: Path, scope: str, renderings: bool = True, expected: Any = None) -> None:
    """The report as printed (command.render_report: the fold continued, its rendering
    made with the fold's cells: text for the latest session, Markdown for all) and its
    data (command.report_data, from the cache then) == a full replay's: the data (every
    format is rendered from it alone) and, unless told not to, every format."""
    fmt = "text" if scope == "latest" else "md"
    printed = render_report(path, scope, fmt, "orders", False)
    if expected is not None:
        expected.reported(path)
    got = report_data(path, scope)
    full = building._build_report(path, scope).to_dict()  # (the real one: not counted)
    assert dict(got, generated_at=None) == dict(full, generated_at=None)
    replayed = render_data(full, fmt)
    head = 2 if fmt == "text" else 5  # the lines naming the journal and the time
    assert printed.splitlines()[head:] == replayed.splitlines()[head:]
    if renderings:
        assert _renderings(got) == _renderings(full)


class _Expected:
    """What each report should fold: the rows journaled since the last report of the
    journal while its last session was open (that report kept its fold; a report of a
    sealed journal keeps none and leaves the one kept), every row without a kept fold;
    a kept fold continued with no new row is not counted (_folded)."""

    def __init__(self) -> None:
        self.fold_at: int | None = None
        self.folds: list[int] = []

    def reported(self, path: Path) -> None:
        with sqlite3.connect(path) as conn:
            total = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            last = conn.execute("SELECT ended_at FROM sessions ORDER BY rowid DESC LIMIT 1").fetchone()
        if self.fold_at is None:
            self.folds.append(total)
        elif total > self.fold_at:
            self.folds.append(total - self.fold_at)
        if last is not None and last[0] is None:
            self.fold_at = total


def _grow_and_compare(
    grower: JournalCopy, cuts: list[int], monkeypatch, extra_at: dict | None = None, renderings: bool = True
) -> list[int]:
    """Grow the journal to each cut, report it (both scopes) and compare with a full
    replay, and that each report folded only what _Expected says."""
    folded = counted_builds(monkeypatch)
    expected = _Expected()
    for cut in cuts:
        grower.grow_to(cut, (extra_at or {}).get(cut, []))
        for scope in ("latest", "all"):
            _assert_as_replayed(grower.dest, scope, renderings or cut == cuts[-1], expected)
    assert folded == expected.folds, "each report folds only the rows journaled since the fold kept"
    return folded


@pytest.fixture
def fixture_source(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "source.sqlite"
    build(path, monkeypatch)
    monkeypatch.undo()
    return path


def test_the_report_tests_journal_grown_row_by_row_reports_as_replayed(fixture_source, tmp_path, monkeypatch):
    grower = JournalCopy(fixture_source, tmp_path / "journal.sqlite")
    _grow_and_compare(grower, list(range(1, len(grower.rows) + 1)), monkeypatch)


def test_rows_of_a_kind_this_version_does_not_know_are_folded_as_unknown_events(fixture_source, tmp_path, monkeypatch):
    grower = JournalCopy(fixture_source, tmp_path / "journal.sqlite")
    sid = grower.rows[-1][2]
    unknown = [(sid, "SomethingNew", '{"x": 1}')]
    cuts = grower.cuts(5, len(grower.rows) // 2, len(grower.rows))
    _grow_and_compare(grower, cuts, monkeypatch, {cuts[1]: unknown, cuts[2]: unknown * 2})
    assert report_data(grower.dest, "all")["summary"]["unknown_events"] == 3


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    return write_big_journal(tmp_path_factory.mktemp("big") / "journal.sqlite")


def test_a_10000_order_journal_grown_in_pieces_reports_as_replayed(big_source, tmp_path, monkeypatch):
    grower = JournalCopy(big_source, tmp_path / "journal.sqlite")
    n = len(grower.rows)
    # a batch half journaled, the first session's end and the second's start (one row
    # either side), about 53 and 530 orders' rows, the end of the journal
    cuts = grower.cuts(137, *grower.boundaries()[3:6], n // 2, n // 2 + 233, n // 2 + 2330, n)
    _grow_and_compare(grower, cuts, monkeypatch, renderings=False)


def test_a_session_resumed_and_sealed_again_reports_as_replayed(journal_path, monkeypatch):
    folded = counted_builds(monkeypatch)
    expected = _Expected()
    with Journal(journal_path) as j:
        j.open_session("c", date(2026, 3, 5))
        j.append(ev.SignalsSkipped(count=3, first_ts=B0, last_ts=B1))
        _assert_as_replayed(journal_path, "latest", expected=expected)
        j.seal("stopped")
        _assert_as_replayed(journal_path, "latest", expected=expected)
    with Journal(journal_path) as j:
        assert j.open_session("c", date(2026, 3, 5)).resumed  # the same session continues
        _assert_as_replayed(journal_path, "latest", expected=expected)
        j.append(ev.SignalsSkipped(count=2, first_ts=B1, last_ts=B1))
        j.seal("stopped")
        _assert_as_replayed(journal_path, "all", expected=expected)
        j.open_session("c", date(2026, 3, 6))  # a new session
        _assert_as_replayed(journal_path, "latest", expected=expected)
        _assert_as_replayed(journal_path, "all", expected=expected)
    assert -1 not in folded and folded == expected.folds and len(folded) == 5, folded


def test_an_earlier_session_s_row_after_a_later_one_s_is_replayed_in_full(fixture_source, tmp_path, monkeypatch):
    grower = JournalCopy(fixture_source, tmp_path / "journal.sqlite")
    first_session = grower.rows[0][2]
    grower.grow_to(len(grower.rows))
    folded = counted_builds(monkeypatch)
    _assert_as_replayed(grower.dest, "all")
    grower.grow_to(len(grower.rows), [(first_session, "SignalsSkipped", grower_skipped())])
    _assert_as_replayed(grower.dest, "all")
    _assert_as_replayed(grower.dest, "latest")
    assert folded[0] > 0 and folded[1:] == [-1, -1], "the fold gives way to a full replay"


def grower_skipped() -> str:
    return ev.SignalsSkipped(count=4, first_ts=B0, last_ts=B1).model_dump_json()


def test_a_journal_replaced_by_another_is_folded_anew(fixture_source, big_source, tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(fixture_source.read_bytes())
    folded = counted_builds(monkeypatch)
    _assert_as_replayed(path, "latest")
    kept = cache_path(path).read_bytes()
    path.write_bytes(big_source.read_bytes())  # another journal, more rows, the cache left
    assert cache_path(path).read_bytes() == kept
    _assert_as_replayed(path, "latest")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert folded[1] == rows, "not continued from the other journal's fold"


def test_the_printed_report_of_a_journal_that_moved_on_is_the_replayed_one(big_source, tmp_path, monkeypatch):
    grower = JournalCopy(big_source, tmp_path / "journal.sqlite")
    n = len(grower.rows)
    for cut in (n - 900, n - 500, n):
        grower.grow_to(cut)
        printed = render_report(grower.dest, None, "text", "orders", False)
        full = building._build_report(grower.dest, None).to_dict()
        replayed = render_data(full, "text")
        assert printed.splitlines()[2:] == replayed.splitlines()[2:]
        assert printed.endswith("\n") and replayed.endswith("\n")


def test_a_fill_journaled_before_its_order_gets_the_order_s_decision_price_later(journal_path, monkeypatch):
    """The fill's slippage uses the decision price of its order in the whole journal (a
    full replay reads the book at the end), even when the order is journaled after it
    (OrderRecovered after the fill, a lost journal tail) and after the fill was folded."""
    from engine.model import OrderStatus, Side
    from tests.engine.report.report_journal import fill, order

    folded = counted_builds(monkeypatch)
    with Journal(journal_path) as j:
        sid = j.open_session("c", date(2026, 3, 5)).session_id
        coid = f"{sid}-lost-1"
        j.append(fill(coid, "x-lost", "AAPL", Side.BUY, 10, "100.50", B1, OrderStatus.FILLED))
        _assert_as_replayed(journal_path, "latest")
        assert report_data(journal_path, None)["fills"][0]["slippage_bps"] is None
        recovered = order(coid, "AAPL", Side.BUY, 10, "100.00", limit="101")
        j.append(ev.OrderRecovered(order=recovered, batch_seq=0))
        _assert_as_replayed(journal_path, "latest")
        assert report_data(journal_path, None)["fills"][0]["slippage_bps"] == "50"
    assert -1 not in folded and folded[1:] == [1], folded


def test_a_kept_fold_that_names_anything_but_a_fold_s_classes_is_not_made(journal_path, tmp_path):
    """The fold is pickled; its unpickler makes only the fold's own classes, so a cache
    file that names anything else (here a call that would write a file) is not used and
    nothing it names is called; the report is then folded anew."""
    import marshal
    import pickle

    from engine.report import cache

    with Journal(journal_path) as j:
        j.open_session("c", date(2026, 3, 5))
        j.append(ev.SignalsSkipped(count=3, first_ts=B0, last_ts=B1))
        report_data(journal_path, None)
        cached = cache.read(journal_path)
        assert cache.fold_of(cached) is not None, "the fold kept is read back"
        witness = tmp_path / "called"

        class Evil:
            def __reduce__(self):
                return (Path.touch, (witness,))

        evil = dict(cached, fold=marshal.dumps((pickle.dumps(Evil(), protocol=5), {}, {}), 4))
        assert cache.fold_of(evil) is None
        assert not witness.exists()


def test_an_earlier_session_s_order_touched_later_is_made_again_in_every_scope(journal_path, monkeypatch):
    """An order of an earlier session that a row of a later session touches (its cancel
    confirmed the next day): its row is made again for the earlier session's report too,
    whichever scope the reports in between asked for (a row made for a scope not asked
    for is dropped, also from what the cache keeps of the fold)."""
    from engine.model import OrderStatus, Side
    from tests.engine.report.report_journal import order

    with Journal(journal_path) as j:
        sid = j.open_session("c", date(2026, 3, 5)).session_id
        coid = f"{sid}-0-AAPL-0"
        j.append(ev.IntentCreated(order=order(coid, "AAPL", Side.BUY, 10, "100.00", limit="100.05"), batch_seq=0))
        j.append(ev.SubmitSent(client_order_id=coid, at=B0))
        j.append(ev.SubmitAcked(client_order_id=coid, venue_order_id="v-1", status=OrderStatus.NEW))
        j.seal("stopped")
        j.open_session("c", date(2026, 3, 6))
        j.append(ev.SignalsSkipped(count=1, first_ts=B1, last_ts=B1))
        _assert_as_replayed(journal_path, "all")  # the earlier session's order row made
        j.append(ev.OrderStatusChanged(client_order_id=coid, status=OrderStatus.CANCELED, source="stream"))
        _assert_as_replayed(journal_path, "latest")  # touched, in a session not asked for
        _assert_as_replayed(journal_path, "all")
        assert report_data(journal_path, "all")["orders"][0]["status"] == "canceled"
