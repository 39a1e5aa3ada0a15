"""A journal event is validated when it is made and when it is replayed: a fill
of a negative (or zero) quantity, or at no price, is refused by the event model,
with a message naming the event, never taken into the book (issue 11 item 9)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from engine import events as ev
from engine.journal import Journal
from engine.model import Fill, Side

AT = datetime(2026, 11, 25, 14, 40, tzinfo=UTC)


def a_fill(qty: str, price: str = "100.00") -> Fill:
    return Fill(
        execution_id="x-1",
        client_order_id="cid-1",
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal(price),
        ts=AT,
    )


@pytest.mark.parametrize("qty, price", [("-5", "100"), ("0", "100"), ("5", "0"), ("5", "-1")])
def test_a_fill_event_of_no_real_execution_is_refused_when_made(qty, price):
    with pytest.raises(ValidationError, match="must be > 0"):
        ev.FillApplied(fill=a_fill(qty, price))


def test_a_positive_fill_is_an_event():
    assert ev.FillApplied(fill=a_fill("5")).fill.qty == 5


def test_a_negative_fill_written_into_the_journal_is_refused_on_replay(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.open_session("cfg-1")
    good = ev.FillApplied(fill=a_fill("5")).payload()
    session_id = journal.session_id
    journal.close()
    # a hand-written (or corrupted) row: the same fill with its quantity negative
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO events(ts, session_id, type, payload) VALUES (?, ?, ?, ?)",
        (AT.isoformat(), session_id, "FillApplied", good.replace('"qty":"5"', '"qty":"-5"')),
    )
    conn.commit()
    conn.close()

    reader = Journal(path, readonly=True)
    with pytest.raises(
        ev.EventDecodeError, match=r"journal event FillApplied is not valid: fill x-1: quantity must be > 0 \(got -5\)"
    ):
        list(reader.replay())
