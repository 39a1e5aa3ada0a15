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
- at stop it unfreezes, so that what was frozen (the engine's own cycles among
  them) is collected normally afterwards.

The cost: a cycle that becomes garbage after it was frozen is freed only after
the engine stops (the objects frozen are long-lived by then: orders, positions,
the journal's records). The collector's state is the process's: several engines
in one process share it, which costs only time, never correctness."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

IDLE_COLLECT_EVERY = 10.0  # seconds between idle collections (at most)


class HeapPolicy:
    def __init__(self, every: float = IDLE_COLLECT_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._last = clock()
        self.collections = 0  # idle collections done (diagnostics, tests)
        self.frozen = False

    def on_start(self) -> None:
        """Freeze what a started engine holds (O(1): no collection now)."""
        gc.freeze()
        self.frozen = True
        self._last = self._clock()

    def on_second(self, idle: bool) -> bool:
        """At an idle moment, at most every `every` seconds: collect what was made since
        the last freeze, then freeze the survivors. True when it collected."""
        if not self.frozen or not idle:
            return False
        now = self._clock()
        if now - self._last < self.every:
            return False
        self._last = now
        gc.collect()
        gc.freeze()
        self.collections += 1
        return True

    def on_stop(self) -> None:
        if self.frozen:
            self.frozen = False
            gc.unfreeze()
