"""Fixtures for the console tests: a real trading session per test (the Engine on
the built-in venue, frozen venue clock, fixed seed, a fresh journal). Nothing of the
engine is mocked; only the journal's random session id is pinned so that snapshots
(which show client order ids) are the same on every run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("engine.session")

from tests.console.deskkit import SESSION_ID, Desk


@pytest.fixture
def pinned_session_id(monkeypatch: pytest.MonkeyPatch) -> str:
    import engine.journal

    monkeypatch.setattr(engine.journal, "_new_session_id", lambda venue_date: SESSION_ID)
    return SESSION_ID


@pytest.fixture
def desk(tmp_path: Path, pinned_session_id: str) -> Iterator[Desk]:
    d = Desk(tmp_path / "journal.sqlite")
    try:
        yield d
    finally:
        d.stop()
