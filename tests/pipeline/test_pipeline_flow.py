"""JSONL in -> orders at the venue -> fills -> positions -> report, end to end:
the Engine sends through AlpacaBroker and alpaca-py to engine/sim; the test looks at
the venue with its own alpaca-py TradingClient and compares three views — the
venue's, the engine's snapshot and the execution report built from the journal."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal

import pytest

from engine.model import TradingState
from tests.pipeline.pipekit import CREDENTIALS, execdesk, parse_ts

BAR_1 = {"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.3, "KO": 0.8}
BAR_2 = {"AAPL": 0.2, "MSFT": -0.8, "KO": 0.8, "XOM": 0.6, "JPM": 0.05}  # JPM below threshold: hold


def dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@pytest.fixture
def traded(make_pipe):
    """Two bars through an auto-approved session on a frozen venue (full fills)."""
    pipe = make_pipe(auto_approve=True)
    bar1 = pipe.send(BAR_1)
    pipe.wait_settled("the first bar's orders to fill")
    bar2 = pipe.send(BAR_2)
    pipe.wait_settled("the second bar's orders to fill")
    pipe.wait(
        lambda: set(pipe.snapshot.positions) == set(pipe.eyes.positions()),
        what="the engine's positions to cover the venue's",
    )
    return pipe, bar1, bar2


def test_signals_become_orders_fills_and_positions_that_agree_everywhere(traded):
    pipe, bar1, bar2 = traded
    venue_positions = pipe.eyes.positions()
    venue_orders = pipe.eyes.orders_by_client_id()
    snap = pipe.snapshot

    # the venue holds what the signals asked for: long AAPL/JPM/KO/XOM, short MSFT
    assert set(venue_positions) == {"AAPL", "MSFT", "JPM", "KO", "XOM"}
    assert Decimal(venue_positions["MSFT"].qty) < 0
    assert all(Decimal(venue_positions[s].qty) > 0 for s in ("AAPL", "JPM", "KO", "XOM"))
    assert snap.trading_state is TradingState.ACTIVE and snap.bars_processed == 2

    # the engine's snapshot equals the venue
    assert set(snap.positions) == set(venue_positions)
    for symbol, vp in venue_positions.items():
        row = snap.positions[symbol]
        assert row.qty == Decimal(vp.qty), symbol
        assert row.avg_entry_price == Decimal(vp.avg_entry_price).quantize(Decimal("0.0001")), symbol

    pipe.stop()  # seal the journal; the report is the journal's word
    report = pipe.report()

    # the report's positions equal the venue's
    rpos = {p["symbol"]: p for p in report["positions"] if dec(p["qty"]) != 0}
    assert set(rpos) == set(venue_positions)
    for symbol, vp in venue_positions.items():
        assert dec(rpos[symbol]["qty"]) == Decimal(vp.qty), symbol
        assert dec(rpos[symbol]["avg_entry_price"]).quantize(Decimal("0.0001")) == Decimal(vp.avg_entry_price).quantize(
            Decimal("0.0001")
        ), symbol

    # every order the report says was sent is at the venue, field for field; nothing
    # is at the venue that the report does not know
    sent = {o["client_order_id"]: o for o in report["orders"] if o["venue_order_id"]}
    assert set(sent) == set(venue_orders)
    for cid, ro in sent.items():
        vo = venue_orders[cid]
        assert ro["venue_order_id"] == str(vo.id)
        assert ro["symbol"] == vo.symbol
        assert ro["side"] == vo.side.value
        assert dec(ro["qty"]) == Decimal(vo.qty)
        assert ro["status"] == vo.status.value == "filled"
        assert dec(ro["filled_qty"]) == Decimal(vo.filled_qty)
        assert dec(ro["filled_avg_price"]) == Decimal(vo.filled_avg_price)
        assert len(cid) <= 48

    # the fills add up to each order's filled quantity and average price
    by_order = defaultdict(list)
    for f in report["fills"]:
        by_order[f["client_order_id"]].append(f)
    assert set(by_order) == set(sent)
    for cid, fills in by_order.items():
        qty = sum(dec(f["qty"]) for f in fills)
        assert qty == dec(sent[cid]["filled_qty"])
        avg = sum(dec(f["qty"]) * dec(f["price"]) for f in fills) / qty
        assert abs(avg - dec(sent[cid]["filled_avg_price"])) < Decimal("0.0001")
        assert all(f["symbol"] == sent[cid]["symbol"] and f["side"] == sent[cid]["side"] for f in fills)

    # each order came from its bar's signal
    for ro in sent.values():
        bar = parse_ts(ro["bar_ts"])
        signals = BAR_1 if bar == bar1 else BAR_2
        assert bar in (bar1, bar2)
        assert ro["signal"] == signals[ro["symbol"]]
        assert ro["reason"] == "signal"
    assert not any(parse_ts(o["bar_ts"]) == bar2 and o["symbol"] == "JPM" for o in report["orders"]), (
        "a signal below the threshold holds the position"
    )

    summary = report["summary"]
    assert summary["batches"] == 2
    assert summary["orders_by_status"] == {"filled": len(sent)}
    assert summary["fills"] == len(report["fills"])
    assert summary["dropped_signals"] == 0
    [session] = report["sessions"]
    assert session["sealed"] is True


def test_the_report_command_prints_the_same_orders_as_json(traded):
    """`execdesk report --journal J --format json` on the journal of a finished session."""
    pipe, _, _ = traded
    pipe.stop()
    done = execdesk("report", "--journal", str(pipe.journal_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    built = pipe.report()
    key = lambda o: o["client_order_id"]  # noqa: E731
    fields = ("client_order_id", "symbol", "side", "qty", "status", "filled_qty", "filled_avg_price")
    assert [{f: o[f] for f in fields} for o in sorted(printed["orders"], key=key)] == [
        {f: o[f] for f in fields} for o in sorted(built["orders"], key=key)
    ]
    assert printed["positions"] == built["positions"]
    assert CREDENTIALS.secret_key not in done.stdout
