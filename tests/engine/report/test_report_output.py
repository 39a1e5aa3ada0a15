"""The report's output, byte for byte, against what the report printed before it was
made fast (issue 15): every format (text, Markdown, CSV orders and fills, JSON) of the
latest session and of all sessions, on the realistic fixture journal and on a generated
10,000-order journal; each as built from the journal's events and as read back from
the report cache (engine/report/cache.py). The outputs are compared by SHA-256 of their bytes (with the
journal's path and the generation time fixed), recorded from the report as it was at
commit 803ddcf; a deliberate change of the output updates them (print the new ones with
`python -m tests.engine.report.test_report_output`)."""

from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.report import building, fold, renderers
from engine.report.cache import cache_path
from engine.report.command import render_report, report_data
from engine.report.renderers import _ts, render_data
from tests.engine.report.big_journal import write_big_journal

GENERATED_AT = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
RENDERINGS = [
    (scope, fmt, table)
    for scope in ("latest", "all")
    for fmt, table in (("text", "orders"), ("md", "orders"), ("csv", "orders"), ("csv", "fills"), ("json", "orders"))
]

#: (journal, scope, format, table) -> SHA-256 of the output as the report printed it before
EXPECTED: dict[tuple[str, str, str, str], str] = {
    ("fixture", "latest", "text", "orders"): "85ee4ffc01b3037818ab36dd967e2390d0cc355fe0dc3873903f0ff6dfea5f30",
    ("fixture", "latest", "md", "orders"): "d312155a1179dc6a5220b11ef4ffa8723c4f714c390933029816cc8b1fd54e9d",
    ("fixture", "latest", "csv", "orders"): "eb994bfa02e0a16712842e9626dc49d0361a1f6864ddeee88f56cea114819609",
    ("fixture", "latest", "csv", "fills"): "9d6900a057ed16aeb4aa4712100cd92a75aa44976020d0ddf45e74d79f283766",
    ("fixture", "latest", "json", "orders"): "19a44c256f73fffd679a2da393011eabac0037a601280cd864d81fa4054024e4",
    ("fixture", "all", "text", "orders"): "4e5705257b2c94bf7f749fb59e9bb7002a3a6d2267228485542de8eed5688f50",
    ("fixture", "all", "md", "orders"): "c17e68d1943a582012e8039cfc1faac3cbed35183ab4eec1667325d99d43cb6e",
    ("fixture", "all", "csv", "orders"): "cd2b2ceeaa59257dd9ae2a4266905f8f208516f85e2cee2793da42a01c61b28d",
    ("fixture", "all", "csv", "fills"): "ba59ea39cdc96b863d41f03eb20495f3b2ce3bdf28273795190aeb8a2e383515",
    ("fixture", "all", "json", "orders"): "720771e96fb2f25260a811015271c24a0a412ab01cc274dd9d5c27c73f6dd0d8",
    ("big", "latest", "text", "orders"): "a9dacf5a766ba519907acb0958bfcf3ecdf813b9029ccdfc7872e5f8b396ecdf",
    ("big", "latest", "md", "orders"): "875d2ba06988bdec7ca9f41770f746d295850744e13cb9129c24090291d64e9f",
    ("big", "latest", "csv", "orders"): "f9e0fda1b1ab908655cee149b6b373ac6257ad3ad6249382aa7e896c2ce83255",
    ("big", "latest", "csv", "fills"): "6ff31268db27f9623b4e37a53505afc585a9a756f112c8cd760868278fd2c0ff",
    ("big", "latest", "json", "orders"): "49f0634b594da7b170aa8937da788351e7ea819f368aaa77c5ccbb147fa3a6d0",
    ("big", "all", "text", "orders"): "0983c11e9e01e685f693ca7f67b9ba40054905db3b5df35e6074940bc8237b50",
    ("big", "all", "md", "orders"): "5f27c1c6a941956e9c67506ff6958fde588e9fec079c3f9a6a55ebe372d00418",
    ("big", "all", "csv", "orders"): "88e94bd492abfe01a51caf5558f00dbbe13770da5ecb07bdc692c8a43b71f3f1",
    ("big", "all", "csv", "fills"): "7933baa363bae1f601b3530375e869f6db14e0440f15608bf8b572b5538ebc21",
    ("big", "all", "json", "orders"): "3a6a7799fef57ef6e6c349f3c62e755dbb91db894f649eabaa0b37ccae0b1aca",
}


def digests(path: Path) -> dict[tuple[str, str, str], str]:
    """The outputs as `execdesk report` prints them (engine.report.command.report_data:
    from the report cache when it has them, else from the journal's events)."""
    out = {}
    for scope in ("latest", "all"):
        data = report_data(path, scope)
        data["generated_at"] = GENERATED_AT.isoformat()
        for s, fmt, table in RENDERINGS:
            if s != scope:
                continue
            text = render_data(data, fmt, table=table).replace(str(path), "JOURNAL")
            out[(scope, fmt, table)] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return out


def replayed_then_cached(path: Path, monkeypatch) -> tuple[dict, dict]:
    """The digests from the journal's events (no cache yet), then from the report cache
    that run left (building the report from events is not allowed the second time)."""
    assert not cache_path(path).exists()
    replayed = digests(path)
    assert cache_path(path).exists()
    with monkeypatch.context() as m:
        m.setattr(building, "build_report", _not_replayed)
        m.setattr(fold, "fold_report", _nothing_folded(fold.fold_report))
        cached = digests(path)
    return replayed, cached


def _not_replayed(*args, **kwargs):
    raise AssertionError("the report was built from the journal's events, not read from the report cache")


def _nothing_folded(real):
    """fold_report that may only continue the fold the cache kept, with no new row
    (another format or scope of the same journal: the cache's fold, no event read)."""

    def continued(path, session_id, kept, fingerprint):
        if kept is None:
            _not_replayed()
        before = kept.rows
        got = real(path, session_id, kept, fingerprint)
        if got is None or got[2] is not kept or kept.rows != before:
            _not_replayed()
        return got

    return continued


def fixture_journal(path: Path, monkeypatch) -> Path:
    """report_journal.py's journal, with session ids that are the same on every run."""
    import engine.journal as journal_module
    from tests.engine.report.report_journal import build

    names = iter("ab")
    monkeypatch.setattr(journal_module, "_new_session_id", lambda d: f"{d:%Y%m%d}-fixture{next(names)}")
    build(path, monkeypatch)
    monkeypatch.undo()
    return path


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory) -> Path:
    return write_big_journal(tmp_path_factory.mktemp("big") / "journal.sqlite")


def test_the_fixture_journal_reports_as_before_from_events_and_from_the_cache(tmp_path, monkeypatch):
    replayed, cached = replayed_then_cached(fixture_journal(tmp_path / "journal.sqlite", monkeypatch), monkeypatch)
    expected = {k[1:]: v for k, v in EXPECTED.items() if k[0] == "fixture"}
    assert replayed == expected
    assert cached == expected


def test_a_10000_order_journal_reports_as_before_from_events_and_from_the_cache(big_journal, monkeypatch):
    replayed, cached = replayed_then_cached(big_journal, monkeypatch)
    expected = {k[1:]: v for k, v in EXPECTED.items() if k[0] == "big"}
    assert replayed == expected
    assert cached == expected


def printed(path: Path) -> dict[tuple[str, str, str], str]:
    """The digests of the renderings as `execdesk report` prints them (command.render_report:
    the rendering the report cache kept, else rendered and kept), the generation time set."""
    out = {}
    for scope, fmt, table in RENDERINGS:
        if fmt == "json":
            continue  # its data is the rendering: digests() covers it
        text = render_report(path, scope, fmt, table, False).replace(str(path), "JOURNAL")
        if fmt != "csv":
            head, sep, rest = text.partition("generated: ")
            assert sep, text[:300]
            text = head + sep + _ts(GENERATED_AT.isoformat()) + rest[rest.index("\n") :]
        out[(scope, fmt, table)] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return out


def test_the_printed_report_is_the_same_rendered_and_from_the_cache_s_rendering(big_journal, tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(big_journal.read_bytes())
    expected = {k[1:]: v for k, v in EXPECTED.items() if k[0] == "big" and k[2] != "json"}
    assert printed(path) == expected
    with monkeypatch.context() as m:  # neither built nor rendered again
        m.setattr(building, "build_report", _not_replayed)
        m.setattr(fold, "fold_report", _nothing_folded(fold.fold_report))
        m.setattr(renderers, "_sections", _not_replayed)
        assert printed(path) == expected


if __name__ == "__main__":  # print the digests of the report as it is now
    import tempfile

    from _pytest.monkeypatch import MonkeyPatch

    with tempfile.TemporaryDirectory() as tmp:
        fixture = fixture_journal(Path(tmp) / "fixture.sqlite", MonkeyPatch())
        big = write_big_journal(Path(tmp) / "big.sqlite")
        for name, path in (("fixture", fixture), ("big", big)):
            for key, digest in digests(path).items():
                sys.stdout.write(f"    {(name, *key)!r}: {digest!r},\n")
