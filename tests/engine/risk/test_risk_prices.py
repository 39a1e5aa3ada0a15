"""Quote sanity: a one-sided, zero, crossed or implausibly wide quote is never used as
a price (marks, limit prices, collars, stop triggers); the portfolio falls back to the
last trusted price (the last usable quote, a trade, a bar close) and a stop neither
fires on a poor quote nor is kept from firing on a good one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.model import DenialReason as R
from engine.model import Side
from engine.portfolio import quote_issue
from engine.risk import stop_loss_exit, stop_triggered
from engine.sizing import size_batch
from tests.engine.risk.risk_desk import NOW, D, Desk, settings_with

POOR = {
    "no bid": ("0", "101.00"),
    "no ask": ("99.00", "0"),
    "zero": ("0", "0"),
    "crossed": ("101.00", "99.00"),
    "wide": ("80.00", "120.00"),  # 4000 bps > 300
}


def poor_quote(desk: Desk, sym: str, shape: str, age: float = 0) -> None:
    bid, ask = POOR[shape]
    desk.pf.on_quote(sym, D(bid), D(ask), NOW - timedelta(seconds=age))


@pytest.mark.parametrize(
    ("bid", "ask", "says"),
    [
        ("0", "101", "one-sided"),
        ("99", "0", "one-sided"),
        ("0", "0", "zero"),
        ("101", "99", "crossed"),
        ("80", "120", "wide"),
    ],
)
def test_a_poor_quote_is_named_for_what_is_wrong_with_it(bid, ask, says):
    assert says in quote_issue(D(bid), D(ask), D(300))


def test_a_tight_quote_is_usable_and_the_spread_limit_is_a_setting():
    assert quote_issue(D("99.99"), D("100.01"), D(300)) == ""
    assert quote_issue(D("98.60"), D("101.40"), D(300)) == ""  # 280 bps
    assert "wide" in quote_issue(D("98.60"), D("101.40"), D(100))
    desk = Desk(settings_with(risk_management__max_quote_spread_bps=50))
    desk.quote("AAPL", "100", spread="1.00")  # 100 bps
    assert not desk.pf.book("AAPL").quote_ok


@pytest.mark.parametrize("shape", sorted(POOR))
def test_a_poor_quote_does_not_move_the_mark(shape):
    desk = Desk().holding("AAPL", 10, "100")  # mark 100 from a usable quote
    value = desk.pf.gross
    poor_quote(desk, "AAPL", shape)
    b = desk.pf.book("AAPL")
    assert not b.quote_ok and b.quote_issue
    assert b.mark == D("100") and desk.pf.gross == value
    assert b.price().source == "last usable quote"


def test_a_trade_newer_than_the_last_usable_quote_is_the_mark_while_quotes_are_poor():
    desk = Desk().quote("AAPL", "100", age=20).holding("AAPL", 10, "100")
    poor_quote(desk, "AAPL", "no bid", age=10)
    desk.pf.on_price("AAPL", D("97.50"), NOW - timedelta(seconds=5), "trade")
    b = desk.pf.book("AAPL")
    assert (b.mark, b.price().source) == (D("97.50"), "trade")
    assert desk.pf.gross == D("975.00")
    desk.pf.on_price("AAPL", D("90"), NOW - timedelta(seconds=8), "bar close")  # older: ignored
    assert b.mark == D("97.50")
    desk.quote("AAPL", "98")  # usable again: back on the quote
    assert (b.mark, b.price().source) == (D("98"), "quote")


@pytest.mark.parametrize("shape", sorted(POOR))
def test_orders_are_not_priced_from_a_poor_quote(shape):
    desk = Desk().quote_all()
    poor_quote(desk, "AAPL", shape)
    denial = desk.buy("AAPL", 1, limit="100")
    assert denial.reason is R.QUOTE_MISSING and POOR_WORD[shape] in denial.detail
    orders = size_batch({"AAPL": 1.0, "MSFT": 1.0}, desk.pf, assets=desk.assets)
    assert [o.symbol for o in orders] == ["MSFT"]


POOR_WORD = {"no bid": "one-sided", "no ask": "one-sided", "zero": "zero", "crossed": "crossed", "wide": "wide"}


def test_signal_models_see_only_usable_quotes_as_prices():
    # the console and signal sources read quote_ok; the rule is the portfolio's
    desk = Desk().quote("AAPL", "100")
    poor_quote(desk, "AAPL", "crossed")
    assert not desk.pf.book("AAPL").quote_ok


# -- stops on trusted prices only -----------------------------------------------------------


@pytest.mark.parametrize("shape", ["no bid", "zero", "wide", "crossed"])
def test_a_long_stop_never_fires_on_a_poor_quote(shape):
    # naively, bid 0 (or 80 on a wide book) is far below the stop at 95
    desk = Desk().holding("AAPL", 10, "100")
    poor_quote(desk, "AAPL", shape)
    assert not stop_triggered(desk.pf, "AAPL", NOW)
    assert stop_loss_exit(desk.pf, "AAPL", now=NOW) is None


def test_a_short_stop_never_fires_on_a_one_sided_or_wide_quote():
    desk = Desk().holding("AAPL", -10, "100")  # stop at 105
    desk.pf.on_quote("AAPL", D("99.00"), D("0"), NOW)  # no ask
    assert not stop_triggered(desk.pf, "AAPL", NOW)
    desk.pf.on_quote("AAPL", D("60"), D("140"), NOW)  # ask 140 on a wide book
    assert not stop_triggered(desk.pf, "AAPL", NOW)


def test_a_stop_always_fires_on_a_good_quote_after_poor_ones():
    desk = Desk().holding("AAPL", 10, "100")
    poor_quote(desk, "AAPL", "no bid")
    desk.quote("AAPL", "94")  # bid 93.99 <= 95
    stop = stop_loss_exit(desk.pf, "AAPL", now=NOW, assets=desk.assets)
    assert stop is not None and (stop.side, stop.qty) == (Side.SELL, D(10))
    assert desk.check(stop) is None


def test_a_stop_fires_on_a_fresh_trade_when_the_quote_is_poor_and_not_on_a_stale_one():
    desk = Desk().quote("AAPL", "100", age=60).holding("AAPL", 10, "100")
    poor_quote(desk, "AAPL", "wide")
    desk.pf.on_price("AAPL", D("94"), NOW - timedelta(seconds=120), "trade")  # older than max_quote_age
    assert not stop_triggered(desk.pf, "AAPL", NOW)
    desk.pf.on_price("AAPL", D("94"), NOW, "trade")
    assert stop_triggered(desk.pf, "AAPL", NOW)


def test_a_stale_quote_does_not_fire_a_stop_but_a_fresh_bar_close_does():
    desk = Desk().holding("AAPL", 10, "100")
    desk.quote("AAPL", "90", age=120)  # below the stop, but two minutes old
    assert not stop_triggered(desk.pf, "AAPL", NOW)
    desk.pf.on_price("AAPL", D("96"), NOW - timedelta(seconds=5), "bar close")
    assert not stop_triggered(desk.pf, "AAPL", NOW)  # the newest trusted price is above the stop
    desk.pf.on_price("AAPL", D("94.50"), NOW, "bar close")
    assert stop_triggered(desk.pf, "AAPL", NOW)
