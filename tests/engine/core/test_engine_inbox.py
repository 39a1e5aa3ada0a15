"""The Engine's inbox (engine/core/inbox.py): the kill switch before every other
command, commands before broker results, results before signal batches; a signal
backlog is bounded and collapses to its newest batch, the superseded ones counted
in one SignalsSuperseded; refused lines are kept and hold the source back instead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from engine.commands import ApproveAll, Halt
from engine.core import Engine
from engine.core import messages as msg
from engine.core.inbox import RESULTS_BEFORE_SIGNAL, Inbox
from engine.signals import DroppedSignal, SignalBatch

T0 = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def batch(i: int, *, rejected: bool = False) -> SignalBatch:
    dropped = (DroppedSignal("MALFORMED_LINE", f"line {i}"),) if rejected else ()
    return SignalBatch(
        ts=T0 + timedelta(seconds=i), signals={} if rejected else {"AAPL": 0.5}, dropped=dropped, rejected=rejected
    )


def command(cmd) -> msg.CommandEnvelope:
    return msg.CommandEnvelope(cmd, asyncio.get_running_loop().create_future())


def drain(inbox: Inbox) -> list:
    out = []
    while (item := inbox.take()) is not None:
        out.append(item)
    return out


async def test_the_kill_switch_is_taken_before_everything_queued_before_it():
    inbox = Inbox(Engine.lane_of)
    for i in range(50):
        inbox.put(batch(i))
    inbox.put(msg.Timer("second"))
    approve = command(ApproveAll())
    inbox.put(approve)
    halt = command(Halt())
    inbox.put(halt)
    order = drain(inbox)
    assert order[0] is halt and order[1] is approve
    assert isinstance(order[2], msg.Timer)
    assert [b.ts for b in order[3:]] == [batch(i).ts for i in range(50)]  # in order, none skipped


async def test_a_busy_stream_does_not_starve_a_waiting_batch():
    inbox = Inbox(Engine.lane_of)
    inbox.put(batch(0))
    for _ in range(3 * RESULTS_BEFORE_SIGNAL):
        inbox.put(msg.Timer("second"))
    order = drain(inbox)
    at = next(i for i, item in enumerate(order) if isinstance(item, SignalBatch))
    assert at == RESULTS_BEFORE_SIGNAL


async def test_a_backlog_beyond_the_bound_collapses_to_its_newest_batch_with_a_count():
    inbox = Inbox(Engine.lane_of, backlog=10)
    refused = batch(3, rejected=True)
    for i in range(1000):
        await inbox.put_signal(refused if i == 3 else batch(i))
    assert inbox.waiting(inbox._lane_of(refused)) <= 11  # noqa: SLF001
    items = drain(inbox)
    [summary] = [x for x in items if isinstance(x, msg.SignalsSuperseded)]
    kept = [x for x in items if isinstance(x, SignalBatch) and not x.rejected]
    assert refused in items, "a refused line stays: its drop is journaled"
    assert summary.count + len(kept) == 999
    assert kept[-1].ts == batch(999).ts, "the newest batch is never skipped"
    assert summary.first_ts == batch(0).ts and summary.last_ts < kept[0].ts


async def test_a_lane_full_of_refused_lines_holds_the_source_back_until_there_is_room():
    inbox = Inbox(Engine.lane_of, backlog=5)
    for i in range(5):
        await inbox.put_signal(batch(i, rejected=True))
    waiting = asyncio.ensure_future(inbox.put_signal(batch(5, rejected=True)))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "the source waits while the lane is full"
    assert inbox.take() is not None
    await asyncio.wait_for(waiting, 1)
    assert len(drain(inbox)) == 5
