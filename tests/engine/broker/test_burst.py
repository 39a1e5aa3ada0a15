"""A whole batch of submits against the venue's budget (issue 15 §2), AlpacaBroker on
alpaca-py against engine/sim: with 53 requests allowed on the wire at once, a burst
larger than what X-Ratelimit-Remaining says is left (another client spent part of
the account's budget) never buys a 429; what does not
fit waits in the limiter, and a cancel (the kill switch's kind) still goes out."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from alpaca.trading.client import TradingClient

from engine.broker.base import RequestFailed, SubmitRequest
from tests.support import wait_for_async

from .conftest import KEY, SECRET, Venue, broker_settings, count_posts, make_broker

BUDGET = 20  # the venue's requests per minute in this test
BURST = 40
OTHERS = 8  # requests someone else made on the account first: only the venue's headers say so


def _away_from_the_minute_boundary() -> None:
    """The venue counts per clock minute: keep the test's requests inside one."""
    second = time.time() % 60
    if second > 40:
        time.sleep(60.2 - second)


async def test_a_burst_beyond_the_venues_remaining_budget_waits_instead_of_buying_429s(events):
    venue = Venue(seed=21, rate_limit_per_minute=None)
    broker = make_broker(venue, broker_settings(workers=53))
    broker._emit_fn = events
    posts = count_posts(broker)
    try:
        _away_from_the_minute_boundary()
        venue.set_faults(rate_limit_per_minute=BUDGET)
        other = TradingClient(KEY, SECRET, url_override=venue.trading_url)  # the account's other user
        for _ in range(OTHERS):
            other.get_clock()
        await broker.account()  # the venue's headers: its limit and what is left of it
        sent = [
            asyncio.create_task(
                broker.submit(
                    SubmitRequest(
                        f"burst-{i}-{uuid.uuid4().hex[:8]}", "AAPL", "buy", Decimal(1), "limit", "day", Decimal("1.00")
                    )
                )
            )
            for i in range(BURST)
        ]
        await wait_for_async(
            lambda: sum(t.done() for t in sent) + broker.limiter.state().waiting.get("submit", 0) >= BURST,
            timeout=10,
            what="every submit of the burst answered or waiting",
            every=0.01,
        )
        answered = [t.result() for t in sent if t.done()]
        waiting = broker.limiter.state().waiting.get("submit", 0)
        assert answered and waiting, f"{len(answered)} answered, {waiting} waiting: the burst should not fit"
        assert {o.kind.value for o in answered} == {"acked"}, [o.message for o in answered if o.kind != "acked"]
        # what the venue said was left, less the reserve kept for cancels
        assert posts[0] == len(answered) <= BUDGET - OTHERS - 1, (posts[0], len(answered))
        # the last permits are the cancels': the kill switch's request still leaves at once
        cancel_all = await asyncio.wait_for(broker.cancel_all(), 5)
        assert cancel_all.ok, cancel_all.message
        failures = [e.detail for e in events.of(RequestFailed) if not e.ok]
        assert not any("429" in d for d in failures), failures
        for t in sent:
            t.cancel()
        await asyncio.gather(*sent, return_exceptions=True)
        assert posts[0] == len(answered), "a submit still waiting when cancelled is never sent"
    finally:
        await broker.stop()
        venue.stop()
