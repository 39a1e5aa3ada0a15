"""The approval gate end to end (rollout.default_mode = "approve", the shipped
default): intents wait; ApproveIntent sends the order to the venue, RejectIntent
does not; waiting intents expire after rollout.approval_timeout of venue time and at
the next bar; ApproveAll / RejectAll; approval re-runs the checks at current prices;
nothing is approved while HALTED. The venue is checked through alpaca-py."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

from engine.commands import ApproveAll, ApproveIntent, Halt, RejectAll, RejectIntent, Resume
from engine.model import TradingState


def intents_by_symbol(pipe) -> dict[str, str]:
    return {row.symbol: row.intent_id for row in pipe.snapshot.intents.values()}


def wait_intents(pipe, symbols) -> dict[str, str]:
    pipe.wait(
        lambda: set(intents_by_symbol(pipe)) == set(symbols), what=f"intents for {sorted(symbols)} to wait for approval"
    )
    return intents_by_symbol(pipe)


def test_intents_wait_approve_sends_and_reject_does_not(make_pipe):
    pipe = make_pipe()
    pipe.send({"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.3})
    ids = wait_intents(pipe, {"AAPL", "MSFT", "JPM"})
    assert pipe.eyes.orders() == [], "nothing leaves before an operator approves"
    row = pipe.snapshot.intents[ids["AAPL"]]
    assert row.side == "buy" and row.qty > 0 and row.verdict == "ok"
    assert row.expires_at == pipe.venue_now() + timedelta(seconds=pipe.settings.rollout.approval_timeout)

    result = pipe.execute(ApproveIntent(ids["AAPL"]))
    assert result.ok, result.message
    at_venue = pipe.wait(lambda: pipe.eyes.order(ids["AAPL"]), what="the approved order at the venue")
    assert at_venue.symbol == "AAPL" and at_venue.side.value == "buy" and Decimal(at_venue.qty) == row.qty

    result = pipe.execute(RejectIntent(ids["MSFT"]))
    assert result.ok, result.message
    pipe.wait(lambda: set(intents_by_symbol(pipe)) == {"JPM"}, what="only JPM to wait")
    assert pipe.eyes.order(ids["MSFT"]) is None, "a rejected intent never reaches the venue"

    # neither can be decided twice
    assert not pipe.execute(ApproveIntent(ids["MSFT"])).ok
    assert not pipe.execute(ApproveIntent(ids["AAPL"])).ok
    assert not pipe.execute(ApproveIntent("no-such-intent")).ok

    pipe.wait(lambda: "AAPL" in pipe.eyes.positions(), what="the AAPL fill at the venue")
    pipe.wait(lambda: "AAPL" in pipe.snapshot.positions, what="the AAPL fill in the engine")
    assert {o.client_order_id for o in pipe.eyes.orders()} == {ids["AAPL"]}
    approvals = pipe.report()["summary"]["approvals"]
    assert approvals == {"requested": 3, "approved": 1, "rejected": 1, "expired": 0}


def test_waiting_intents_expire_after_the_approval_timeout_of_venue_time(make_pipe):
    pipe = make_pipe(rollout={"approval_timeout": 30})
    bar = pipe.send({"AAPL": 0.5, "MSFT": -0.4})
    ids = wait_intents(pipe, {"AAPL", "MSFT"})
    start = pipe.venue_now()
    for row in pipe.snapshot.intents.values():
        assert row.expires_at == start + timedelta(seconds=30), (row.expires_at, start, bar)

    # 10 venue seconds later they still wait (the venue clock is frozen otherwise)
    pipe.venue.advance(10)
    pipe.wait(
        lambda: pipe.snapshot.venue_time >= start + timedelta(seconds=10), what="the engine to see the venue clock move"
    )
    time.sleep(1.5)  # a few of the engine's one-second ticks
    assert set(intents_by_symbol(pipe)) == {"AAPL", "MSFT"}

    # past the timeout they expire without any new bar
    pipe.venue.advance(21)
    pipe.wait(lambda: not pipe.snapshot.intents, what="the intents to expire on the venue clock")
    assert pipe.snapshot.bars_processed == 1
    expired = [e for e in pipe.snapshot.events if e.kind == "denial" and "expired" in e.text.lower()]
    assert {e.symbol for e in expired} == {"AAPL", "MSFT"}
    assert all("no approval in time" in e.text for e in expired)

    for cid in ids.values():
        assert not pipe.execute(ApproveIntent(cid)).ok, "an expired intent cannot be approved"
        assert pipe.eyes.order(cid) is None
    assert pipe.eyes.orders() == []
    assert pipe.report()["summary"]["approvals"]["expired"] == 2


def test_waiting_intents_expire_at_the_next_bar(make_pipe):
    pipe = make_pipe()  # approval_timeout 60 s: longer than the next bar is in coming
    pipe.send({"AAPL": 0.5, "MSFT": -0.4})
    first = wait_intents(pipe, {"AAPL", "MSFT"})

    pipe.send({"JPM": 0.3})
    second = wait_intents(pipe, {"JPM"})
    assert not set(first.values()) & set(second.values())
    expired = [e for e in pipe.snapshot.events if e.kind == "denial" and "expired" in e.text.lower()]
    assert {e.symbol for e in expired} == {"AAPL", "MSFT"}
    assert all("(next bar)" in e.text for e in expired)

    for cid in first.values():
        assert not pipe.execute(ApproveIntent(cid)).ok
    assert pipe.execute(ApproveIntent(second["JPM"])).ok
    pipe.wait(lambda: pipe.eyes.order(second["JPM"]) is not None, what="the JPM order at the venue")
    assert {o.symbol for o in pipe.eyes.orders()} == {"JPM"}
    approvals = pipe.report()["summary"]["approvals"]
    assert approvals == {"requested": 3, "approved": 1, "rejected": 0, "expired": 2}


def test_approve_all_sends_every_intent_and_reject_all_none(make_pipe):
    pipe = make_pipe()
    pipe.send({"AAPL": 0.5, "MSFT": -0.4, "JPM": 0.3})
    first = wait_intents(pipe, {"AAPL", "MSFT", "JPM"})
    result = pipe.execute(ApproveAll())
    assert result.ok and result.count == 3, result.message
    pipe.wait(
        lambda: set(first.values()) <= set(pipe.eyes.orders_by_client_id()), what="every approved order at the venue"
    )
    pipe.wait_settled()
    assert set(pipe.eyes.positions()) == {"AAPL", "MSFT", "JPM"}

    pipe.send({"KO": 0.4, "XOM": 0.4, "PG": -0.3})
    second = wait_intents(pipe, {"KO", "XOM", "PG"})
    result = pipe.execute(RejectAll())
    assert result.ok and result.count == 3, result.message
    pipe.wait(lambda: not pipe.snapshot.intents, what="the queue to empty")
    venue = pipe.eyes.orders_by_client_id()
    assert set(venue) == set(first.values()), "rejected intents never reach the venue"
    assert not set(second.values()) & set(venue)
    assert {"KO", "XOM", "PG"}.isdisjoint(pipe.eyes.positions())


def test_approval_rechecks_the_risk_at_current_prices(make_pipe):
    pipe = make_pipe()
    pipe.send({"AAPL": 0.5, "JPM": 0.3})
    ids = wait_intents(pipe, {"AAPL", "JPM"})
    limit = pipe.snapshot.intents[ids["AAPL"]].limit_price

    pipe.venue.shock(["AAPL"], 8)  # the market runs away from the intent's limit
    quotes = pipe.session.engine.market_view()
    pipe.wait(
        lambda: "AAPL" in quotes.quotes() and quotes.quotes()["AAPL"].ask > limit * Decimal("1.05"),
        what="the engine to see the new AAPL quote",
    )

    result = pipe.execute(ApproveIntent(ids["AAPL"]))
    assert not result.ok and "denied at current prices" in result.message, result.message
    assert pipe.eyes.order(ids["AAPL"]) is None
    assert pipe.execute(ApproveIntent(ids["JPM"])).ok, "the other intent is unaffected"
    pipe.wait(lambda: pipe.eyes.order(ids["JPM"]) is not None, what="the JPM order at the venue")
    denial = {d["client_order_id"]: d for d in pipe.report()["denials"]}[ids["AAPL"]]
    assert denial["reason"] == "PRICE_OUTSIDE_COLLAR", denial


def test_nothing_is_approved_while_halted(make_pipe):
    pipe = make_pipe()
    pipe.send({"AAPL": 0.5, "MSFT": -0.4})
    ids = wait_intents(pipe, {"AAPL", "MSFT"})

    assert pipe.execute(Halt()).ok
    pipe.wait(lambda: pipe.snapshot.trading_state is TradingState.HALTED, what="HALTED")
    for cid in ids.values():
        result = pipe.execute(ApproveIntent(cid))
        assert not result.ok and "HALTED" in result.message, result.message
    result = pipe.execute(ApproveAll())
    assert not result.ok and "HALTED" in result.message, result.message

    # a bar while HALTED queues nothing that could be approved later
    pipe.send({"JPM": 0.3})
    assert not pipe.snapshot.intents
    assert not pipe.execute(ApproveAll()).ok
    assert pipe.eyes.orders() == []

    assert pipe.execute(Resume()).ok
    pipe.wait(lambda: pipe.snapshot.trading_state is TradingState.ACTIVE, what="ACTIVE")
    pipe.send({"JPM": 0.4})
    [jpm] = wait_intents(pipe, {"JPM"}).values()
    assert pipe.execute(ApproveIntent(jpm)).ok
    pipe.wait(lambda: pipe.eyes.order(jpm) is not None, what="the JPM order at the venue after resume")
    assert {o.client_order_id for o in pipe.eyes.orders()} == {jpm}
