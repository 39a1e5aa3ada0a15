"""Fixtures for the journal and order-book scenarios."""

from __future__ import annotations

import pytest

from engine.journal import Journal


@pytest.fixture
def journal_path(tmp_path):
    return tmp_path / "var" / "journal.sqlite"


@pytest.fixture
def journal(journal_path):
    j = Journal(journal_path)
    j.open_session("cfg-1")
    yield j
    j.close()
