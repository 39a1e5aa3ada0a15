"""The Engine's venue clock (engine/clock.py): anchored on /v2/clock, extrapolated at
the venue's speed, and never behind a bar the venue has already closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.clock import VenueTime

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_frozen_clock_moves_up_to_a_closed_bar_and_never_back() -> None:
    mono = Mono()
    clock = VenueTime(speed=0.0, monotonic=mono)
    clock.anchor(T0, True, None, T0 + timedelta(hours=6))
    mono.t += 30
    assert clock.now() == T0  # frozen: wall time does not move it
    # the venue was advanced a minute: the bar of 15:00 closed at 15:01 has arrived
    clock.at_least(T0 + timedelta(minutes=1))
    assert clock.now() == T0 + timedelta(minutes=1)
    clock.at_least(T0)  # an old bar moves nothing back
    assert clock.now() == T0 + timedelta(minutes=1)


def test_a_running_clock_is_moved_only_when_it_is_behind() -> None:
    mono = Mono()
    clock = VenueTime(speed=1.0, monotonic=mono)
    clock.anchor(T0, True, None, None)
    mono.t += 90  # 15:01:30 by extrapolation
    clock.at_least(T0 + timedelta(minutes=1))
    assert clock.now() == T0 + timedelta(seconds=90)
    clock.at_least(T0 + timedelta(minutes=2))  # behind the venue: moved up, then runs on
    mono.t += 5
    assert clock.now() == T0 + timedelta(minutes=2, seconds=5)


def test_an_unanchored_clock_is_not_anchored_by_a_bar() -> None:
    clock = VenueTime(speed=0.0, monotonic=Mono())
    clock.at_least(T0)
    assert not clock.anchored
