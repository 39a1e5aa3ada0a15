"""A 429 storm: another client on the same account has used the venue's budget
(Alpaca counts requests per account), and the venue's limit is low. The engine
must back off (visibly), never send an order twice, and converge once the
venue's window resets.

The venue counts in fixed windows (Alpaca's are one minute; this drill shortens
them to 20 s, which changes nothing the engine does: it reads the window's end from
X-Ratelimit-Reset) and the engine waits out the window it was told about, so this
test lasts until the next window boundary at most."""

from __future__ import annotations

import time

import requests

from engine import events as ev
from tests.engine.core.enginekit import KEY, SECRET
from tests.support import wait_for

WINDOW = 20  # seconds: the venue's rate-limit window in this drill
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


def test_429_storm_backs_off_and_converges_without_duplicates(make_rig):
    # the engine's own budget Alpaca's default; of its periodic trading requests only
    # the clock's (every 5 s) comes during the drill: reconciliation, positions and
    # account are hours apart here (see the storm below)
    rig = make_rig(
        {
            "broker": {"rate_limit_per_minute": 190},
            "monitoring": {
                "order_reconciliation_interval": 3600,
                "position_update_interval": 3600,
                "risk_check_interval": 3600,
            },
        }
    )
    rig.faults(rate_limit_per_minute=40, rate_limit_window_seconds=WINDOW)
    trading_calls: list[float] = []  # when each of the engine's trading requests left

    def on_request(name: str) -> None:
        if not name.startswith("get_stock"):  # market data has its own budget
            trading_calls.append(time.monotonic())

    rig.engine.broker.observe_requests(on_request)

    def submits() -> list[ev.SubmitSent]:
        return [e for e in rig.journal_events() if isinstance(e, ev.SubmitSent)]

    def settled() -> bool:
        book = rig.engine.book
        return all(
            book.get(e.client_order_id).status.is_final or book.get(e.client_order_id).venue_order_id for e in submits()
        )

    def throttled_cids() -> set[str]:
        return {
            e.client_order_id
            for e in rig.journal_events()
            if isinstance(e, ev.SubmitUnknown) and "rate limited (429)" in e.cause
        }

    # The engine learns that the window is spent only from a trading answer of its own:
    # when one of its polls lands between the other client's burst and the bar's
    # submits, it holds the submits until the window's end and none of them is refused
    # — right, but then this bar did not test a 429. So the burst comes right after one
    # of the engine's clock polls (the next is 5 s away, far more than the bar needs
    # to reach its submits); should a poll still come first on a loaded machine, a
    # storm is tried again with another bar, at most three times.
    # (every symbol in the rig's allowlist, enginekit.SYMBOLS; the third bar reverses the first)
    bars = (
        {"AAPL": 0.9, "MSFT": -0.8, "JPM": 0.7, "XOM": 0.6},
        {"KO": 0.9, "PFE": -0.8, "INTC": 0.7, "T": 0.6},
        {"AAPL": -0.9, "MSFT": 0.8, "JPM": -0.7, "XOM": -0.6},
    )
    for bar in bars:
        # start early in a window, so that the storm still holds when the bar's submits go out
        into = time.time() % WINDOW
        if into > WINDOW / 5:
            time.sleep(WINDOW - into)
        # right after one of the engine's trading requests (its clock poll)
        calls = len(trading_calls)
        wait_for(lambda n=calls: len(trading_calls) > n, timeout=15, what="the engine's next clock poll")
        time.sleep(0.2)  # its answer back first (the burst must not be what answers it)
        # the other client: uses up the window
        for _ in range(60):
            r = requests.get(rig.venue.trading_url + "/v2/clock", headers=HEADERS, timeout=10)
            if r.status_code == 429:
                break
        assert r.status_code == 429
        expected = len(submits()) + len(bar)
        rig.signals.send(bar)
        wait_for(lambda: rig.snapshot.connectivity.rate_limited, what="the engine to show the rate limit")
        wait_for(lambda n=expected: len(submits()) == n, what="the bar's four submits journaled")
        if throttled_cids():
            break
        # the hold ends with the window; the next storm starts once this bar is answered
        wait_for(settled, timeout=3 * WINDOW, what="the bar's submits answered after the hold")
    # the storm passes: Alpaca's own 200/minute again (and its headers say so); the
    # engine still waits out the window it was told about
    rig.faults(rate_limit_per_minute=200)

    wait_for(settled, timeout=150, what="every submit settled")
    c = rig.settle(every=2.0)
    assert c.ok, c
    # a submit answered 429 was not processed by the venue: it is looked up, found
    # absent, and only then sent again under the same client_order_id — so every
    # order of the bar reaches the venue, each exactly once
    assert len(c.venue_orders) == len({e.client_order_id for e in submits()}) and not c.of(ev.SubmitRejected)
    throttled = {e.client_order_id for e in c.of(ev.SubmitUnknown) if "rate limited (429)" in e.cause}
    resent = {e.client_order_id for e in c.of(ev.SubmitUnknown) if e.cause.startswith("sending again after 429")}
    assert throttled, "the storm refused no submit: the test did not test a 429"
    assert resent <= throttled
    for cid, posts in rig.posts.by_cid.items():
        assert posts == 1 + sum(
            1 for e in c.of(ev.SubmitUnknown) if e.client_order_id == cid and e.cause.startswith("sending again")
        ), cid
    wait_for(lambda: not rig.snapshot.connectivity.rate_limited, what="the rate limit shown as cleared")
