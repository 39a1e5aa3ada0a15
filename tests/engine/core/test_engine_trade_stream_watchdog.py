"""The trade stream's watchdog, through alpaca-py against engine/sim: a trade stream
muted during fills (connected, answering pings, sending nothing: the updates of that
time are lost) is noticed once it owes an update (an order acked over REST, a cancel
asked), reconnected, and the fills are taken from REST, so that the journal has every
fill exactly once; a half-dead one (pings unanswered) is closed by the keepalive and
its connection hold waited out; a quiet stream with nothing owed is left alone.

The venue clock is frozen and every eligible fill is partial, so orders fill a piece
at a time, exactly when the test moves venue time."""

from __future__ import annotations

import time
from decimal import Decimal

from engine import events as ev
from tests.engine.core.enginekit import FINAL, venue_orders
from tests.support import wait_for

BIG = {"T": 1.0, "INTC": 1.0, "PFE": 1.0}  # cheap names: many shares, many pieces
WATCH = {"trade_update_timeout": 1.5, "fills_poll_interval": 1.0}
QUIET = {"order_reconciliation_interval": 300}  # only the watchdog's reads may find the fills


def events_with(rig, *words: str) -> list[str]:
    return [r.text for r in rig.snapshot.events if all(w in r.text for w in words)]


def journal_filled(rig) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for e in rig.journal_events():
        if isinstance(e, ev.FillApplied):
            out[e.fill.client_order_id] = out.get(e.fill.client_order_id, Decimal(0)) + e.fill.qty
    return out


def test_a_muted_trade_stream_during_fills_is_reconnected_and_every_fill_is_journaled_once(make_rig):
    rig = make_rig(
        {"position_sizing": {"max_position_size": 0.15}, "monitoring": QUIET, "market_data": WATCH},
        sim={"frozen_clock": True, "partial_fill_prob": 1.0},
    )
    rig.bar(BIG)
    wait_for(lambda: len(journal_filled(rig)) == 3, what="a first fill of each order, from the stream")
    first = dict(journal_filled(rig))

    rig.venue.mute_trade_stream(True)  # connected, answers pings, says nothing
    for _ in range(4):
        rig.venue.advance(0.5)  # more pieces fill: nobody hears of them
    # nothing is owed yet (every order was heard of): a quiet stream is not a fault
    time.sleep(WATCH["trade_update_timeout"] + 1.5)
    assert not events_with(rig, "trade stream silent"), "the watchdog took a quiet stream for a silent one"
    assert journal_filled(rig) == first

    # the next bar cancels what is left of the first and sends two new orders: the
    # stream owes their acknowledgements and the cancels' answers, and says nothing
    rig.bar({"KO": 0.5, "XOM": 0.5})
    wait_for(lambda: events_with(rig, "trade stream silent", "reconnecting"), what="the watchdog to reconnect")
    text = events_with(rig, "trade stream silent", "reconnecting")[0]
    assert "fills are read from REST" in text, text
    for _ in range(200):  # still muted after the reconnect: these pieces come from REST too
        if all(o["status"] in FINAL for o in venue_orders(rig.trading)):
            break
        rig.venue.advance(0.5)
    wait_for(
        lambda: (
            journal_filled(rig) == {o["client_order_id"]: Decimal(o["filled_qty"]) for o in venue_orders(rig.trading)}
        ),
        what="the journal's fills to catch up with the venue's while the stream stays silent",
    )
    assert rig.engine.trade_watch.restarts >= 1
    rig.venue.mute_trade_stream(False)

    c = rig.settle(timeout=60)
    assert c.ok, c
    assert all(o["status"] in FINAL for o in c.venue_orders), [o["status"] for o in c.venue_orders]
    assert len(c.venue_orders) == 5, [(o["symbol"], o["status"], o["denial_reason"]) for o in c.journal_orders.values()]
    # every fill exactly once: the venue's filled quantity of each order is the journal's
    for o in c.venue_orders:
        assert c.journal_orders[o["client_order_id"]]["filled_qty"] == o["filled_qty"], o["client_order_id"]
    assert len({f["execution_id"] for f in c.fills}) == len(c.fills)
    caught_up = [e for e in c.of(ev.FillApplied) if e.fill.execution_id.startswith("sync-")]
    assert caught_up, "no fill came from REST"
    triggers = {e.trigger for e in c.of(ev.ReconcileCompleted) if e.counts.get("fills")}
    assert triggers <= {"reconnect", "trade stream silent", "trade stream down"}, triggers
    # unmuted, the stream is up again (a reconnect may still be in its back-off: wait)
    wait_for(lambda: rig.snapshot.connectivity.trade_stream == "up", timeout=30, what="the trade stream up again")


def test_a_half_dead_trade_stream_is_closed_by_the_keepalive_and_the_hold_waited_out(make_rig):
    hold = 3.0
    rig = make_rig(
        {"market_data": {"stream_keepalive": 3, "connection_hold": hold}},
        sim={"frozen_clock": True, "connection_hold_seconds": hold},
    )
    rig.venue.mute_trade_stream(True, answer_pings=False)
    wait_for(lambda: events_with(rig, "trade stream DOWN"), what="the keepalive to give the socket up", timeout=20)
    down = events_with(rig, "trade stream DOWN")[0]
    assert "keepalive" in down or "ping" in down, down
    # Alpaca holds a half-dead connection: the reconnect is refused 406 and waited out
    wait_for(lambda: events_with(rig, "trade stream error 406"), what="the 406 in the event log", timeout=20)
    assert "waiting out the connection hold" in events_with(rig, "trade stream error 406")[0]
    rig.venue.mute_trade_stream(False, answer_pings=True)
    wait_for(
        lambda: events_with(rig, "trade stream UP (reconnected)"),
        what="the trade stream back after the hold",
        timeout=30,
    )
    assert len(events_with(rig, "trade stream error 406")) <= 2, events_with(rig, "406")
