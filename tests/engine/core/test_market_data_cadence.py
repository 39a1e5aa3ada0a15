"""One clock for polled prices: poll_interval is venue seconds (as max_quote_age is),
turned into wall seconds at the venue's speed, within the polls' share of the REST
budget (half of it, as config validation has it at speed 1)."""

from __future__ import annotations

import pytest

from engine.core.quotes import poll_gap


@pytest.mark.parametrize(
    ("speed", "wall"),
    [
        (1.0, 2.0),  # real Alpaca: venue seconds are wall seconds
        (2.0, 1.0),  # twice as fast a clock: twice as many polls a minute
        (10.0, 120 / 190),  # 0.2 s would take 300 requests a minute: held at half the budget
        (0.001, 2.0),  # a slow clock is polled as at speed 1, never once in 2,000 s
        (0.0, 2.0),  # a frozen clock too
    ],
)
def test_the_wall_gap_between_polls_follows_the_venue_clock_within_the_budget(speed, wall):
    assert poll_gap(2.0, speed, 190) == pytest.approx(wall)


def test_the_budget_floor_never_binds_at_speed_one_for_a_valid_configuration():
    # config validation refuses a poll_interval over half the budget: 120 / 190 s is the least
    assert poll_gap(120 / 190, 1.0, 190) == pytest.approx(120 / 190)
    assert 60 / poll_gap(2.0, 100.0, 190) == pytest.approx(190 / 2)


def test_a_budget_without_a_limit_still_polls_at_most_twice_a_second():
    assert poll_gap(2.0, 60.0, 100000) == pytest.approx(0.5)
