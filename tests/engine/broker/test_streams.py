"""The streams on the free plan, through alpaca-py against engine/sim: what the venue
says on a stream (405, 406, 409) reaches the engine as StreamError in its words, the
subscription's confirmation as StreamSubscribed, the quotes can be re-chosen while
connected, a 406 holds the next attempt for the connection hold, and a silent
stream can be restarted."""

from __future__ import annotations

import time

from engine.broker import streams
from engine.broker.alpaca import AlpacaBroker
from engine.broker.base import Channel, ConnectivityChanged, StreamError, StreamSubscribed, VenueQuote
from engine.broker.wire import Scrubber
from engine.config import Credentials, Settings
from tests.engine.broker.conftest import KEY, SECRET, Events, make_broker
from tests.support import wait_for_async, with_sections

SYMBOLS = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "XOM", "JNJ", "PG",
    "V", "MA", "HD", "KO", "PEP", "MRK", "ABBV", "CVX", "WMT", "BAC",
    "COST", "DIS", "CSCO", "ADBE", "CRM", "ORCL", "INTC", "AMD", "QCOM", "TXN",
    "NFLX", "NKE", "MCD", "UNH", "LLY",
]  # fmt: skip


def settings(feed: str = "iex", **market_data) -> Settings:
    return with_sections(
        Settings(),
        broker={"rate_limit_per_minute": 100000, "request_timeout": 2.0, "workers": 4, "feed": feed},
        market_data=market_data,
    )


def known(venue, symbols):
    quotes = venue.state()["quotes"]
    return [s for s in symbols if s in quotes]


async def test_on_iex_thirty_symbols_quotes_stream_and_every_symbols_bars(venue, events):
    symbols = known(venue, SYMBOLS)
    assert len(symbols) > 30, "the test needs more symbols than the free plan streams"
    b = make_broker(venue, settings())
    try:
        await b.start(events, symbols)
        sub = await events.wait_for(lambda e: isinstance(e, StreamSubscribed) and e.quotes)
        assert sorted(sub.quotes) == sorted(symbols[:30]) and sorted(sub.bars) == sorted(symbols)
        assert not events.of(StreamError)
    finally:
        await b.stop()


async def test_a_subscription_over_the_limit_is_a_405_then_the_quotes_can_be_rechosen(venue, events):
    symbols = known(venue, SYMBOLS)
    b = make_broker(venue, settings(stream_symbol_limit=len(symbols)))
    try:
        await b.start(events, symbols)
        err = await events.wait_for(lambda e: isinstance(e, StreamError))
        assert (err.channel, err.code, err.message) == (Channel.MARKET_DATA, 405, "symbol limit exceeded")
        # the venue kept its old (empty) subscription; asking for 30 is confirmed
        mark = len(events.snapshot())
        await b.stream_quotes(symbols[-30:])
        sub = await events.wait_for(lambda e: isinstance(e, StreamSubscribed) and len(e.quotes) == 30, after=mark)
        assert sorted(sub.quotes) == sorted(symbols[-30:])
        await events.wait_for(lambda e: isinstance(e, VenueQuote) and e.symbol in symbols[-30:], after=mark)
        # re-chosen while connected: the ones dropped go first, so the limit is never crossed
        mark = len(events.snapshot())
        await b.stream_quotes(symbols[:30])
        sub = await events.wait_for(
            lambda e: isinstance(e, StreamSubscribed) and sorted(e.quotes) == sorted(symbols[:30]), after=mark
        )
        assert not [e for e in events.snapshot()[mark:] if isinstance(e, StreamError)]
    finally:
        await b.stop()


async def test_a_second_trade_stream_is_refused_406_in_the_venues_words(venue, events):
    first, second = make_broker(venue, settings()), make_broker(venue, settings(connection_hold=5.0))
    other = Events()
    try:
        await first.start(events, [])
        assert await first.wait_trade_stream(10)
        await second.start(other, [])
        err = await other.wait_for(lambda e: isinstance(e, StreamError) and e.channel == Channel.TRADE_STREAM)
        assert err.code == 406 and "connection limit exceeded" in err.message
        assert "waiting out the connection hold" in err.action
        assert SECRET not in repr(other.snapshot())
    finally:
        await second.stop()
        await first.stop()


async def test_sip_on_the_free_plan_is_refused_409_and_given_up(venue, events):
    b = AlpacaBroker(
        settings(feed="sip"),
        Credentials(key_id=KEY, secret_key=SECRET),
        trading_url=venue.trading_url,
        data_url=venue.data_url,
        trading_stream_url=venue.trading_stream_url,
        data_stream_url=venue.data_stream_url.replace("/v2/iex", "/v2/sip"),
    )
    try:
        await b.start(events, ["AAPL"])
        err = await events.wait_for(lambda e: isinstance(e, StreamError) and e.channel == Channel.MARKET_DATA)
        assert err.code == 409 and "insufficient subscription" in err.message
        assert b._data_stream is not None
        await events.wait_for(lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data")
        assert b._data_stream.ended
    finally:
        await b.stop()


def test_a_406_holds_the_next_attempt_until_the_connection_hold_is_over():
    got: list = []
    runner = streams.trade_updates(
        KEY,
        SECRET,
        url="ws://127.0.0.1:9/stream",
        paper=True,
        emit=got.append,
        scrub=Scrubber([SECRET]),
        hold_seconds=20,
    )
    assert runner.stream._reconnect_delay(1) <= 1.0  # plain back-off
    runner._down_at = time.monotonic() - 5  # the connection was lost 5 s ago
    runner._refused(ValueError("failed to authenticate: connection limit exceeded (406)"))
    assert 14 <= runner.stream._reconnect_delay(1) <= 15  # the rest of the venue's hold
    assert [(e.code, e.channel) for e in got] == [(406, Channel.TRADE_STREAM)]
    runner._refused(ValueError("failed to authenticate: connection limit exceeded (406)"))
    assert 19 <= runner.stream._reconnect_delay(1) <= 20  # refused again: a whole hold
    assert runner.refusals == {406: 2}


async def test_a_silent_data_stream_is_restarted_and_reconnects(venue, events):
    b = make_broker(venue, settings())
    try:
        await b.start(events, ["AAPL", "MSFT"])
        await events.wait_for(lambda e: isinstance(e, StreamSubscribed))
        venue.set_faults(data_stream_muted=True)
        await wait_for_async(
            lambda: (b.stream_silence(Channel.MARKET_DATA) or 0) > 1.0, timeout=20, what="the stream silent"
        )
        mark = len(events.snapshot())
        assert b.restart_stream(Channel.MARKET_DATA, "silent for 1 s")
        down = await events.wait_for(
            lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data" and e.status == "down",
            after=mark,
        )
        assert down.detail == "silent for 1 s"
        up = await events.wait_for(
            lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data" and e.status == "up",
            after=mark,
        )
        assert up.reconnected and (b.stream_silence(Channel.MARKET_DATA) or 0) < 5
    finally:
        venue.reset_faults()
        await b.stop()


async def test_the_trade_stream_remembers_each_order_it_heard_of_and_a_muted_one_hears_nothing(venue, events):
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    trading = TradingClient(KEY, SECRET, url_override=venue.trading_url)

    def buy() -> str:
        order = MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        return str(trading.submit_order(order).id)

    b = make_broker(venue, settings())
    try:
        await b.start(events, [])
        assert await b.wait_trade_stream(10)
        up = b.stream_up_since(Channel.TRADE_STREAM)
        assert up is not None and b.trade_update_heard() is None
        heard = buy()
        await wait_for_async(lambda: b.trade_update_heard(heard), timeout=10, what="an update for the order")
        assert up <= (b.trade_update_heard(heard) or 0) <= (b.trade_update_heard() or 0)
        assert (b.stream_silence(Channel.TRADE_STREAM) or 0) < 5
        venue.set_faults(trade_stream_muted=True)
        lost = buy()
        await wait_for_async(
            lambda: (b.stream_silence(Channel.TRADE_STREAM) or 0) > 1.0, timeout=10, what="the stream silent"
        )
        assert b.trade_update_heard(lost) is None, "a muted stream brought an update"
        assert b.stream_up_since(Channel.TRADE_STREAM) == up, "the muted stream is still the same connection"
    finally:
        venue.reset_faults()
        await b.stop()
    assert b.stream_up_since(Channel.TRADE_STREAM) is None
