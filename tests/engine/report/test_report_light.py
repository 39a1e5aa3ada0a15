"""The report's light journal reader (engine/report/light.py) against the engine's own:
it knows every event kind the journal can hold, reads the schema engine.journal writes,
folds the orders to the state OrderBook.from_replay gives, and a row it cannot read is
reported in engine.events' words."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from engine import events as ev
from engine import journal as jm
from engine.journal import Journal
from engine.orders import OrderBook
from engine.report import ReportError, build_report, building, light
from tests.engine.report.big_journal import write_big_journal
from tests.engine.report.report_journal import build

#: the Order fields the report reads from the fold
_FIELDS = (
    "status",
    "filled_qty",
    "filled_avg_price",
    "venue_order_id",
    "denial",
    "denial_detail",
    "external",
    "submitted_at",
    "final_at",
    "fill_ids",
    "decision_price",
    "qty",
    "side",
    "symbol",
    "order_type",
    "time_in_force",
    "limit_price",
    "bar_ts",
    "created_at",
    "signal",
    "reason",
    "reduce_only",
)


def test_the_light_decoder_knows_every_event_kind_of_the_journal():
    # a new event kind must be decoded (or named as ignored) here, never silently unknown
    assert light.KINDS == set(ev.EVENT_TYPES)
    assert building.SCHEMA_VERSION == jm.SCHEMA_VERSION


def _same_fold(path) -> int:
    with Journal(path, readonly=True) as j:
        book = OrderBook.from_replay(j.replay())
        entries = list(light.decode_rows(j.rows()))
    fold = light.Book.from_entries(entries)
    assert set(fold.orders) == set(book.orders)
    for coid, order in book.orders.items():
        mine = fold.orders[coid]
        for name in _FIELDS:
            assert getattr(mine, name) == getattr(order, name), (coid, name)
    assert fold.skipped == len(book.skipped)
    return len(book.orders)


def test_the_light_fold_is_the_order_books(journal_path, monkeypatch, tmp_path):
    build(journal_path, monkeypatch)
    monkeypatch.undo()
    assert _same_fold(journal_path) > 0
    assert _same_fold(write_big_journal(tmp_path / "big.sqlite")) >= 10_000


def test_a_row_the_light_decoder_cannot_read_is_worded_by_the_events(built):
    path, _ = built
    conn = sqlite3.connect(path)
    with conn:
        ts, sid, payload = conn.execute(
            "SELECT ts, session_id, payload FROM events WHERE type = 'FillApplied' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        bad = payload.replace('"qty":"', '"qty":"-')  # the journal is append-only: a new row
        conn.execute(
            "INSERT INTO events (ts, session_id, type, payload) VALUES (?, ?, 'FillApplied', ?)", (ts, sid, bad)
        )
    conn.close()
    with pytest.raises(ReportError, match=r"cannot be decoded: journal event FillApplied is not valid: .*quantity"):
        build_report(path)


def test_an_open_journal_reads_its_write_behind_rows(built):
    path, ids = built
    with Journal(path) as j:
        assert build_report(j).to_dict()["session_id"] == ids["main"]


def test_a_report_from_events_imports_no_pydantic(built):
    path, _ = built
    code = (
        "import sys; from pathlib import Path; from engine.report.command import report_data;"
        f"report_data(Path({str(path)!r}), None); print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
