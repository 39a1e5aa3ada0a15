"""The kill switch's path to the wire (issue 15: cancel-all on the wire <= 50 ms after
the command, with a batch answering on the loop). Orderings, no timings:

1. the cancel-all leaves before HALTED's durable write has finished: with a journal
   whose fsync of that write is slow (here: it waits for the venue), the venue
   handles DELETE /v2/orders while the write is still under way; the command answers
   only after the write, and the journal says HALTED. For a Halt from another thread
   (the in-process console, execute_sync) and one run on the loop (the control
   socket's path, Session.execute_here);
2. a Halt from another thread does not wait for the loop at all: its cancel-all
   reaches the venue while the loop is held by a callback queued before it.

Through alpaca-py against engine/sim over HTTP (the Rig)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from engine import events as ev
from engine.commands import Halt
from engine.model import TradingState
from tests.engine.core.enginekit import SYMBOLS
from tests.support import wait_for


def _venue_cancel_all_seen(rig, steps: list[str]) -> threading.Event:
    at_venue = threading.Event()
    exchange = rig.venue.server.exchange
    venue_cancel_all = exchange.cancel_all

    def cancel_all_at_venue():
        steps.append("venue handled the cancel-all")
        at_venue.set()
        return venue_cancel_all()

    exchange.cancel_all = cancel_all_at_venue
    return at_venue


@pytest.mark.parametrize("path", ["from another thread", "on the loop"])
def test_the_cancel_all_reaches_the_venue_while_halted_is_being_made_durable(make_rig, path):
    rig = make_rig()
    rig.bar(dict.fromkeys(SYMBOLS, 0.5))  # a desk that traded
    steps: list[str] = []
    at_venue = _venue_cancel_all_seen(rig, steps)
    journal = rig.engine.journal
    append = journal.append

    def slow_fsync_append(event, durable=False):
        if durable and isinstance(event, ev.TradingStateChanged) and event.state is TradingState.HALTED:
            # a slow disk: this durable write takes until the venue has the cancel-all
            # (or 10 s, if the cancel-all waits for the write to finish)
            steps.append("durable write of HALTED started")
            at_venue.wait(10)
            seq = append(event, durable)
            steps.append("HALTED on disk")
            return seq
        return append(event, durable)

    journal.append = slow_fsync_append
    if path == "from another thread":
        result = rig.session.execute_sync(Halt(cause="test"), timeout=30)
    else:
        loop = rig.session._loop  # noqa: SLF001 - the session's own loop, as the control socket's reader runs on
        result = asyncio.run_coroutine_threadsafe(rig.session.execute_here(Halt(cause="test")), loop).result(30)
    steps.append("command answered")

    assert result.ok, result.message
    assert "venue handled the cancel-all" in steps, steps
    assert (
        steps.index("venue handled the cancel-all") < steps.index("HALTED on disk") < steps.index("command answered")
    ), steps
    assert steps.count("durable write of HALTED started") == 1, steps
    halted = [e for e in rig.journal_events() if isinstance(e, ev.TradingStateChanged)]
    assert halted and halted[-1].state is TradingState.HALTED
    wait_for(lambda: rig.trading.get_orders() == [], what="nothing open at the venue after the kill switch")
    wait_for(lambda: rig.snapshot.kill_switch.phase == "confirmed", what="the kill switch to be confirmed")
    assert rig.snapshot.trading_state is TradingState.HALTED


def test_a_halt_from_another_thread_sends_its_cancel_all_without_waiting_for_the_loop(make_rig):
    rig = make_rig()
    rig.bar(dict.fromkeys(SYMBOLS, 0.5))
    steps: list[str] = []
    at_venue = _venue_cancel_all_seen(rig, steps)
    loop = rig.session._loop  # noqa: SLF001 - the session's own loop, to hold it
    gate = threading.Event()
    loop.call_soon_threadsafe(gate.wait, 10)  # the loop is held: a batch's answers, say
    answer = rig.session._call(Halt(cause="test"))  # noqa: SLF001 - what execute/execute_sync do
    reached = at_venue.wait(10)
    held = not gate.is_set()
    gate.set()
    result = answer.result(30)

    assert reached and held, "the cancel-all reached the venue only once the loop was free"
    assert result.ok, result.message
    wait_for(lambda: rig.trading.get_orders() == [], what="nothing open at the venue after the kill switch")
    wait_for(lambda: rig.snapshot.kill_switch.phase == "confirmed", what="the kill switch to be confirmed")
    assert rig.snapshot.trading_state is TradingState.HALTED
    halted = [e for e in rig.journal_events() if isinstance(e, ev.TradingStateChanged)]
    assert halted and halted[-1].state is TradingState.HALTED
