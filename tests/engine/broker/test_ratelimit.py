"""The client-side outbound limiter: window, priorities, the venue's headers, 429s.
A fake clock drives time; nothing here sleeps on the wall clock."""

from __future__ import annotations

import asyncio

import pytest

from engine.backoff import Backoff
from engine.broker.ratelimit import OutboundLimiter, Priority, parse_ratelimit_headers


class FakeClock:
    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0):
        self.t = start
        self.wall_t = wall

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.wall_t

    def advance(self, s: float) -> None:
        self.t += s
        self.wall_t += s


def make(per_minute=5, clock=None, **kw):
    clock = clock or FakeClock()
    changes = []
    lim = OutboundLimiter(
        per_minute,
        clock=clock,
        wall=clock.wall,
        use_timer=False,
        on_change=lambda limited, rem, reset: changes.append(limited),
        **kw,
    )
    return lim, clock, changes


def queue(lim, order, name, priority, host="trading", slot=True):
    return lim.enqueue(priority, host, lambda: order.append(name), slot=slot)


def test_window_allows_per_minute_then_holds_until_the_oldest_permit_expires():
    lim, clock, changes = make(per_minute=3, cancel_reserve=0)
    order: list[str] = []
    for i in range(5):
        queue(lim, order, f"q{i}", Priority.QUERY, slot=False)
    delay = lim.pump()
    assert order == ["q0", "q1", "q2"]
    assert delay == pytest.approx(60.0)
    assert changes == [True]
    clock.advance(30)
    assert lim.pump() == pytest.approx(30.0)
    assert order == ["q0", "q1", "q2"]
    clock.advance(30)
    lim.pump()
    assert order == ["q0", "q1", "q2", "q3", "q4"]
    assert changes == [True, False]


def test_when_held_cancels_go_first_then_submits_then_queries():
    lim, clock, _ = make(per_minute=2, cancel_reserve=0)
    order: list[str] = []
    queue(lim, order, "first", Priority.QUERY, slot=False)
    queue(lim, order, "second", Priority.QUERY, slot=False)
    lim.pump()
    assert order == ["first", "second"]
    # budget spent: these queue up in arrival order q, s, c, q, s, c
    for name, prio in [
        ("q1", Priority.QUERY),
        ("s1", Priority.SUBMIT),
        ("c1", Priority.CANCEL),
        ("q2", Priority.QUERY),
        ("s2", Priority.SUBMIT),
        ("c2", Priority.CANCEL),
    ]:
        queue(lim, order, name, prio, slot=False)
    lim.pump()
    assert order == ["first", "second"]
    clock.advance(60)
    lim.pump()
    assert order[2:] == ["c1", "c2"]
    clock.advance(60)
    lim.pump()
    assert order[4:] == ["s1", "s2"]
    clock.advance(60)
    lim.pump()
    assert order[6:] == ["q1", "q2"]


def test_last_permits_of_the_window_are_kept_for_cancels():
    lim, _clock, _ = make(per_minute=4, cancel_reserve=1)
    order: list[str] = []
    for i in range(4):
        queue(lim, order, f"s{i}", Priority.SUBMIT, slot=False)
    lim.pump()
    assert order == ["s0", "s1", "s2"]  # the 4th permit is a cancel's
    queue(lim, order, "c", Priority.CANCEL, slot=False)
    lim.pump()
    assert order == ["s0", "s1", "s2", "c"]


def test_in_flight_slots_are_served_by_priority_too():
    lim, _clock, _ = make(per_minute=100, max_in_flight=1)
    order: list[str] = []
    queue(lim, order, "busy", Priority.QUERY)
    lim.pump()
    queue(lim, order, "q", Priority.QUERY)
    queue(lim, order, "s", Priority.SUBMIT)
    queue(lim, order, "c", Priority.CANCEL)
    assert lim.pump() is None  # waiting for a slot, not for time
    assert order == ["busy"]
    lim.release()
    assert order == ["busy", "c"]
    lim.release()
    lim.release()
    assert order == ["busy", "c", "s", "q"]


def test_an_extra_page_without_a_slot_is_not_blocked_by_waiters_for_slots():
    lim, _clock, _ = make(per_minute=100, max_in_flight=1)
    order: list[str] = []
    queue(lim, order, "paginating", Priority.QUERY)
    lim.pump()
    queue(lim, order, "cancel-waiting-for-slot", Priority.CANCEL)
    queue(lim, order, "page-2", Priority.QUERY, slot=False)
    lim.pump()
    assert order == ["paginating", "page-2"]


def test_429_backs_off_until_the_venue_reset():
    lim, clock, changes = make(per_minute=100)
    order: list[str] = []
    lim.observe("trading", 429, limit=200, remaining=0, reset=clock.wall_t + 20)
    assert changes == [True]
    queue(lim, order, "s", Priority.SUBMIT)
    queue(lim, order, "c", Priority.CANCEL)
    assert lim.pump() == pytest.approx(20.0)
    assert order == []
    clock.advance(19.5)
    lim.pump()
    assert order == []
    clock.advance(1)
    lim.pump()
    assert order == ["c", "s"]
    assert changes == [True, False]


def test_429_without_reset_backs_off_exponentially_and_success_resets_it():
    lim, clock, _ = make(per_minute=100, backoff=Backoff(1.0, 2.0, 8.0))
    order: list[str] = []
    delays = []
    for _ in range(5):
        lim.observe("trading", 429)
        delays.append(round(lim._hosts["trading"].blocked_until - clock.t, 3))
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    lim.observe("trading", 200)
    lim.observe("trading", 429)
    assert lim._hosts["trading"].blocked_until - clock.t == pytest.approx(1.0)
    del order


def test_remaining_zero_holds_every_request_until_reset_and_a_low_budget_only_non_cancels():
    lim, clock, _ = make(per_minute=100, cancel_reserve=2)
    order: list[str] = []
    lim.observe("trading", 200, limit=200, remaining=2, reset=clock.wall_t + 10)
    queue(lim, order, "s", Priority.SUBMIT)
    queue(lim, order, "c", Priority.CANCEL)
    lim.pump()
    assert order == ["c"]
    lim.observe("trading", 204, limit=200, remaining=0, reset=clock.wall_t + 10)
    queue(lim, order, "c2", Priority.CANCEL)
    lim.pump()
    assert order == ["c"]
    clock.advance(10.5)
    lim.pump()
    assert order == ["c", "c2", "s"]


def test_a_hold_on_one_host_does_not_stop_another():
    lim, clock, _ = make(per_minute=100)
    order: list[str] = []
    lim.observe("data", 429, reset=clock.wall_t + 30)
    queue(lim, order, "bars", Priority.QUERY, host="data")
    queue(lim, order, "submit", Priority.SUBMIT, host="trading")
    lim.pump()
    assert order == ["submit"]


def test_venue_limit_lower_than_configured_wins():
    lim, clock, _ = make(per_minute=10, cancel_reserve=0)
    order: list[str] = []
    lim.observe("trading", 200, limit=2, remaining=150, reset=clock.wall_t + 60)
    for i in range(4):
        queue(lim, order, f"q{i}", Priority.QUERY)
    lim.pump()
    assert order == ["q0", "q1"]


def test_headers_parse():
    assert parse_ratelimit_headers(
        {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "199", "X-Ratelimit-Reset": "1700000060"}
    ) == (200, 199, 1700000060.0)
    assert parse_ratelimit_headers({}) == (None, None, None)
    assert parse_ratelimit_headers({"X-Ratelimit-Limit": "x"}) == (None, None, None)


async def test_async_acquire_is_served_in_priority_order_and_can_be_cancelled():
    lim = OutboundLimiter(100, max_in_flight=1, use_timer=False)
    await lim.acquire(Priority.QUERY)  # holds the only slot
    served: list[str] = []

    async def want(name, prio):
        await lim.acquire(prio)
        served.append(name)

    tasks = [
        asyncio.create_task(want(n, p))
        for n, p in [("q", Priority.QUERY), ("s", Priority.SUBMIT), ("gone", Priority.CANCEL), ("c", Priority.CANCEL)]
    ]
    await asyncio.sleep(0.05)
    tasks[2].cancel()
    await asyncio.sleep(0.05)
    for _ in range(3):
        lim.release()
        await asyncio.sleep(0.05)
    await asyncio.gather(*[t for i, t in enumerate(tasks) if i != 2])
    assert served == ["c", "s", "q"]
    assert lim.state().waiting == {}


def test_a_cancel_slot_is_kept_free_while_submits_fill_the_others():
    lim, _, _ = make(per_minute=100, max_in_flight=3, cancel_slots=1)
    order: list[str] = []
    assert lim.try_acquire(Priority.SUBMIT) and lim.try_acquire(Priority.SUBMIT)
    assert not lim.try_acquire(Priority.SUBMIT)  # the last slot is the cancels'
    queue(lim, order, "s3", Priority.SUBMIT)
    queue(lim, order, "q1", Priority.QUERY)
    lim.pump()
    assert order == []
    queue(lim, order, "c1", Priority.CANCEL)
    lim.pump()
    assert order == ["c1"], "a cancel goes at once although every submit slot is busy"
    queue(lim, order, "c2", Priority.CANCEL)
    lim.pump()
    assert order == ["c1"]  # all three slots busy now
    lim.release()
    assert order == ["c1", "c2"]
    lim.release()
    lim.release()
    assert order == ["c1", "c2", "s3"]  # the query waits: two slots busy = all a non-cancel may use
    state = lim.state()
    assert (state.in_flight, state.waiting) == (2, {"query": 1})


def test_the_kill_switchs_cancel_overtakes_held_submits_at_once_but_never_an_earlier_cancel():
    # the window's last permit is the cancels' and the submits are held for it: the
    # kill switch's cancel-all is granted without waiting for a pump (a turn of the loop)
    lim, _, _ = make(per_minute=3, max_in_flight=4, cancel_slots=1, cancel_reserve=1)
    order: list[str] = []
    for i in range(3):
        queue(lim, order, f"s{i}", Priority.SUBMIT)
    lim.pump()
    assert order == ["s0", "s1"]  # s2 waits: the last permit is kept for cancels
    assert not lim.try_acquire(Priority.CANCEL), "without overtake: not past anyone waiting"
    assert lim.try_acquire(Priority.CANCEL, overtake=True), "past held submits: what pump would grant first"
    assert not lim.try_acquire(Priority.CANCEL, overtake=True), "the window is spent now: no permit at all"
    lim2, _, _ = make(per_minute=10, max_in_flight=2, cancel_slots=1)
    assert lim2.try_acquire(Priority.CANCEL)  # the one cancel slot
    queue(lim2, order, "c-waiting", Priority.CANCEL)
    assert not lim2.try_acquire(Priority.CANCEL, overtake=True), "an earlier cancel waits: in turn"


def test_cancel_slots_must_leave_room_for_the_rest():
    with pytest.raises(ValueError):
        OutboundLimiter(100, max_in_flight=2, cancel_slots=2)


def test_a_burst_counts_what_is_on_the_wire_against_the_venues_remaining_budget():
    # the venue said 10 left: a whole batch fired at once must stop short of the
    # cancel reserve before any answer comes back, not overrun it and buy a 429
    lim, clock, _ = make(per_minute=1000, cancel_reserve=2)
    lim.observe("trading", 200, limit=200, remaining=11, reset=clock.wall_t + 30)  # (one answer, nothing on the wire)
    order: list[str] = []
    for i in range(12):
        queue(lim, order, f"s{i}", Priority.SUBMIT)
    lim.pump()
    assert order == [f"s{i}" for i in range(9)]  # 11 less 9 on the wire leaves the reserve (2)
    queue(lim, order, "c", Priority.CANCEL)
    lim.pump()
    assert order[-1] == "c"  # the reserve is the cancels'
    lim.observe("trading", 200, limit=200, remaining=9, reset=clock.wall_t + 30)
    lim.release()
    lim.observe("trading", 200, limit=200, remaining=10, reset=clock.wall_t + 30)  # an older answer, overtaken
    lim.release()
    lim.pump()
    assert len(order) == 10, "9 left less 8 still on the wire: nothing more for submits"
    clock.advance(31)  # the venue's window is over: its count no longer holds
    lim.pump()
    assert len(order) == 13
