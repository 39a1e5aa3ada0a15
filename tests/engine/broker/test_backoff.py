"""The engine's one back-off policy (engine/backoff.py): exponential, capped,
jittered downwards, repeatable with its own random source."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from engine.backoff import Backoff


def test_delays_grow_by_the_factor_and_stop_at_the_cap():
    b = Backoff(initial=0.5, factor=2.0, cap=5.0)
    assert [b.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(islice(b.delays(), 6)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_huge_attempt_number_is_the_cap_not_an_overflow():
    assert Backoff(initial=1.0, factor=10.0, cap=60.0).delay(10_000) == 60.0


def test_a_factor_of_one_is_a_constant_delay():
    assert {Backoff(initial=0.2, factor=1.0, cap=1.0).delay(n) for n in range(10)} == {0.2}


def test_jitter_only_shortens_a_delay_and_stays_within_its_band():
    b = Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=0.5, random=random.Random(3).random)
    for n in range(12):
        plain = min(30.0, 2.0**n)
        d = b.delay(n)
        assert plain / 2 <= d <= plain, (n, d)


def test_jitter_is_repeatable_with_a_seeded_source():
    def seeded() -> Backoff:
        return Backoff(initial=1.0, cap=30.0, jitter=1.0, random=random.Random(42).random)

    first, second = seeded(), seeded()
    assert [first.delay(n) for n in range(8)] == [second.delay(n) for n in range(8)]
    assert Backoff(initial=4.0, cap=4.0, jitter=0.25, random=lambda: 1.0).delay(0) == 3.0


@pytest.mark.parametrize(
    "kw",
    [{"initial": -1.0}, {"initial": 1.0, "factor": 0.5}, {"initial": 2.0, "cap": 1.0}, {"initial": 1.0, "jitter": 1.5}],
)
def test_a_policy_that_makes_no_sense_is_refused(kw):
    with pytest.raises(ValueError):
        Backoff(**kw)
