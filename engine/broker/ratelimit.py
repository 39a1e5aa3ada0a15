"""Client-side pacing of the engine's outbound venue requests (OutboundLimiter):
a sliding window under the configured requests/minute, the venue's X-Ratelimit-*
headers and 429 back-off, and one priority queue of waiters (cancels, then
submits, then queries). Not to be confused with the local venue's own limiter
(engine/sim), which refuses requests over a budget: this one keeps the engine
from sending them.

The limiter is thread-safe: coroutines on the Engine's loop wait in `acquire`,
worker threads in `acquire_blocking` (extra pages of one call), and response
hooks on worker threads report what the venue said through `observe`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from engine.backoff import Backoff

# How long a waiter sleeps at most before looking again (guards against a missed
# wake-up; the normal path is woken by a grant, a release or the venue's answer).
_MAX_NAP = 1.0


class Priority(IntEnum):
    """Lower is served first."""

    CANCEL = 0
    SUBMIT = 1
    QUERY = 2


@dataclass(eq=False)
class _Waiter:
    priority: int
    seq: int
    host: str
    slot: bool  # needs an in-flight slot (a worker) as well as a rate permit
    wake: Callable[[], None]
    granted: bool = False
    abandoned: bool = False

    def __lt__(self, other: _Waiter) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


@dataclass
class _HostState:
    """What one API host (trading, data) told us about its own budget."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # epoch seconds, from X-Ratelimit-Reset
    blocked_until: float = 0.0  # monotonic: nothing may be sent before
    low_until: float = 0.0  # monotonic: only cancels may be sent before
    strikes: int = 0  # 429s in a row without a usable reset (the back-off's attempt)
    unseen: int = 0  # permits granted for this host whose answer has not come back yet
    budget_until: float = 0.0  # monotonic: `remaining` holds until then (the venue's reset)


@dataclass(frozen=True)
class LimiterState:
    limited: bool
    in_flight: int
    window_used: int
    waiting: Mapping[str, int] = field(default_factory=dict)
    remaining: int | None = None
    reset_at: float | None = None


OnChange = Callable[[bool, "int | None", "float | None"], None]


# After a 429 that says nothing usable about its reset: 1, 2, 4, ... 60 s.
BACKOFF_429 = Backoff(initial=1.0, factor=2.0, cap=60.0)


class OutboundLimiter:
    """Sliding-window limiter of outbound requests, with priorities.

    per_minute: requests allowed in any `window` seconds (all hosts together).
    max_in_flight: concurrent requests (the worker pool size); waiting for a free
        worker happens here too, so a cancel overtakes queued queries.
    cancel_reserve: the last permits of a window (and of the venue's remaining
        budget) are kept for cancels, so the kill switch is never starved.
    cancel_slots: of max_in_flight, the slots only cancels may take, so a cancel
        (the kill switch's cancel-all) never waits for a submit or a query to
        come back while a whole batch is on the wire.
    on_change(limited, remaining, reset_at): called (outside the lock, from any
        thread) when requests start or stop being held back by a rate limit.
    backoff: how long a host is held after a 429 without a usable reset (the
        n-th such 429 in a row waits backoff.delay(n)); a reset shorter than
        backoff.initial counts as not usable.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = 60.0,
        max_in_flight: int | None = None,
        cancel_reserve: int = 2,
        cancel_slots: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_change: OnChange | None = None,
        backoff: Backoff = BACKOFF_429,
        use_timer: bool = True,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        self.window = window
        self.max_in_flight = max_in_flight
        self.cancel_reserve = max(0, cancel_reserve)
        self.cancel_slots = max(0, cancel_slots)
        if max_in_flight is not None and self.cancel_slots >= max_in_flight:
            raise ValueError("cancel_slots must leave at least one slot for submits and queries")
        self._clock = clock
        self._wall = wall
        self.on_change = on_change
        self.backoff = backoff
        self._use_timer = use_timer
        self._lock = threading.Lock()
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self._grants: list[float] = []  # monotonic times of permits in the window, ascending
        self._grant_start = 0  # index of the oldest grant still in the window
        self._in_flight = 0
        self._hosts: dict[str, _HostState] = {}
        self._limited = False
        self._timer: threading.Timer | None = None
        self._timer_at = 0.0

    # ---- waiting ------------------------------------------------------------

    async def acquire(self, priority: Priority | int, host: str = "trading", *, slot: bool = True) -> None:
        """Wait for a permit (and an in-flight slot when slot=True). Cancelling the
        waiting coroutine leaves the queue cleanly."""
        if self.try_acquire(priority, host, slot=slot):
            return
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                pass

        waiter = self.enqueue(priority, host, wake, slot=slot)
        try:
            while True:
                delay = self.pump()
                if waiter.granted:
                    return
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), _nap(delay))
                except TimeoutError:
                    pass
                if waiter.granted:
                    return
        except BaseException:
            self.abandon(waiter)
            raise

    def acquire_blocking(
        self, priority: Priority | int, host: str = "trading", *, slot: bool = False, timeout: float | None = None
    ) -> bool:
        """The same from a worker thread. Returns False when timeout passed first."""
        event = threading.Event()
        waiter = self.enqueue(priority, host, event.set, slot=slot)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            delay = self.pump()
            if waiter.granted:
                return True
            nap = _nap(delay)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.abandon(waiter)
                    return waiter.granted
                nap = min(nap, left)
            event.wait(nap)
            event.clear()
            if waiter.granted:
                return True

    def try_acquire(
        self, priority: Priority | int, host: str = "trading", *, slot: bool = True, overtake: bool = False
    ) -> bool:
        """Grant at once when nobody waits and the budget allows (the common case).
        overtake=True (the kill switch's cancel-all): also while only less urgent
        requests wait (submits held for the rate, say), as pump would grant it first."""
        with self._lock:
            if self._heap:
                if not overtake or self._heap[0].priority <= int(priority):
                    return False
            elif self._limited and not overtake:
                return False
            if slot and self._slots_full(priority):
                return False
            now = self._clock()
            self._prune(now)
            probe = _Waiter(int(priority), -1, host, slot, _no_wake)
            delay, _ = self._delay_for(probe, now)
            if delay > 0:
                return False
            self._grant(host, slot, now)
            return True

    def enqueue(self, priority: Priority | int, host: str, wake: Callable[[], None], *, slot: bool = True) -> _Waiter:
        waiter = _Waiter(int(priority), next(self._seq), host, slot, wake)
        with self._lock:
            heapq.heappush(self._heap, waiter)
        return waiter

    def abandon(self, waiter: _Waiter) -> None:
        """The waiter gave up (cancelled, timed out). A permit already granted stays
        counted in the window (conservative); its slot is given back."""
        with self._lock:
            if waiter.granted:
                if waiter.slot and not waiter.abandoned:
                    self._in_flight = max(0, self._in_flight - 1)
            waiter.abandoned = True
        self.pump()

    def release(self) -> None:
        """A request that held an in-flight slot has finished."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if not self._heap and not self._limited:
                return
        self.pump()

    # ---- what the venue said -------------------------------------------------

    def observe(
        self,
        host: str,
        status: int,
        limit: int | None = None,
        remaining: int | None = None,
        reset: float | None = None,
    ) -> None:
        """Record one response: its status and X-Ratelimit-Limit/Remaining/Reset."""
        with self._lock:
            hs = self._hosts.get(host)
            if hs is None:
                if status < 400 and limit is None and remaining is None and reset is None:
                    return  # nothing to learn
                hs = self._hosts[host] = _HostState()
            before = (hs.blocked_until, hs.low_until)
            now, wall_now = self._clock(), self._wall()
            hs.unseen = max(0, hs.unseen - 1)  # this answer's request is in the venue's count now
            if limit is not None and limit > 0:
                hs.limit = limit
            elif status < 400 and limit is None:
                hs.limit = None  # the venue stopped saying: a limit it once said does not hold forever
            same_window = reset is not None and reset == hs.reset_at
            if remaining is not None:
                # answers overtake each other: within one window the lowest count is the newest
                hs.remaining = min(hs.remaining, remaining) if same_window and hs.remaining is not None else remaining
            if reset is not None:
                hs.reset_at = reset
            until_reset = None
            if reset is not None and reset > wall_now:
                until_reset = min(reset - wall_now, self.window)
                if remaining is not None:
                    hs.budget_until = now + until_reset
            if status == 429:
                if until_reset is not None and until_reset >= self.backoff.initial:
                    wait = until_reset
                else:
                    wait = self.backoff.delay(hs.strikes)
                    hs.strikes += 1
                hs.blocked_until = max(hs.blocked_until, now + wait)
            else:
                if status < 500:
                    hs.strikes = 0
                if remaining is not None and until_reset is not None:
                    if remaining <= 0:
                        hs.blocked_until = max(hs.blocked_until, now + until_reset)
                    elif remaining <= self.cancel_reserve:
                        hs.low_until = max(hs.low_until, now + until_reset)
            if not self._heap and not self._limited and (hs.blocked_until, hs.low_until) == before:
                return  # nobody waits and no new hold: nothing to grant or to report
        self.pump()

    # ---- granting --------------------------------------------------------------

    def pump(self) -> float | None:
        """Grant permits to waiters in priority order while the budget allows.
        Returns seconds until the next waiter could be served by the clock, or None
        when nobody waits on time (queue empty, or waiting for a free slot)."""
        woken: list[_Waiter] = []
        with self._lock:
            now = self._clock()
            self._prune(now)
            skipped: list[_Waiter] = []
            next_delay: float | None = None
            rate_blocked = False
            slots_full = False
            while self._heap:
                w = self._heap[0]
                if w.abandoned:
                    heapq.heappop(self._heap)
                    continue
                if w.slot and (slots_full or self._slots_full(w.priority)):
                    # waits for a release, not for time; later slot-less waiters
                    # (extra pages of a call that holds a slot) may still go.
                    # (Waiters come in priority order and a cancel may use more
                    # slots than anything after it: full for one, full for the rest.)
                    slots_full = True
                    skipped.append(heapq.heappop(self._heap))
                    continue
                delay, host_only = self._delay_for(w, now)
                if delay > 0:
                    rate_blocked = True
                    next_delay = delay if next_delay is None else min(next_delay, delay)
                    if host_only:
                        skipped.append(heapq.heappop(self._heap))
                        continue
                    break
                heapq.heappop(self._heap)
                self._grant(w.host, w.slot, now)
                w.granted = True
                woken.append(w)
            for w in skipped:
                heapq.heappush(self._heap, w)
            host_blocked = any(hs.blocked_until > now or hs.low_until > now for hs in self._hosts.values())
            limited = rate_blocked or host_blocked
            changed = limited != self._limited
            self._limited = limited
            remaining, reset_at = self._venue_budget()
            if limited and self._use_timer:
                self._arm_timer(now, next_delay, host_blocked)
        for w in woken:
            w.wake()
        if changed and self.on_change is not None:
            self.on_change(limited, remaining, reset_at)
        return next_delay

    def state(self) -> LimiterState:
        with self._lock:
            self._prune(self._clock())
            waiting: dict[str, int] = {}
            for w in self._heap:
                if not w.abandoned:
                    name = Priority(w.priority).name.lower() if w.priority in (0, 1, 2) else str(w.priority)
                    waiting[name] = waiting.get(name, 0) + 1
            remaining, reset_at = self._venue_budget()
            return LimiterState(
                limited=self._limited,
                in_flight=self._in_flight,
                window_used=len(self._grants) - self._grant_start,
                waiting=waiting,
                remaining=remaining,
                reset_at=reset_at,
            )

    # ---- internals (lock held) ---------------------------------------------------

    def _grant(self, host: str, slot: bool, now: float) -> None:
        self._grants.append(now)
        if slot:
            self._in_flight += 1
        hs = self._hosts.get(host)
        if hs is not None:
            hs.unseen += 1

    def _slots_full(self, priority: int) -> bool:
        if self.max_in_flight is None:
            return False
        cap = self.max_in_flight if priority == Priority.CANCEL else self.max_in_flight - self.cancel_slots
        return self._in_flight >= cap

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        grants, i = self._grants, self._grant_start
        while i < len(grants) and grants[i] <= horizon:
            i += 1
        if i > 1024 and i > len(grants) // 2:
            del grants[:i]
            i = 0
        self._grant_start = i

    def _delay_for(self, w: _Waiter, now: float) -> tuple[float, bool]:
        """(seconds until w may be granted, whether the hold is specific to w's host)."""
        hs = self._hosts.get(w.host)
        if hs is not None:
            if hs.blocked_until > now:
                return hs.blocked_until - now, True
            if w.priority != Priority.CANCEL and hs.low_until > now:
                return hs.low_until - now, True
            if hs.remaining is not None and hs.budget_until > now:
                # the venue's remaining budget, less what is on the wire and not yet
                # counted in it (at most what holds a slot): a burst of a whole batch
                # must not overrun it and buy a 429
                keep = 0 if w.priority == Priority.CANCEL else self.cancel_reserve
                if hs.remaining - min(hs.unseen, self._in_flight) <= keep:
                    return hs.budget_until - now, True
        limit = self.per_minute
        if hs is not None and hs.limit:
            limit = min(limit, hs.limit)
        reserve = 0 if w.priority == Priority.CANCEL else min(self.cancel_reserve, limit - 1)
        allowed = limit - reserve
        used = len(self._grants) - self._grant_start
        if used < allowed:
            return 0.0, False
        oldest_needed = self._grants[self._grant_start + used - allowed]
        return max(oldest_needed + self.window - now, 1e-3), False

    def _venue_budget(self) -> tuple[int | None, float | None]:
        hs = self._hosts.get("trading") or next(iter(self._hosts.values()), None)
        if hs is None:
            return None, None
        return hs.remaining, hs.reset_at

    def _arm_timer(self, now: float, next_delay: float | None, host_blocked: bool) -> None:
        """Re-pump when a hold lapses, so that `limited` clears without traffic."""
        candidates = [d for d in (next_delay,) if d is not None]
        if host_blocked:
            for hs in self._hosts.values():
                for t in (hs.blocked_until, hs.low_until):
                    if t > now:
                        candidates.append(t - now)
        if not candidates:
            return
        delay = min(candidates) + 0.01
        at = now + delay
        if self._timer is not None and self._timer.is_alive() and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        timer = threading.Timer(delay, self._on_timer)
        timer.daemon = True
        self._timer, self._timer_at = timer, at
        timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self.pump()

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


def _no_wake() -> None:
    pass


def _nap(delay: float | None) -> float:
    if delay is None:
        return _MAX_NAP
    return min(max(delay, 0.001), _MAX_NAP)


def parse_ratelimit_headers(headers: Mapping[str, str]) -> tuple[int | None, int | None, float | None]:
    """(limit, remaining, reset epoch s) from X-Ratelimit-* headers, None when absent."""

    def num(name: str) -> float | None:
        raw = headers.get(name)
        if raw is None:
            return None
        try:
            return float(raw)
        except (TypeError, ValueError):
            return None

    limit, remaining, reset = num("X-Ratelimit-Limit"), num("X-Ratelimit-Remaining"), num("X-Ratelimit-Reset")
    return (
        int(limit) if limit is not None else None,
        int(remaining) if remaining is not None else None,
        reset,
    )
