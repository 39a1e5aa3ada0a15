"""The one retry/back-off policy of the engine: exponential delays from `initial`,
multiplied by `factor` per attempt, never above `cap`, optionally jittered
downwards. Deterministic when given its own random source (tests, drills)."""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count


@dataclass(frozen=True)
class Backoff:
    """delay(n) for the n-th retry (0 = the first): min(cap, initial * factor**n),
    then, with jitter j > 0, drawn from [d * (1 - j), d] — a jittered delay is never
    longer than the plain one, so `cap` stays a bound. jitter = 0.5 is "equal
    jitter" (half fixed, half random), what spreads reconnects of many clients.

    random: a source of floats in [0, 1); pass random.Random(seed).random (or a
    constant) to make delays repeatable."""

    initial: float
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.0
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial < 0:
            raise ValueError(f"initial must be >= 0, got {self.initial}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if self.cap < self.initial:
            raise ValueError(f"cap ({self.cap}) must be >= initial ({self.initial})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        n = max(0, attempt)
        try:
            d = min(self.cap, self.initial * self.factor**n)
        except OverflowError:
            d = self.cap
        if self.jitter:
            d *= 1.0 - self.jitter * self.random()
        return d

    def delays(self) -> Iterator[float]:
        """delay(0), delay(1), ... without end: `wait = next(delays)` in a loop."""
        return (self.delay(n) for n in count())
