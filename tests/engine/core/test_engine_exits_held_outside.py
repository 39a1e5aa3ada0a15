"""A stop-loss exit and Flatten around an order the engine did not create (issue 15
follow-up): the engine against engine/sim through alpaca-py. The venue, like Alpaca,
holds a position's shares for every open order on the exit side and refuses a sell
of more than what is left ("insufficient qty available"). An exit must never be
refused for that: a stop closes what the external order leaves (the external order
is left alone, rule 6, and the event log says the position is reduced as far as the
venue allows); Flatten, whose cancel-all takes the external order too, sends what is
free now and the rest once that cancel is confirmed, and the venue ends flat."""

from __future__ import annotations

from decimal import Decimal

from engine import events as ev
from engine.commands import Flatten
from engine.model import Side
from tests.engine.core.enginekit import long_with_an_external_sell, venue_orders, venue_positions
from tests.engine.core.test_engine_reversal import resting_exit
from tests.support import wait_for

SYM = "AAPL"


def refusals(rig) -> list[ev.SubmitRejected]:
    return [
        e for e in rig.journal_events() if isinstance(e, ev.SubmitRejected) and "insufficient qty" in (e.message or "")
    ]


def texts(rig) -> list[str]:
    return [e.text for e in rig.snapshot.events]


def test_a_stop_exit_closes_what_an_external_sell_leaves_and_says_so(make_rig):
    rig = make_rig({"risk_management": {"stop_loss_pct": 0.02}, "monitoring": {"stop_check_interval": 0.25}})
    held, outside = long_with_an_external_sell(rig, SYM, "someone-else-exit-1")
    rig.venue.shock([SYM], -6.0)  # through the stop at -2 %
    wait_for(
        lambda: refusals(rig) or venue_positions(rig.trading).get(SYM, Decimal(0)) < held,
        timeout=15,
        what="the stop exit answered",
    )
    assert not refusals(rig), f"the engine sent a stop exit the venue could not fill: {refusals(rig)}"
    wait_for(
        lambda: venue_positions(rig.trading).get(SYM, Decimal(0)) == outside,
        timeout=15,
        what="the stop exit to close what the external order leaves",
    )
    wait_for(
        lambda: any(f"STOP in {SYM}" in t and "reduced as far as the venue allows" in t for t in texts(rig)),
        what="the event log to say the stop reduced the position as far as the venue allows",
    )
    # the external order is left alone, and nothing more is tried against its shares
    assert any(o.client_order_id == "someone-else-exit-1" for o in rig.engine.external.values())
    stops = [o for o in rig.engine.book.orders.values() if o.reason == "stop_loss"]
    assert [(o.side, o.qty, o.status.value) for o in stops] == [(Side.SELL, held - outside, "filled")]
    assert not refusals(rig)


def test_flatten_leaves_the_venue_flat_around_an_external_sell_whose_cancel_is_slow(make_rig):
    rig = make_rig()
    held, outside = long_with_an_external_sell(rig, SYM, "someone-else-exit-1")
    # the flatten's cancel-all takes the external order too, but the venue keeps it in
    # pending_cancel (holding its shares) past the flatten's first wait for the cancels
    rig.faults(pending_ms=6000, scope="trading")
    result = rig.session.execute_sync(Flatten(cause="test"), timeout=30)
    wait_for(lambda: refusals(rig) or not venue_positions(rig.trading), timeout=40, what="the venue to report flat")
    assert not refusals(rig), f"the engine sent a closing order the venue could not fill: {refusals(rig)}"
    assert result.ok, result.message
    # the first round sent what was free and named what the external order held
    assert f"sent once their cancels are confirmed: {SYM} {outside}" in result.message, result.message
    wait_for(
        lambda: any("FLATTEN (test): the venue reports flat" in t for t in texts(rig)),
        timeout=20,
        what="the flatten's follow-up to say the venue reports flat",
    )
    assert not refusals(rig), f"the engine sent a closing order the venue could not fill: {refusals(rig)}"
    assert held > outside > 0


def test_a_stop_cancels_the_engines_own_resting_reducing_sell_and_closes_the_whole_position(make_rig):
    """The engine's own reducing sell, left behind by the market, holds shares too (and
    the duplicate check denies a second sell while it works): the stop cancels it and,
    once the venue confirms, closes everything."""
    rig = make_rig({"risk_management": {"stop_loss_pct": 0.05}, "monitoring": {"stop_check_interval": 0.25}})
    rig.bar({SYM: 0.9})
    wait_for(lambda: venue_positions(rig.trading).get(SYM, Decimal(0)) > 1, what="a long position")
    resting = resting_exit(rig, 0.3, "sell")  # the price moved 3 % away from it
    rig.venue.shock([SYM], -6.0)  # through the stop at -5 %
    wait_for(lambda: not venue_positions(rig.trading), timeout=30, what="the stop to close the whole position")
    statuses = {o["client_order_id"]: o["status"] for o in venue_orders(rig.trading)}
    assert statuses[resting] == "canceled", statuses
    assert not refusals(rig), refusals(rig)
