"""Fixtures for the local venue tests: one venue per module, driven by the real
alpaca-py clients, with a frozen clock moved explicitly for determinism."""

from __future__ import annotations

import pytest
from alpaca.trading.client import TradingClient

from engine.sim import SimVenue
from tests.engine.sim.simkit import KEY, SECRET, Raw, make_venue, prepare


@pytest.fixture(scope="module")
def venue():
    v = make_venue()
    yield v
    errors = v.state()["internal_errors"]
    v.stop()
    assert errors == 0, "the venue hit unhandled exceptions (see the log)"


@pytest.fixture
def fresh(venue: SimVenue) -> SimVenue:
    return prepare(venue)


@pytest.fixture
def trading(venue: SimVenue) -> TradingClient:
    return TradingClient(KEY, SECRET, url_override=venue.trading_url)


@pytest.fixture
def raw(venue: SimVenue) -> Raw:
    return Raw(venue.trading_url)
