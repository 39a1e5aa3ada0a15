"""Market data on the free plan, end to end through alpaca-py against engine/sim:
the stream carries what the plan allows and REST keeps every other symbol fresh;
a refused subscription (405), a silent socket, an unclean cut with the venue's
connection hold (406) and a trade stream lost during fills each leave the session
with fresh prices and a journal that agrees with the venue."""

from __future__ import annotations

from decimal import Decimal

from alpaca.trading.client import TradingClient

from engine.model import TradingState
from tests.engine.core.enginekit import compare
from tests.pipeline.pipekit import CREDENTIALS, status_now

SYMBOLS = 53  # the shipped universe
FRESH = 10.0  # venue seconds: the oldest price the session may hold while prices move
RUNNING = {"plan": "free", "frozen_clock": False, "speed": 1.0}


def fresh_everywhere(pipe) -> bool:
    md = pipe.snapshot.market_data
    return md.without_quote == 0 and md.oldest_quote_age is not None and md.oldest_quote_age < FRESH


def events_with(pipe, *words: str) -> list[str]:
    return [r.text for r in pipe.snapshot.events if all(w in r.text for w in words)]


def test_free_plan_streams_thirty_symbols_and_polls_the_other_twenty_three(make_pipe):
    pipe = make_pipe(sim=RUNNING)
    pipe.wait(lambda: len(pipe.snapshot.market_data.streamed) == 30, what="30 symbols' quotes on the stream")
    md = pipe.snapshot.market_data
    assert md.stream_limit == 30 and not md.limit_learned
    assert len(md.polled) == SYMBOLS - 30 and not set(md.polled) & set(md.streamed)
    pipe.wait(lambda: fresh_everywhere(pipe), what=f"every symbol priced within {FRESH:g} s")
    assert not events_with(pipe, "405"), "the engine asked for more than the plan allows"
    # one request per poll, at the documented rate
    assert md.poll_requests_per_minute == 60 / md.poll_interval
    # and `execdesk status --json` says the same
    status = pipe.wait(lambda: status_now(pipe.journal_path), what="the status over the control socket")
    assert len(status["market_data"]["streamed"]) == 30 and len(status["market_data"]["polled"]) == SYMBOLS - 30
    assert status["market_data"]["stream_limit"] == 30 and status["market_data"]["poll_requests_per_minute"] == 30


def test_a_refused_subscription_is_said_and_every_symbol_stays_fresh(make_pipe):
    """Configured for more than the plan allows: the venue answers 405 and keeps its
    old (empty) subscription; the engine says so, learns the limit, streams 30."""
    pipe = make_pipe(sim=RUNNING, market_data={"stream_symbol_limit": SYMBOLS})
    pipe.wait(lambda: events_with(pipe, "405", "symbol limit exceeded"), what="the 405 in the event log")
    text = events_with(pipe, "405", "symbol limit exceeded")[0]
    assert "streams the quotes of 30" in text and "polls the other 23" in text, text
    pipe.wait(lambda: len(pipe.snapshot.market_data.streamed) == 30, what="30 symbols streamed after the 405")
    assert pipe.snapshot.market_data.limit_learned
    pipe.wait(lambda: fresh_everywhere(pipe), what=f"all {SYMBOLS} symbols priced within {FRESH:g} s")
    status = pipe.snapshot.market_data
    assert len(status.streamed) + len(status.polled) == SYMBOLS


def test_a_silent_data_stream_is_reconnected_by_the_watchdog(make_pipe):
    pipe = make_pipe(sim=RUNNING, market_data={"stream_silence_timeout": 3.0})
    pipe.wait(lambda: len(pipe.snapshot.market_data.streamed) == 30, what="the stream carrying 30 symbols")
    pipe.venue.mute_data_stream(True)
    pipe.wait(lambda: pipe.snapshot.market_data.watchdog_restarts >= 1, what="the watchdog to reconnect")
    assert events_with(pipe, "market data: no data for", "reconnecting")
    # while it is silent, every symbol is polled: prices stay fresh
    pipe.wait(lambda: len(pipe.snapshot.market_data.polled) == SYMBOLS, what="every symbol polled")
    pipe.wait(lambda: fresh_everywhere(pipe), what="fresh prices while the stream is silent")
    pipe.venue.mute_data_stream(False)
    pipe.wait(
        lambda: (
            len(pipe.snapshot.market_data.polled) == SYMBOLS - 30 and pipe.snapshot.connectivity.market_data == "up"
        ),
        what="the stream back to carrying 30 symbols",
    )


def test_an_unclean_cut_is_waited_out_not_retried_in_a_tight_loop(make_pipe):
    hold = 8.0
    pipe = make_pipe(sim={**RUNNING, "connection_hold_seconds": hold}, market_data={"connection_hold": hold})
    pipe.wait(lambda: len(pipe.snapshot.market_data.streamed) == 30, what="the stream carrying 30 symbols")
    pipe.venue.drop_streams(trade=False, data=True, unclean=True)
    pipe.wait(lambda: events_with(pipe, "406", "connection limit exceeded"), what="the 406 in the event log")
    assert "waiting out the connection hold" in events_with(pipe, "406")[0]
    pipe.wait(
        lambda: events_with(pipe, "market data UP (reconnected)"), what="the stream back after the hold", timeout=60
    )
    # one refusal, then the hold waited out: the back-off alone (1, 2, 4, 8 s) would
    # have been refused again and again inside the venue's window
    assert len(events_with(pipe, "error 406")) == 1, events_with(pipe, "406")
    pipe.wait(lambda: fresh_everywhere(pipe), what="fresh prices after the reconnect")


def test_fills_while_the_trade_stream_is_down_come_from_rest_and_the_journal_matches_the_venue(make_pipe):
    pipe = make_pipe(
        auto_approve=True,
        monitoring={"order_reconciliation_interval": 3600},  # only the stream-down reads may find the fills
        market_data={"fills_poll_interval": 1.0},
    )
    pipe.wait(lambda: pipe.snapshot.trading_ready, what="trading ready")
    pipe.venue.set_faults(trade_stream_down=True)
    pipe.venue.drop_streams(trade=True, data=False, unclean=False)
    pipe.wait(lambda: pipe.snapshot.connectivity.trade_stream == "down", what="the trade stream down")
    pipe.send({"AAPL": 0.5, "MSFT": -0.4, "KO": 0.8})
    venue_positions = lambda: {s: Decimal(p.qty) for s, p in pipe.eyes.positions().items()}  # noqa: E731
    pipe.wait(lambda: len(venue_positions()) == 3, what="the venue to fill the three orders")
    pipe.wait(
        lambda: (
            {s: r.qty for s, r in pipe.snapshot.positions.items()} == venue_positions()
            and pipe.snapshot.open_order_count == 0
        ),
        what="the engine to learn the fills while the stream is down",
    )
    assert pipe.snapshot.connectivity.trade_stream == "down", "the fills came from the stream, not from REST"
    assert events_with(pipe, "trade stream down: fills are read")
    pipe.venue.set_faults(trade_stream_down=False)
    pipe.wait(lambda: pipe.snapshot.connectivity.trade_stream == "up", what="the trade stream back")
    assert pipe.snapshot.trading_state is TradingState.ACTIVE
    trading = TradingClient(
        CREDENTIALS.key_id, CREDENTIALS.secret_key, paper=True, raw_data=True, url_override=pipe.venue.trading_url
    )
    comparison = compare(pipe.journal_path, trading)
    assert comparison.ok, str(comparison)
    assert len([o for o in comparison.venue_orders if o["status"] == "filled"]) == 3


def test_symbols_with_positions_move_onto_the_stream(make_pipe):
    pipe = make_pipe(sim=RUNNING, auto_approve=True)
    pipe.wait(lambda: len(pipe.snapshot.market_data.streamed) == 30, what="30 symbols' quotes on the stream")
    tail = list(pipe.snapshot.market_data.polled[-2:])
    assert len(tail) == 2 and not set(tail) & set(pipe.snapshot.market_data.streamed)
    pipe.send({tail[0]: 0.6, tail[1]: 0.6})
    pipe.wait(lambda: set(tail) <= set(pipe.snapshot.positions), what=f"positions in {tail}")
    pipe.wait(lambda: set(tail) <= set(pipe.snapshot.market_data.streamed), what=f"{tail} streamed once they are held")
    md = pipe.snapshot.market_data
    assert len(md.streamed) == 30 and len(md.polled) == SYMBOLS - 30, "the plan's limit still holds"
    moved = events_with(pipe, "now streamed:")
    assert moved and all(s in moved[-1].split("now polled")[0] for s in tail), moved
