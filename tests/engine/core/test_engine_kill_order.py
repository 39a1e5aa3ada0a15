"""The kill switch's path to the wire (issue 15: cancel-all on the wire <= 50 ms after
the command, with a batch answering on the loop). Two orderings, no timings:

1. the cancel-all leaves before HALTED's durable write has finished: with a journal
   whose fsync of that write is slow (here: it waits for the venue), the venue
   handles DELETE /v2/orders while the write is still under way; the command answers
   only after the write, and the journal says HALTED;
2. a Halt from another thread hands its cancel-all to the broker in the loop callback
   that delivers it: before any callback queued on the loop after it (it does not wait
   for a task to start, nor for the engine task to take it off the inbox).

Both through alpaca-py against engine/sim over HTTP (the Rig)."""

from __future__ import annotations

import threading

from engine import events as ev
from engine.commands import Halt
from engine.model import TradingState
from tests.engine.core.enginekit import SYMBOLS
from tests.support import wait_for


def test_the_cancel_all_reaches_the_venue_while_halted_is_being_made_durable(make_rig):
    rig = make_rig()
    rig.bar(dict.fromkeys(SYMBOLS, 0.5))  # something working or filled: a desk that traded
    steps: list[str] = []
    at_venue = threading.Event()

    exchange = rig.venue.server.exchange
    venue_cancel_all = exchange.cancel_all

    def cancel_all_at_venue():
        steps.append("venue handled the cancel-all")
        at_venue.set()
        return venue_cancel_all()

    exchange.cancel_all = cancel_all_at_venue

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
    result = rig.session.execute_sync(Halt(cause="test"), timeout=30)
    steps.append("command answered")

    assert result.ok, result.message
    assert steps == [
        "durable write of HALTED started",
        "venue handled the cancel-all",
        "HALTED on disk",
        "command answered",
    ], steps
    halted = [e for e in rig.journal_events() if isinstance(e, ev.TradingStateChanged)]
    assert halted and halted[-1].state is TradingState.HALTED
    wait_for(lambda: rig.trading.get_orders() == [], what="nothing open at the venue after the kill switch")
    kill = wait_for(
        lambda: rig.snapshot.kill_switch.phase == "confirmed" and rig.snapshot.kill_switch,
        what="the kill switch to be confirmed",
    )
    assert rig.snapshot.trading_state is TradingState.HALTED, kill


def test_a_halt_from_another_thread_hands_its_cancel_all_over_before_anything_queued_after_it(make_rig):
    rig = make_rig()
    loop = rig.session._loop  # noqa: SLF001 - the session's own loop, to queue work on it
    steps: list[str] = []
    broker = rig.engine.broker
    real_cancel_all = broker.cancel_all

    def cancel_all():
        steps.append("cancel-all handed to the broker")
        return real_cancel_all()

    broker.cancel_all = cancel_all
    gate = threading.Event()
    loop.call_soon_threadsafe(gate.wait, 10)  # the loop is held while the two below are queued
    answer = rig.session._call(Halt(cause="test"))  # noqa: SLF001 - what execute/execute_sync do
    loop.call_soon_threadsafe(steps.append, "the callback queued after the Halt")
    gate.set()
    result = answer.result(30)

    assert result.ok, result.message
    assert steps[:2] == ["cancel-all handed to the broker", "the callback queued after the Halt"], steps
    wait_for(lambda: rig.snapshot.kill_switch.phase == "confirmed", what="the kill switch to be confirmed")
