"""A buy/sell flip while a cancel is in flight (issue 15 §3): the engine against
engine/sim through alpaca-py. Alpaca refuses a sell larger than the position less
what open sell orders hold ("insufficient qty available"); the sim refuses alike.
The engine must never send such an order: while the previous bar's order is being
cancelled (the venue keeps it in pending_cancel), its quantity still holds shares,
so the flip sells at most what is free, or waits for the cancel's answer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest

from engine import events as ev
from tests.engine.core.enginekit import KEY, SECRET, long_with_an_external_sell, venue_orders, venue_positions
from tests.support import wait_for

SYM = "AAPL"


def rejected(rig) -> list[ev.SubmitRejected]:
    return [e for e in rig.journal_events() if isinstance(e, ev.SubmitRejected)]


def resting_exit(rig, signal: float, side: str) -> str:
    """A reducing order for part of the position, resting at the venue (the price moves
    away from it before the slow venue gets to it)."""
    rig.faults(latency_ms=1500, scope="trading")
    before = {e.client_order_id for e in rig.journal_events() if isinstance(e, ev.SubmitSent)}
    rig.signals.send({SYM: signal})
    wait_for(
        lambda: any(isinstance(e, ev.SubmitSent) and e.client_order_id not in before for e in rig.journal_events()),
        timeout=30,
        every=0.01,
        what="the reducing order journaled",
    )
    rig.venue.shock([SYM], -3.0 if side == "sell" else 3.0)
    book = rig.engine.portfolio.books[SYM]
    wait_for(lambda: (book.sell_open if side == "sell" else book.buy_open) > 0, what="the reducing order working")
    rig.clear_faults()
    c = rig.settle()
    assert c.ok, c
    resting = [o for o in c.venue_orders if o["side"] == side and o["status"] == "new"]
    assert len(resting) == 1, [(o["side"], o["status"]) for o in c.venue_orders]
    return resting[0]["client_order_id"]


def test_the_sim_refuses_a_sell_of_shares_held_by_an_open_sell_like_alpaca(make_rig):
    rig = make_rig()
    rig.bar({SYM: 0.9})
    wait_for(lambda: venue_positions(rig.trading).get(SYM, Decimal(0)) > 0, what="a long position")
    resting_exit(rig, 0.3, "sell")
    held = venue_positions(rig.trading)[SYM]
    client = TradingClient(KEY, SECRET, paper=True, url_override=rig.venue.trading_url)
    bid = rig.engine.portfolio.books[SYM].bid
    with pytest.raises(APIError) as err:
        client.submit_order(
            LimitOrderRequest(
                symbol=SYM,
                qty=float(held),
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                limit_price=float((bid * Decimal("0.98")).quantize(Decimal("0.01"))),
                client_order_id="reversal-probe-1",
            )
        )
    assert "insufficient qty available" in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("open_", "reduce", "flip", "side"), [(0.9, 0.3, -0.9, "sell"), (-0.9, -0.3, 0.9, "buy")], ids=["long", "short"]
)
def test_a_flip_during_a_pending_cancel_never_trades_shares_the_open_exit_holds(make_rig, open_, reduce, flip, side):
    rig = make_rig()
    sign = 1 if open_ > 0 else -1
    rig.bar({SYM: open_})
    wait_for(lambda: sign * venue_positions(rig.trading).get(SYM, Decimal(0)) > 0, what="a position")
    resting = resting_exit(rig, reduce, side)
    rig.faults(pending_ms=1500, scope="trading")  # the cancel sits in pending_cancel for 1.5 s
    for _ in range(3):  # flips while the cancel is in flight: nothing more may be traded yet
        rig.bar({SYM: flip})
    wait_for(
        lambda: {o["client_order_id"]: o["status"] for o in venue_orders(rig.trading)}[resting] == "canceled",
        timeout=15,
        what="the venue's cancel",
    )
    rig.bar({SYM: flip})  # the cancel answered: the whole position is free to close
    c = rig.settle()
    assert c.ok, c
    refused = [e for e in rejected(rig) if "insufficient qty" in (e.message or "")]
    assert not refused, f"the engine sent an order the venue could not fill: {refused}"
    wait_for(
        lambda: sign * venue_positions(rig.trading).get(SYM, Decimal(0)) <= 0,
        timeout=15,
        what="the flip to close the position",
    )


def test_a_flip_sells_only_what_an_external_open_sell_leaves_available(make_rig):
    """An order at the venue the engine did not create (rule 6: shown, left alone)
    holds shares too: the flip sells what is left, and the venue takes it."""
    rig = make_rig()
    # someone else's sell, far above the market: it rests and holds shares
    held, outside = long_with_an_external_sell(rig, SYM, "someone-else-1")
    rig.bar({SYM: -0.9})
    wait_for(
        lambda: rejected(rig) or venue_positions(rig.trading).get(SYM, Decimal(0)) < held,
        timeout=15,
        what="the flip's sell answered",
    )
    refused = [e for e in rejected(rig) if "insufficient qty" in (e.message or "")]
    assert not refused, f"the engine sent a sell the venue could not fill: {refused}"
    wait_for(
        lambda: venue_positions(rig.trading).get(SYM, Decimal(0)) == outside,
        timeout=15,
        what="the engine's sell of what the external order leaves",
    )
