"""The Engine's inbox: lanes taken in priority order, so that a command never
waits behind work already queued (rule 13 of docs/architecture.md).

    KILL      the kill switch (Halt), before anything else
    COMMANDS  every other operator command
    RESULTS   broker results, stream traffic, timer ticks (first in, first out)
    SIGNALS   signal batches: bounded, a backlog collapses to its newest batch

Within a lane the order is kept. A waiting signal batch is taken after at most
RESULTS_BEFORE_SIGNAL results in a row, so a busy stream cannot starve signals.
The SIGNALS lane holds at most SIGNAL_BACKLOG batches: when one more arrives, every
waiting batch that a newer one supersedes (signals are targets: the newest wins)
is taken out and summarised in one SignalsSuperseded (journaled as SignalsSkipped,
with the count); refused lines stay (their drops are journaled), and a source that
finds the lane full of them waits for room (`put_signal`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from engine.core.messages import SignalsSuperseded
from engine.signals import SignalBatch

SIGNAL_BACKLOG = 100  # signal batches that may wait in the inbox
RESULTS_BEFORE_SIGNAL = 256  # results taken in a row while a signal batch waits


class Lane(IntEnum):
    KILL = 0
    COMMANDS = 1
    RESULTS = 2
    SIGNALS = 3


class Inbox:
    """Lanes of items for the one engine task; `put` is for the engine's own loop
    (other threads go through `loop.call_soon_threadsafe(inbox.put, item)`)."""

    def __init__(self, lane_of: Callable[[Any], Lane], *, backlog: int | None = None):
        self._lane_of = lane_of
        self._lanes: tuple[deque[Any], ...] = tuple(deque() for _ in Lane)
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._streak = 0  # results taken in a row while a signal batch waited
        self._superseded: SignalsSuperseded | None = None  # the summary waiting in the lane, if any
        self.backlog = SIGNAL_BACKLOG if backlog is None else backlog

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes)

    def waiting(self, lane: Lane) -> int:
        return len(self._lanes[lane])

    # ------------------------------------------------------------------ in

    def put(self, item: Any) -> None:
        lane = self._lane_of(item)
        self._lanes[lane].append(item)
        if lane is Lane.SIGNALS and len(self._lanes[lane]) > self.backlog:
            self._collapse()
        self._ready.set()

    async def put_signal(self, batch: SignalBatch) -> None:
        """Put a batch, waiting while the lane is full of batches that cannot be
        collapsed (refused lines): a source reading a backlog is held back here."""
        lane = self._lanes[Lane.SIGNALS]
        while len(lane) >= self.backlog:
            if not batch.rejected and self._collapsible():
                break  # the new batch supersedes the waiting ones: room is made by collapsing
            self._room.clear()
            await self._room.wait()
        self.put(batch)

    def _collapsible(self) -> bool:
        return any(isinstance(b, SignalBatch) and not b.rejected for b in self._lanes[Lane.SIGNALS])

    def _collapse(self) -> None:
        """Every accepted batch but the newest leaves the lane; one summary says how many."""
        lane = self._lanes[Lane.SIGNALS]
        accepted = [b for b in lane if isinstance(b, SignalBatch) and not b.rejected]
        if len(accepted) < 2:
            return
        older = accepted[:-1]
        gone = {id(b) for b in older}
        kept = deque(b for b in lane if id(b) not in gone)
        summary = self._superseded
        if summary is None or not any(s is summary for s in kept):
            summary = SignalsSuperseded(0, older[0].ts, older[-1].ts)
            kept.appendleft(summary)
            self._superseded = summary
        summary.count += len(older)
        summary.first_ts = min(summary.first_ts, older[0].ts)
        summary.last_ts = max(summary.last_ts, older[-1].ts)
        lane.clear()
        lane.extend(kept)

    # ------------------------------------------------------------------ out

    def take(self) -> Any | None:
        """The next item by lane priority, or None when every lane is empty."""
        kill, commands, results, signals = self._lanes
        if kill:
            return kill.popleft()
        if commands:
            return commands.popleft()
        if results and (not signals or self._streak < RESULTS_BEFORE_SIGNAL):
            self._streak = self._streak + 1 if signals else 0
            return results.popleft()
        if signals:
            self._streak = 0
            item = signals.popleft()
            if item is self._superseded:
                self._superseded = None
            if len(signals) < self.backlog:
                self._room.set()
            return item
        return None

    async def get(self) -> Any:
        while True:
            item = self.take()
            if item is not None:
                return item
            self._ready.clear()
            await self._ready.wait()
