"""Submits under venue faults, end to end (Engine -> AlpacaBroker -> alpaca-py ->
engine/sim): HTTP 500/503/504, timeouts, and "accept then lose the response".

In each: every client_order_id reaches the venue at most once and is POSTed at
most once, an unknown outcome is settled by lookup (found: acked; never there:
rejected), and once the faults stop the journal and the venue agree order by
order, fill by fill, position by position."""

from __future__ import annotations

import pytest

from engine import events as ev
from tests.support import wait_for

BARS = [
    {"AAPL": 0.9, "MSFT": -0.8, "JPM": 0.7, "XOM": 0.6},
    {"KO": 0.9, "PFE": -0.7, "INTC": 0.8, "T": 0.6},
    # smaller and larger positions, never across zero (Alpaca refuses one order
    # that turns a long into a short: "insufficient qty available")
    {"AAPL": 0.3, "MSFT": -0.3, "KO": 0.4, "T": 0.95},
]


def unknown_then(c, cid: str) -> list[str]:
    """The journal's submit story of one order, in order."""
    kinds = (ev.SubmitSent, ev.SubmitUnknown, ev.SubmitAcked, ev.SubmitRejected)
    return [type(e).__name__ for e in c.events if isinstance(e, kinds) and e.client_order_id == cid]


def test_5xx_on_submit_are_settled_by_lookup_never_resent(make_rig):
    rig = make_rig()
    # three in four trading requests fail before any effect: submits, lookups and
    # reconciliations alike
    rig.faults(http_500=0.25, http_503=0.25, http_504=0.25, scope="trading")
    for signals in BARS:
        rig.bar(signals)
    wait_for(
        lambda: any(isinstance(e, ev.SubmitUnknown) for e in rig.journal_events()),
        what="a submit whose outcome the faults made unknown",
    )
    rig.clear_faults()

    c = rig.settle()
    assert c.ok, c
    sent = [e.client_order_id for e in c.of(ev.SubmitSent)]
    assert len(sent) >= 8
    unknown = [e.client_order_id for e in c.of(ev.SubmitUnknown)]
    assert unknown, "the faults never hit a submit"
    at_venue = {o["client_order_id"] for o in c.venue_orders}
    for cid in unknown:
        story = unknown_then(c, cid)
        # a 5xx here comes before any effect: the lookup says "not there", after patience
        assert story[:2] == ["SubmitSent", "SubmitUnknown"], story
        if cid in at_venue:  # found (by lookup or by the stream), never declared absent
            assert "SubmitRejected" not in story, (cid, story)
        else:
            assert story[-1] == "SubmitRejected", (cid, story)
    assert max(rig.posts.by_cid.values()) == 1
    assert set(rig.posts.by_cid) == set(sent)


def test_timeouts_on_submit_land_at_the_venue_and_are_found_by_lookup(make_rig):
    # the venue takes 1.6 s per trading request; the broker gives up after 1 s,
    # but the venue still does the work: every submit lands, every answer is lost
    rig = make_rig({"broker": {"request_timeout": 1.0}})
    rig.faults(latency_ms=1600, scope="trading")
    rig.bar(BARS[0])
    wait_for(
        lambda: len([e for e in rig.journal_events() if isinstance(e, ev.SubmitUnknown)]) >= 4,
        what="four submits timed out",
    )
    wait_for(lambda: rig.venue.state()["venue"]["orders_total"] >= 4, what="the four orders at the venue")
    rig.clear_faults()

    c = rig.settle()
    assert c.ok, c
    assert len(c.venue_orders) == 4
    for o in c.venue_orders:
        story = unknown_then(c, o["client_order_id"])
        assert story[:2] == ["SubmitSent", "SubmitUnknown"], story
        # found again (by lookup, or by the trade stream's news of it), never declared absent
        assert "SubmitRejected" not in story, story
    assert sorted(rig.posts.by_cid.values()) == [1, 1, 1, 1]


@pytest.mark.parametrize("mode", ["drop", "504"])
def test_accept_then_lose_the_response(make_rig, mode):
    # every order request is processed by the venue, then its answer is lost: the
    # connection closed ("drop") or a 504 sent after the effect. The trade stream is
    # down and periodic reconciliation far away, so only the lookup can tell.
    rig = make_rig({"monitoring": {"order_reconciliation_interval": 300}})
    rig.faults(trade_stream_down=True, drop_trade_stream=True)
    wait_for(lambda: rig.snapshot.connectivity.trade_stream == "down", what="the trade stream down")
    rig.faults(lose_response=1.0, lose_response_mode=mode, scope="trading")
    rig.bar(BARS[0])
    wait_for(lambda: rig.venue.state()["venue"]["orders_total"] >= 4, what="the four orders at the venue")
    c = rig.settle()
    assert c.ok, c
    assert len(c.venue_orders) == 4
    for o in c.venue_orders:
        assert unknown_then(c, o["client_order_id"]) == ["SubmitSent", "SubmitUnknown", "SubmitAcked"]
    assert sorted(rig.posts.by_cid.values()) == [1, 1, 1, 1]

    # the stream back, more bars through the same fault: news now comes from the
    # stream and the lookups alike, in any order — still nothing twice
    rig.faults(trade_stream_down=False)
    wait_for(lambda: rig.snapshot.connectivity.trade_stream == "up", what="the trade stream back")
    rig.bar(BARS[1])
    rig.bar(BARS[2])
    c = rig.settle()
    rig.clear_faults()
    assert c.ok, c
    assert len(c.of(ev.SubmitSent)) == len(c.venue_orders) >= 10
    assert not c.of(ev.SubmitRejected)
