"""The snapshot carries the session's fills, each with the P&L it realized, and the
session's realized and unrealized P&L: a buy realizes nothing; selling part of it
back at another price realizes (price - entry) x qty."""

from __future__ import annotations

from decimal import Decimal


def test_fills_and_realized_against_unrealized(make_pipe):
    pipe = make_pipe(auto_approve=True)
    pipe.send({"AAPL": 0.8})
    pipe.wait_settled()
    pipe.wait(lambda: pipe.snapshot.fills, what="the AAPL buy's fills in the snapshot")
    snap = pipe.snapshot
    assert {f.side for f in snap.fills} == {"buy"} and snap.realized_pl == 0
    entry = snap.positions["AAPL"].avg_entry_price
    bought = sum((f.qty for f in snap.fills), Decimal(0))
    assert bought == snap.positions["AAPL"].qty

    pipe.venue.shock(["AAPL"], 2)  # 2 % up
    pipe.send({"AAPL": 0.2})  # a smaller target: part of it is sold
    pipe.wait_settled()
    pipe.wait(lambda: any(f.side == "sell" for f in pipe.snapshot.fills), what="the sell's fills")
    snap = pipe.snapshot
    sells = [f for f in snap.fills if f.side == "sell"]
    expected = sum(((f.price - entry) * f.qty for f in sells), Decimal(0))
    assert snap.realized_pl > 0, "sold above the entry: a gain"
    assert abs(snap.realized_pl - expected) <= Decimal("0.05"), (snap.realized_pl, expected)
    assert snap.realized_pl == sum((f.realized_pl for f in snap.fills), Decimal(0))
    assert snap.unrealized_pl == snap.positions["AAPL"].unrealized_pl
    # the market price of what is held (and of every symbol with a working order)
    assert set(snap.quotes) == {"AAPL"} and snap.quotes["AAPL"] == snap.positions["AAPL"].last_price
