"""Fixtures for the execution report tests."""

from __future__ import annotations

import pytest

from tests.engine.report.report_journal import build


@pytest.fixture
def journal_path(tmp_path):
    return tmp_path / "var" / "journal.sqlite"


@pytest.fixture
def built(journal_path, monkeypatch):
    """The realistic two-session journal of report_journal.py: its path and session ids."""
    ids = build(journal_path, monkeypatch)
    monkeypatch.undo()  # the clock is only for writing
    return journal_path, ids
