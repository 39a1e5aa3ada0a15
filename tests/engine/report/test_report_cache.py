"""The report cache (engine/report/cache.py): derived data next to the journal, used
only while the journal is what it was built from. Given a report that left a cache,
when the journal changes (a new event, a seal), the cache is not used and the report
shows the change; a cache that is broken or cannot be written changes nothing."""

from __future__ import annotations

import re
from datetime import date

import pytest

from engine import events as ev
from engine.journal import Journal
from engine.report.cache import cache_path, journal_key
from engine.report.command import report_data
from tests.engine.report.report_journal import B0, B1, counted_builds


@pytest.fixture
def live_journal(journal_path):
    """A journal with an open session, as a running session leaves it."""
    j = Journal(journal_path)
    j.open_session("c", date(2026, 3, 5))
    j.append(ev.SignalsSkipped(count=3, first_ts=B0, last_ts=B1))
    yield j
    j.close()


def test_a_second_report_of_the_same_journal_is_read_from_the_cache(live_journal, monkeypatch):
    builds = counted_builds(monkeypatch)
    first = report_data(live_journal.path, None)
    second = report_data(live_journal.path, None)
    assert len(builds) == 1, "the second report should come from the cache"
    assert cache_path(live_journal.path).exists()
    assert oct(cache_path(live_journal.path).stat().st_mode & 0o777) == "0o600"
    assert first["summary"] == second["summary"] and first["orders"] == second["orders"]


def test_a_journal_that_moved_on_is_reported_from_its_events(live_journal, monkeypatch):
    builds = counted_builds(monkeypatch)
    assert report_data(live_journal.path, None)["summary"]["skipped_signal_batches"] == 3
    live_journal.append(ev.SignalsSkipped(count=2, first_ts=B1, last_ts=B1))
    assert report_data(live_journal.path, None)["summary"]["skipped_signal_batches"] == 5
    live_journal.seal("stopped")  # the manifest changes, not only the events
    sealed = report_data(live_journal.path, None)
    assert sealed["sessions"][0]["sealed"] is True
    assert len(builds) == 3
    assert report_data(live_journal.path, "all")["summary"]["skipped_signal_batches"] == 5
    assert len(builds) == 4, "another scope is built once"
    report_data(live_journal.path, None)
    report_data(live_journal.path, "all")
    assert len(builds) == 4, "both scopes of the same journal are in the cache"


def test_a_broken_cache_is_ignored_and_replaced(live_journal, monkeypatch):
    builds = counted_builds(monkeypatch)
    path = cache_path(live_journal.path)
    for garbage in (b"{not json", b"[]", b'{"key": 1, "reports": []}'):
        path.write_bytes(garbage)
        assert report_data(live_journal.path, None)["summary"]["skipped_signal_batches"] == 3
    assert len(builds) == 3
    report_data(live_journal.path, None)
    assert len(builds) == 3, "the last report wrote a good cache"


def test_a_cache_from_other_code_is_not_used(live_journal, monkeypatch):
    import engine.report.cache as cache_module

    builds = counted_builds(monkeypatch)
    report_data(live_journal.path, None)
    key = journal_key(live_journal.path)
    assert key is not None
    monkeypatch.setattr(cache_module, "_code_fingerprint", lambda: "another version of the code")
    report_data(live_journal.path, None)
    assert len(builds) == 2


def test_a_cache_that_cannot_be_written_changes_nothing_but_the_speed(live_journal):
    path = cache_path(live_journal.path)
    path.mkdir()  # in the way of the cache file, whoever runs the test (root writes anywhere)
    assert report_data(live_journal.path, None)["summary"]["skipped_signal_batches"] == 3
    assert path.is_dir() and list(path.parent.glob("*.tmp")) == []


def test_an_unknown_session_is_refused_in_the_report_s_own_words(live_journal):
    from engine.report import ReportError

    report_data(live_journal.path, None)
    with pytest.raises(ReportError, match="has no session 'nope'"):
        report_data(live_journal.path, "nope")


def test_a_report_from_the_cache_starts_without_the_models_the_venue_or_the_console(live_journal):
    """`execdesk report` served from the cache loads no pydantic model (the events, the
    configuration), no alpaca-py, no Textual and no venue: its start is the point."""
    import subprocess
    import sys

    from tests.support import ROOT

    report_data(live_journal.path, None)  # leaves the cache
    probe = (
        "import sys\n"
        "from console.cli import main\n"
        f"code = main(['report', '--journal', {str(live_journal.path)!r}])\n"
        "heavy = ('pydantic', 'engine.events', 'engine.config', 'alpaca', 'textual', 'engine.sim')\n"
        "print('loaded:', code, *sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stderr.strip().splitlines()[-1] == "loaded: 0", done.stderr
    assert "signal batches skipped (backlog)" in done.stdout


def test_the_printed_rendering_is_kept_and_printed_again_without_building_or_rendering(live_journal, monkeypatch):
    from engine.report import renderers
    from engine.report.command import render_report

    builds = counted_builds(monkeypatch)
    first = render_report(live_journal.path, None, "text", "orders", False)
    monkeypatch.setattr(renderers, "_sections", lambda data: pytest.fail("rendered again"))
    second = render_report(live_journal.path, None, "text", "orders", False)
    assert len(builds) == 1
    assert first.splitlines()[2:] == second.splitlines()[2:] and "signal batches skipped (backlog)" in second
    assert second.splitlines()[1].startswith(f"journal: {live_journal.path}   scope: ")
    # another format of the same journal: rendered from the cached data, not built again
    monkeypatch.undo()
    builds = counted_builds(monkeypatch)
    assert render_report(live_journal.path, None, "md", "orders", False).startswith("# execdesk execution report")
    assert builds == []
    live_journal.append(ev.SignalsSkipped(count=2, first_ts=B1, last_ts=B1))  # moved on: built again
    again = render_report(live_journal.path, None, "text", "orders", False)
    assert re.search(r"signal batches skipped \(backlog\) +5\n", again), again
    assert len(builds) == 1


def test_a_cache_file_others_can_write_is_not_read(live_journal, monkeypatch):
    builds = counted_builds(monkeypatch)
    report_data(live_journal.path, None)
    path = cache_path(live_journal.path)
    path.chmod(0o622)  # someone else could have written it: not decoded
    report_data(live_journal.path, None)
    assert len(builds) == 2
    assert oct(path.stat().st_mode & 0o777) == "0o600", "replaced by an owner-only cache"
    report_data(live_journal.path, None)
    assert len(builds) == 2


def test_a_report_leaves_no_memo_behind(live_journal):
    """The report's memos (repeated times, prices, figures) last one report: a long-lived
    process that printed one holds none of them afterwards."""
    from engine.report import figures
    from engine.report.command import render_report

    assert figures._MEMOS, "the memos are registered"
    render_report(live_journal.path, None, "text", "orders", False)
    assert all(not memo for memo in figures._MEMOS)
