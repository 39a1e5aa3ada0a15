"""Issue 15 §3: the trade-update path keeps up with 53 fills arriving at once
without delaying the next command.

A real Session on the built-in venue (in process, alpaca-py between them): 53
positions are bought at the open, the venue's clock moves past the close, Flatten
sends 53 sells that rest at the venue (accepted, market closed), then the clock
moves to the next open and the venue fills all 53 at once: 53 fill trade updates
arrive over the stream in one burst. When the engine handles the first of them,
the test holds the engine's loop until the stream has delivered the other 52 (so
they are queued before the command), then sends a command (RejectAll) the way
any front end does (Session.execute_here on the engine's loop). The command must
be answered before the burst is worked off: an engine that took its inbox first
in, first out would answer it after all 53 fills."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from decimal import Decimal

from engine import events as ev
from engine.broker.base import TradeUpdate
from engine.commands import Flatten, RejectAll
from engine.config import Credentials
from engine.core import messages as msg
from engine.journal import Journal
from engine.signals import SignalBatch
from tests.support import wait_for
from tests.support.settings import shipped_settings

CREDS = Credentials(key_id="PKFILLBURST00001", secret_key="fill-burst-secret-000001")
#: Monday 2 March 2026, 10:00 New York: the regular session is open (venue clock frozen)
START_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
BURST = 53


def _settings():
    return shipped_settings(
        # limits far through the quote, so every sell of the flatten is still marketable at the next open
        order_management={"max_orders_per_bar": 100, "unfilled_policy": "keep", "limit_price_offset": 0.09},
        rollout={"default_mode": "auto"},
        position_sizing={"max_position_size": 0.0003, "max_total_exposure": 4.0},
        risk_management={
            "max_sector_exposure": 1.0,
            "max_orders_per_second": 10_000,
            "max_orders_per_minute": 600_000,
            "max_quote_age": 86_400,
            "price_collar_pct": 0.5,
            "exit_price_collar_pct": 0.3,
        },
        broker={"rate_limit_per_minute": 100_000},
    )


def _on_loop(session, coro, timeout: float = 60.0):
    return asyncio.run_coroutine_threadsafe(coro, session._loop).result(timeout)  # noqa: SLF001


class BurstProbe:
    """Counts the fill trade updates the stream posts and the engine handles, and
    the fills handled when the command was."""

    def __init__(self, session) -> None:
        self.session = session
        eng = self.eng = session.engine
        self.posted = 0
        self.handled = 0
        self.all_posted = threading.Event()
        self.handled_at_command: int | None = None
        self.posted_at_command: int | None = None
        self.answer: Future | None = None
        broker = eng.broker
        post, on_update, on_command = broker._emit_fn, eng.handlers[TradeUpdate], eng.handlers[msg.CommandEnvelope]  # noqa: SLF001
        assert post is not None

        def counting_post(item) -> None:  # in the broker's threads (the trade stream)
            if isinstance(item, TradeUpdate) and item.event.is_fill:
                self.posted += 1
                if self.posted >= BURST:
                    self.all_posted.set()
            post(item)

        def counting_update(upd: TradeUpdate) -> None:  # the engine's loop
            on_update(upd)
            if not upd.event.is_fill:
                return
            self.handled += 1
            if self.handled == 1:
                # hold the loop until the whole burst is queued, then send the command after it
                assert self.all_posted.wait(30), f"only {self.posted} fills reached the engine"
                self.posted_at_command = self.posted
                self.answer = asyncio.run_coroutine_threadsafe(session.execute_here(RejectAll()), session._loop)  # noqa: SLF001

        def timed_command(env: msg.CommandEnvelope) -> None:
            if isinstance(env.command, RejectAll):
                self.handled_at_command = self.handled
            on_command(env)

        broker._emit_fn = counting_post  # noqa: SLF001 - what the broker's threads hand to the engine
        eng.handlers[TradeUpdate] = counting_update
        eng.handlers[msg.CommandEnvelope] = timed_command


def test_a_command_is_answered_while_a_burst_of_53_fills_is_handled(tmp_path) -> None:
    from engine.session import Session

    session = Session.from_settings(
        _settings(),
        journal_path=tmp_path / "burst.sqlite",
        sim_overrides={
            "rate_limit_per_minute": None,
            "frozen_clock": True,
            "start_at": START_AT,
            "partial_fill_prob": 0.0,
            "seed": 5,
            "starting_cash": Decimal(10_000_000),
        },
        auto_approve=True,
        credentials=CREDS,
        new_session=True,
    ).start()
    try:
        eng, venue = session.engine, session.venue
        wait_for(lambda: session.snapshot.trading_ready, what="start-up reconciliation")
        wait_for(lambda: session.snapshot.connectivity.trade_stream == "up", what="the trade stream")
        symbols = list(eng.symbols)[:BURST]
        assert len(symbols) == BURST
        wait_for(lambda: len(eng.market_view().quotes()) >= BURST, what="quotes for every symbol")

        # 53 positions, bought at the open
        _on_loop(session, eng.submit_batch(SignalBatch(ts=START_AT, signals=dict.fromkeys(symbols, 0.5))))
        wait_for(lambda: len(eng.portfolio.positions) >= BURST, timeout=60, what="53 positions")
        wait_for(lambda: not eng.open_orders(), timeout=60, what="the buys filled")

        # past the close: Flatten's 53 sells rest at the venue
        venue.clock_to("next_close")
        _on_loop(session, eng.sync.refresh_clock())
        assert not eng.clock.market_open()
        assert session.execute_sync(Flatten(cause="test"), timeout=30).ok
        wait_for(
            lambda: sum(1 for o in eng.open_orders() if o.venue_order_id) >= BURST,
            timeout=60,
            what="53 sells acked and resting",
        )

        probe = BurstProbe(session)
        venue.clock_to("next_open")  # the venue fills all 53 at the open, at once
        wait_for(lambda: probe.handled >= BURST, timeout=60, what="the burst of fills handled")
        assert probe.answer is not None
        assert probe.answer.result(30).ok
    finally:
        session.stop()

    assert probe.posted_at_command == BURST  # the whole burst was queued before the command
    assert probe.handled_at_command is not None
    # answered before the burst was worked off (first in, first out would say 53)
    assert probe.handled_at_command < BURST, probe.handled_at_command
    # and every fill is in the journal (the write-behind of a loop turn was committed)
    with Journal(tmp_path / "burst.sqlite", readonly=True) as j:
        fills = [e.event for e in j.replay() if isinstance(e.event, ev.FillApplied)]
    assert len({f.fill.execution_id for f in fills}) == 2 * BURST
