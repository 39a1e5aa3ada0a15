"""The trade stream under faults: dropped in the middle of an order's fills
(no replay after a reconnect), and duplicated / reordered events.

The venue clock is frozen and every eligible fill is partial, so an order fills
a piece at a time, exactly when the test moves venue time: the stream can be
dropped between two pieces of the same order."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine import events as ev
from tests.engine.core.enginekit import FINAL
from tests.support import wait_for

#: cheap names: thousands of shares, so an order fills in many pieces
BIG = {"T": 1.0, "INTC": 1.0, "PFE": 1.0}


def venue_by_cid(rig) -> dict[str, dict]:
    from tests.engine.core.enginekit import venue_orders

    return {o["client_order_id"]: o for o in venue_orders(rig.trading)}


def journal_filled(rig) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for e in rig.journal_events():
        if isinstance(e, ev.FillApplied):
            out[e.fill.client_order_id] = out.get(e.fill.client_order_id, Decimal(0)) + e.fill.qty
    return out


@pytest.mark.parametrize("path", ["reconnect", "periodic"])
def test_stream_dropped_mid_fill_fills_are_applied_by_reconciliation(make_rig, path):
    # "reconnect": no periodic reconciliation in sight; the stream comes back and the
    # reconciliation after the reconnect must bring the missed fills.
    # "periodic": the stream stays down; the periodic reconciliation must.
    interval = 300 if path == "reconnect" else 1.5
    rig = make_rig(
        {"position_sizing": {"max_position_size": 0.3}, "monitoring": {"order_reconciliation_interval": interval}},
        sim={"frozen_clock": True, "partial_fill_prob": 1.0},
    )
    rig.bar(BIG)
    # the first piece of each order filled at submit, and the engine heard it on the stream
    wait_for(lambda: len(journal_filled(rig)) == 3, what="a first fill of each order, from the stream")
    seen = journal_filled(rig)
    venue = venue_by_cid(rig)
    assert all(venue[cid]["status"] == "partially_filled" for cid in seen), venue

    rig.faults(trade_stream_down=True, drop_trade_stream=True)
    wait_for(lambda: rig.snapshot.connectivity.trade_stream == "down", what="the trade stream down")
    # the rest fills while nobody listens
    for _ in range(200):
        venue = venue_by_cid(rig)
        if all(o["status"] == "filled" for o in venue.values()):
            break
        rig.venue.advance(0.5)
    assert all(o["status"] == "filled" for o in venue.values()), venue
    if path == "reconnect":
        # nothing told the engine yet: the stream was down, no reconciliation ran
        assert journal_filled(rig) == seen
        rig.faults(trade_stream_down=False)

    c = rig.settle(timeout=60)
    assert c.ok, c
    assert all(c.journal_orders[cid]["status"] == "filled" for cid in seen)
    caught_up = [e for e in c.of(ev.FillApplied) if e.fill.execution_id.startswith("sync-")]
    assert {e.fill.client_order_id for e in caught_up} == set(seen)
    triggers = [e.trigger for e in c.of(ev.ReconcileCompleted) if e.counts.get("fills")]
    assert triggers and set(triggers) == {path}, triggers


def test_duplicate_and_reordered_stream_events_count_each_fill_once(make_rig):
    # half the events sent twice, half swapped with the next one; nothing but the
    # stream (no periodic reconciliation) to tell the engine
    rig = make_rig(
        {"position_sizing": {"max_position_size": 0.2}, "monitoring": {"order_reconciliation_interval": 300}},
        sim={"frozen_clock": True, "partial_fill_prob": 0.7},
    )
    rig.faults(stream_duplicate=0.5, stream_reorder=0.5)
    rig.bar({"T": 0.9, "INTC": 0.8, "PFE": -0.9, "KO": 0.7, "XOM": -0.6, "JPM": 0.5})

    def bar_at_venue() -> bool:
        sent = {e.client_order_id for e in rig.journal_events() if isinstance(e, ev.SubmitSent)}
        return bool(sent) and sent <= set(venue_by_cid(rig))

    # the venue's clock moves the fills: only once every order is there (a loaded
    # machine can still have submits on the wire), or some would miss the partials
    wait_for(bar_at_venue, what="the first bar's orders at the venue")
    rig.venue.advance(0.5)
    # the next bar cancels what is still working: cancel events join the shuffle
    rig.venue.advance(1)
    rig.bar({"MSFT": 0.05})
    for _ in range(6):
        rig.venue.advance(0.5)
    c = rig.settle(timeout=60)
    assert c.ok, c
    before = rig.venue.state()["venue"]["events_emitted"]
    assert before >= 12
    assert all(o["status"] in FINAL for o in c.venue_orders), [o["status"] for o in c.venue_orders]
    assert {o["status"] for o in c.venue_orders} == {"filled", "canceled"}
    partly = [o for o in c.venue_orders if o["status"] == "canceled" and Decimal(o["filled_qty"]) > 0]
    assert partly, "no order was cancelled after part of it filled"
    # the stream alone got it right: no reconciliation had to catch a fill up
    assert not [e for e in c.of(ev.FillApplied) if e.fill.execution_id.startswith("sync-")]
