"""When the garbage collector may stop the engine: full collections at idle moments
over the objects made since the last one, never in the middle of a batch.

A full (generation 2) collection walks every object the process holds and stops
every thread of the interpreter while it does: 80-160 ms on a loaded 2-core
machine for the ~90,000 objects of a started engine (modules, alpaca-py and
pydantic models, the universe, the replayed journal). Left to its thresholds, one
comes every ~20 batches, in whichever batch happens to allocate the last object:
that was the p99 of a 53-order batch (issue 15). So:

- at start the engine freezes what it holds (gc.freeze: long-lived, never
  garbage while the engine runs), so automatic full collections walk only what
  was made since;
- on the engine's one-second timer, when nothing is on the wire and nothing is
  waiting (`idle`), at most every IDLE_COLLECT_EVERY seconds, it collects
  (garbage made since the last freeze is freed first) and freezes the survivors
  again, so the part left for an automatic collection stays small;
- at an idle moment at most every FULL_COLLECT_EVERY seconds (minutes), it
  unfreezes everything, collects fully and freezes again: a cycle made of objects
  frozen earlier that has become garbage since (a finished order's records, a
  replaced snapshot) is freed then, not kept until the engine stops — without it
  a long session leaks slowly. Such a collection walks the whole heap (the
  80-160 ms above), which is why it waits for an idle moment and is rare: while
  idle it delays no order. The short idle collections go on in between;
- at stop it unfreezes, so that what was frozen (the engine's own cycles among
  them) is collected normally afterwards.

The collector's state is the process's: several engines
in one process share it, which costs only time, never correctness."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

IDLE_COLLECT_EVERY = 10.0  # seconds between idle collections (at most)
#: seconds between idle collections of the whole heap, frozen part included (at most):
#: each walks every object (80-160 ms), so rare, and only when nothing is on the wire
FULL_COLLECT_EVERY = 300.0


class HeapPolicy:
    def __init__(
        self,
        every: float = IDLE_COLLECT_EVERY,
        clock: Callable[[], float] = time.monotonic,
        full_every: float = FULL_COLLECT_EVERY,
    ) -> None:
        self.every = every
        self.full_every = full_every
        self._clock = clock
        self._last = self._last_full = clock()
        self.collections = 0  # idle collections done, full ones included (diagnostics, tests)
        self.full_collections = 0  # of which of the whole heap, frozen part included
        self.frozen = False

    def on_start(self) -> None:
        """Freeze what a started engine holds (O(1): no collection now)."""
        gc.freeze()
        self.frozen = True
        self._last = self._last_full = self._clock()

    def on_second(self, idle: bool) -> bool:
        """At an idle moment, at most every `every` seconds: collect what was made since
        the last freeze, then freeze the survivors; at most every `full_every` seconds
        that collection is of everything (unfrozen first), so garbage among objects
        frozen earlier is freed too. True when it collected."""
        if not self.frozen or not idle:
            return False
        now = self._clock()
        if now - self._last < self.every:
            return False
        self._last = now
        if now - self._last_full >= self.full_every:
            self._last_full = now
            gc.unfreeze()
            self.full_collections += 1
        gc.collect()
        gc.freeze()
        self.collections += 1
        return True

    def on_stop(self) -> None:
        if self.frozen:
            self.frozen = False
            gc.unfreeze()
