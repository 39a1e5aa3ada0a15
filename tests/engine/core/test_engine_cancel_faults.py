"""Cancels under venue faults: HTTP 500/503/504, lost answers and timeouts on
DELETE /v2/orders/{id}, and the kill switch's cancel-all under the same.

Resting orders are made for real: the venue is slow (latency) while the engine
submits marketable limits, and in that window the test moves the venue's price
up 3%, so the orders arrive below the ask and rest. The venue clock is frozen
afterwards, so they stay resting until cancelled."""

from __future__ import annotations

import pytest

from engine import events as ev
from engine.commands import CancelOrder, Halt
from tests.engine.core.enginekit import venue_orders
from tests.support import wait_for

BUYS = {"AAPL": 0.9, "JPM": 0.7, "XOM": 0.6, "KO": 0.9}


def resting_orders(rig) -> list[str]:
    """Four buy orders resting at the venue (status new); returns their client ids."""
    rig.faults(latency_ms=1500, scope="trading")
    rig.signals.send(BUYS)
    wait_for(
        lambda: len([e for e in rig.journal_events() if isinstance(e, ev.SubmitSent)]) >= 4,
        timeout=30,
        every=0.01,
        what="four submits journaled",
    )
    rig.venue.shock(list(BUYS), 3.0)  # before the slow venue gets to them
    wait_for(lambda: rig.venue.state()["venue"]["orders_total"] >= 4, what="the orders at the venue")
    rig.clear_faults()
    c = rig.settle()
    assert c.ok, c
    resting = [o["client_order_id"] for o in c.venue_orders if o["status"] == "new"]
    assert len(resting) == 4, [(o["symbol"], o["status"]) for o in c.venue_orders]
    return resting


def venue_statuses(rig) -> dict[str, str]:
    return {o["client_order_id"]: o["status"] for o in venue_orders(rig.trading)}


CANCEL_FAULTS = {
    "5xx": {"http_500": 0.3, "http_503": 0.3, "http_504": 0.3, "scope": "trading"},
    "lost-answer": {"lose_response": 1.0, "lose_response_mode": "drop", "scope": "trading"},
    "timeout": {"latency_ms": 1600, "scope": "trading"},  # > request_timeout: answers never arrive in time
}


@pytest.mark.parametrize("how", ["operator", "next-bar"])
@pytest.mark.parametrize("fault", list(CANCEL_FAULTS))
def test_cancels_under_faults_end_canceled_and_the_journal_agrees(make_rig, fault, how):
    rig = make_rig({"broker": {"request_timeout": 1.0}}, sim={"frozen_clock": True})
    cids = resting_orders(rig)

    rig.faults(**CANCEL_FAULTS[fault])
    if how == "operator":
        for cid in cids:
            assert rig.session.execute_sync(CancelOrder(cid)).ok
    else:  # unfilled_policy = "cancel": the next bar cancels what the last one left working
        rig.venue.advance(1)
        rig.signals.send({"MSFT": 0.05})  # below the signal threshold: no new order
    wait_for(
        lambda: len({e.client_order_id for e in rig.journal_events() if isinstance(e, ev.CancelRequested)}) >= 4,
        what="four cancels requested",
    )
    if fault == "5xx":  # (a lost answer or a timeout may be overtaken by the stream's news)
        wait_for(
            lambda: any(f"cancel of {cid}: outcome unknown" in e.text for e in rig.snapshot.events for cid in cids),
            what="a cancel whose outcome the fault made unknown",
        )
    rig.clear_faults()

    # the engine meant all four cancelled: the venue must end with them cancelled
    # (a cancel whose outcome was unknown is asked again), and the journal must agree
    wait_for(
        lambda: all(venue_statuses(rig).get(cid) == "canceled" for cid in cids),
        timeout=45,
        what=f"the four orders cancelled at the venue: {venue_statuses(rig)}",
    )
    c = rig.settle()
    assert c.ok, c
    assert {c.journal_orders[cid]["status"] for cid in cids} == {"canceled"}


def test_kill_switch_cancel_all_under_5xx_is_retried_and_confirmed(make_rig):
    rig = make_rig({"broker": {"request_timeout": 1.0}}, sim={"frozen_clock": True})
    cids = resting_orders(rig)
    rig.faults(http_503=1.0, scope="trading")  # the venue refuses everything at first
    assert rig.session.execute_sync(Halt("drill")).ok
    assert rig.snapshot.trading_state.value == "HALTED"  # at once, whatever the venue does
    wait_for(lambda: any("cancel-all failed" in e.text for e in rig.snapshot.events), what="a failed cancel-all")
    rig.faults(http_500=0.2, http_503=0.2, http_504=0.2, scope="trading")  # then it is merely sick
    wait_for(
        lambda: rig.snapshot.kill_switch.phase in ("sent", "confirmed"),
        timeout=60,
        what=f"the venue to take the cancel-all (kill switch {rig.snapshot.kill_switch})",
    )
    rig.clear_faults()
    wait_for(
        lambda: rig.snapshot.kill_switch.phase == "confirmed",
        timeout=60,
        what=f"the venue to confirm the cancels (kill switch {rig.snapshot.kill_switch})",
    )
    assert all(venue_statuses(rig)[cid] == "canceled" for cid in cids)
    c = rig.settle()
    assert c.ok, c
    assert rig.snapshot.trading_state.value == "HALTED"
