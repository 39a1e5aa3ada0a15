"""AlpacaBroker against a real local venue, through alpaca-py: submit outcomes,
faults that leave the outcome unknown (and lookup that settles it), the rule that
a submit is never sent twice, rate limits, the streams, paging and parsing."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from alpaca.trading.client import TradingClient

from engine.broker.alpaca import AlpacaBroker, resolve_urls
from engine.broker.base import (
    BrokerUnavailable,
    CancelOutcomeKind,
    Channel,
    ConnectivityChanged,
    LinkStatus,
    RateLimitChanged,
    RequestFailed,
    SubmitOutcomeKind,
    SubmitRequest,
    TradeEvent,
    TradeUpdate,
    VenueBar,
    VenueQuote,
)
from engine.broker.wire import Failure, Scrubber, order_request
from engine.config import Settings
from engine.model import OrderStatus, OrderType, Side, TimeInForce
from tests.support import wait_for_async

from .conftest import KEY, SECRET, Venue, broker_settings, count_posts, make_broker

FAR_BELOW = Decimal("1.00")  # a buy limit that never fills


async def until(condition, timeout: float = 10.0) -> None:
    await wait_for_async(condition, timeout=timeout, what="the condition", every=0.005)


def cid(tag: str) -> str:
    return f"t-{tag}-{uuid.uuid4().hex[:16]}"


def resting_buy(client_order_id: str, symbol: str = "AAPL", qty: str = "1") -> SubmitRequest:
    return SubmitRequest(client_order_id, symbol, "buy", Decimal(qty), "limit", "day", FAR_BELOW)


async def marketable_buy(broker: AlpacaBroker, client_order_id: str, symbol: str, qty: str = "1") -> SubmitRequest:
    ask = (await broker.latest_quotes([symbol]))[symbol].ask
    limit = (ask * Decimal("1.02")).quantize(Decimal("0.01"))
    return SubmitRequest(client_order_id, symbol, "buy", Decimal(qty), "limit", "day", limit)


@pytest.fixture(scope="module")
def venue():
    # partial fills off: a marketable order fills at once, so fill events are certain
    v = Venue(seed=7, rate_limit_per_minute=None, partial_fill_prob=0.0)
    yield v
    v.stop()


# ---- submit outcomes ------------------------------------------------------------


async def test_submit_is_acked_and_lookup_finds_the_same_order(broker, events):
    coid = cid("ack")
    outcome = await broker.submit(resting_buy(coid))
    assert outcome.kind is SubmitOutcomeKind.ACKED, outcome
    order = outcome.order
    assert order.client_order_id == coid
    assert order.status in (OrderStatus.NEW, OrderStatus.ACCEPTED)
    assert order.limit_price == FAR_BELOW and order.qty == Decimal(1)
    # the venue's words arrive parsed, once, into the engine's enums
    assert (order.side, order.order_type, order.time_in_force) == (Side.BUY, OrderType.LIMIT, TimeInForce.DAY)
    assert type(order.status) is OrderStatus and type(order.side) is Side

    found = await broker.lookup(coid)
    assert found is not None and found.id == order.id and found.status is order.status
    assert await broker.lookup(cid("never-sent")) is None
    await asyncio.sleep(0)  # successes are counted and emitted at the end of the loop's turn
    oks = events.of(RequestFailed)
    assert all(e.ok for e in oks) and sum(e.count for e in oks) == 3


async def test_insufficient_buying_power_is_rejected_with_the_venue_code(broker):
    outcome = await broker.submit(
        SubmitRequest(cid("bp"), "AAPL", "buy", Decimal(100000), "limit", "day", Decimal("200"))
    )
    assert (outcome.kind, outcome.http_status, outcome.code) == ("rejected", 403, 40310000), outcome
    assert "buying power" in outcome.message


async def test_a_sub_penny_price_is_rejected_as_invalid(broker):
    outcome = await broker.submit(
        SubmitRequest(cid("px"), "AAPL", "buy", Decimal(1), "limit", "day", Decimal("10.001"))
    )
    assert (outcome.kind, outcome.http_status, outcome.code) == ("rejected", 422, 42210000), outcome


async def test_an_opposite_order_in_the_symbol_is_rejected_as_a_wash_trade(broker):
    assert (await broker.submit(resting_buy(cid("wash-buy"), symbol="KO"))).kind == "acked"
    outcome = await broker.submit(
        SubmitRequest(cid("wash-sell"), "KO", "sell", Decimal(1), "limit", "day", Decimal("999"))
    )
    assert (outcome.kind, outcome.http_status) == ("rejected", 403), outcome
    assert "wash trade" in outcome.message


async def test_a_duplicate_client_order_id_is_unknown_and_lookup_finds_the_first(broker, venue):
    coid = cid("dup")
    first = await broker.submit(resting_buy(coid))
    assert first.kind == "acked"
    again = await broker.submit(resting_buy(coid))
    assert again.kind == "unknown" and again.http_status == 422, again
    found = await broker.lookup(coid)
    assert found is not None and found.id == first.order.id
    assert len(venue.orders_with_client_id(coid)) == 1


def test_a_malformed_request_raises_before_anything_is_sent():
    with pytest.raises(ValueError):
        order_request(SubmitRequest("x", "AAPL", "buy", Decimal(1), "limit", "day", None))
    with pytest.raises(ValueError):
        SubmitRequest("x", "AAPL", "hold", Decimal(1), "market")
    with pytest.raises(ValueError, match="unsupported order type"):
        order_request(SubmitRequest("x", "AAPL", "buy", Decimal(1), "stop", "day", Decimal(1)))


async def test_a_request_refused_while_its_model_is_built_raises_and_leaves_nothing(broker, venue):
    """alpaca-py's request model is built in the broker's worker: a request it cannot
    express (a signalling NaN has no float) still raises ValueError from submit(),
    nothing reaches the venue, and the worker's slot is given back."""
    coid = cid("snan")
    with pytest.raises(ValueError):
        await broker.submit(SubmitRequest(coid, "AAPL", "buy", Decimal("sNaN"), "limit", "day", FAR_BELOW))
    with pytest.raises(ValueError, match="needs limit_price"):  # refused on the loop, before a permit
        await broker.submit(SubmitRequest(cid("nolimit"), "AAPL", "buy", Decimal(1), "limit", "day", None))
    assert venue.orders_with_client_id(coid) == []
    assert broker.limiter.state().in_flight == 0
    assert (await broker.submit(resting_buy(cid("after-snan")))).kind is SubmitOutcomeKind.ACKED


def test_a_request_takes_words_or_enums_and_carries_enums():
    by_word = SubmitRequest("x", "AAPL", "sell", Decimal(1), "market", "gtc")
    assert (by_word.side, by_word.order_type, by_word.time_in_force) == (Side.SELL, OrderType.MARKET, TimeInForce.GTC)
    assert by_word == SubmitRequest("x", "AAPL", Side.SELL, Decimal(1), OrderType.MARKET, TimeInForce.GTC)


# ---- faults: unknown outcomes, never sent twice, lookup settles --------------------------


@pytest.mark.parametrize(
    "faults, status, venue_has_it",
    [
        ({"http_500": 1.0, "scope": "trading"}, 500, False),
        ({"http_503": 1.0, "scope": "trading"}, 503, False),
        # alpaca-py on its own resends a POST that got 504, three more times
        ({"http_504": 1.0, "scope": "trading"}, 504, False),
        ({"lose_response": 1.0, "lose_response_mode": "504"}, 504, True),
        ({"lose_response": 1.0, "lose_response_mode": "drop"}, None, True),
    ],
    ids=["500", "503", "504", "accepted-then-504", "accepted-then-connection-dropped"],
)
async def test_a_failed_submit_is_unknown_sent_once_and_settled_by_lookup(broker, venue, faults, status, venue_has_it):
    posts = count_posts(broker)
    coid = cid("fault")
    venue.set_faults(**faults)
    outcome = await broker.submit(resting_buy(coid))
    venue.reset_faults()

    assert outcome.kind == "unknown", outcome
    assert outcome.http_status == status
    assert posts[0] == 1, "the order request must leave exactly once"
    at_venue = venue.orders_with_client_id(coid)
    assert len(at_venue) == (1 if venue_has_it else 0)

    found = await broker.lookup(coid)
    if venue_has_it:
        assert found is not None and found.id == at_venue[0]["id"]
    else:
        assert found is None
    assert posts[0] == 1


async def test_a_submit_that_times_out_is_unknown_and_lookup_settles_it_once_the_venue_has_answered(venue, events):
    broker = make_broker(venue, broker_settings(request_timeout=0.3))
    broker._emit_fn = events
    posts = count_posts(broker)
    coid = cid("timeout")
    venue.set_faults(latency_ms=1200, scope="trading")
    try:
        outcome = await broker.submit(resting_buy(coid))
    finally:
        venue.reset_faults()
    assert outcome.kind is SubmitOutcomeKind.UNKNOWN and outcome.http_status is None, outcome
    assert "timeout" in outcome.message
    # the venue may still be working on it (the engine asks again on 404 for a
    # while): once the venue has answered, lookup says what it did
    await asyncio.sleep(1.5)
    found = await broker.lookup(coid)
    at_venue = venue.orders_with_client_id(coid)
    assert len(at_venue) <= 1
    assert (found.id if found else None) == (at_venue[0]["id"] if at_venue else None)
    assert posts[0] == 1
    await broker.stop()


async def test_successes_are_counted_per_turn_and_come_before_a_later_failure(broker, venue, events):
    outcomes = await asyncio.gather(*(broker.submit(resting_buy(cid(f"many-{i}"))) for i in range(8)))
    assert all(o.kind == "acked" for o in outcomes)
    await asyncio.sleep(0)
    oks = events.of(RequestFailed)
    assert all(e.ok and e.operation == "submit" for e in oks)
    assert sum(e.count for e in oks) == 8, "every success counted once"
    # successes noted in one turn are one message (how many answers share a turn
    # above depends on the machine's timing; here it does not)
    for _ in range(3):
        broker._note("positions", None)  # noqa: SLF001
    await asyncio.sleep(0)
    merged = [(e.operation, e.ok, e.count) for e in events.of(RequestFailed)][len(oks) :]
    assert merged == [("positions", True, 3)], merged
    oks = events.of(RequestFailed)
    # a success counted, then a failure in the same turn: the success is emitted first
    broker._note("account", None)  # noqa: SLF001
    broker._note("account", Failure("other", message="boom"))  # noqa: SLF001
    seen = [(e.operation, e.ok, e.count) for e in events.of(RequestFailed)][len(oks) :]
    assert seen == [("account", True, 1), ("account", False, 1)], seen
    await asyncio.sleep(0)
    assert len(events.of(RequestFailed)) == len(oks) + 2, "nothing emitted twice"


async def test_lookup_raises_unavailable_when_the_venue_cannot_say(broker, venue):
    venue.set_faults(http_503=1.0, scope="trading")
    with pytest.raises(BrokerUnavailable):
        await broker.lookup(cid("x"))


async def test_rest_health_goes_degraded_then_down_and_back_up_with_reconnected(broker, venue, events):
    venue.set_faults(http_503=1.0, scope="trading")
    for _ in range(3):
        with pytest.raises(BrokerUnavailable):
            await broker.account()
    venue.reset_faults()
    await broker.account()
    rest = [(e.status, e.reconnected) for e in events.of(ConnectivityChanged) if e.channel is Channel.REST]
    assert rest == [(LinkStatus.DEGRADED, False), (LinkStatus.DOWN, False), (LinkStatus.UP, True)]
    await asyncio.sleep(0)  # the success is emitted at the end of the loop's turn
    assert [(e.ok, e.count) for e in events.of(RequestFailed)] == [(False, 1), (False, 1), (False, 1), (True, 1)]


async def test_cancel_outcomes(broker):
    coid = cid("cxl")
    acked = await broker.submit(resting_buy(coid))
    assert (await broker.cancel(acked.order.id)).kind is CancelOutcomeKind.SENT
    order = await broker.lookup(coid)
    assert order is not None and order.status in (OrderStatus.CANCELED, OrderStatus.PENDING_CANCEL)
    assert (await broker.cancel(str(uuid.uuid4()))).kind is CancelOutcomeKind.NOT_FOUND
    assert (await broker.cancel("not-a-uuid")).kind is CancelOutcomeKind.NOT_FOUND


async def test_a_cancel_refused_with_5xx_is_unknown_and_may_be_sent_again(broker, venue):
    # the broker asks once; asking again is the engine's decision (its cancel loop)
    coid = cid("cxl-again")
    acked = await broker.submit(resting_buy(coid))
    venue.set_faults(http_503=1.0, scope="trading")
    assert (await broker.cancel(acked.order.id)).kind is CancelOutcomeKind.UNKNOWN
    venue.reset_faults()
    assert (await broker.cancel(acked.order.id)).kind is CancelOutcomeKind.SENT
    order = await broker.lookup(coid)
    assert order is not None and order.status is OrderStatus.CANCELED


async def test_cancel_all_reports_each_order(broker):
    a = await broker.submit(resting_buy(cid("ca1"), symbol="PEP"))
    b = await broker.submit(resting_buy(cid("ca2"), symbol="PEP"))
    outcome = await broker.cancel_all()
    assert outcome.ok, outcome
    ids = {oid for oid, _ in outcome.results}
    assert {a.order.id, b.order.id} <= ids


async def test_a_submit_cancelled_while_waiting_for_a_worker_is_never_sent(venue, events):
    broker = make_broker(venue, broker_settings(workers=1))
    broker._emit_fn = events
    posts = count_posts(broker)
    venue.set_faults(latency_ms=600, scope="trading")
    try:
        busy = asyncio.create_task(broker.account())  # holds the only worker
        await until(lambda: broker.limiter.state().in_flight == 1)
        waiting = asyncio.create_task(broker.submit(resting_buy(cid("cancelled"))))
        await until(lambda: broker.limiter.state().waiting.get("submit") == 1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await busy
    finally:
        venue.reset_faults()
    assert posts[0] == 0
    state = broker.limiter.state()
    assert state.in_flight == 0 and state.waiting == {}
    await broker.stop()


async def test_a_cancel_does_not_wait_for_a_worker_while_every_submit_slot_is_busy(venue, events):
    broker = make_broker(venue, broker_settings(workers=1))
    broker._emit_fn = events
    venue.set_faults(latency_ms=800, scope="trading")
    try:
        busy = asyncio.create_task(broker.account())  # holds the only submit/query worker
        await until(lambda: broker.limiter.state().in_flight == 1)
        queued = asyncio.create_task(broker.submit(resting_buy(cid("queued"))))
        await until(lambda: broker.limiter.state().waiting.get("submit") == 1)
        cancel = asyncio.create_task(broker.cancel(str(uuid.uuid4())))
        # the cancel is on the wire next to the query; the submit still waits
        await until(lambda: broker.limiter.state().in_flight == 2, timeout=0.5)
        assert broker.limiter.state().waiting == {"submit": 1}
        assert (await cancel).kind is CancelOutcomeKind.NOT_FOUND
        await busy
        assert (await queued).kind is SubmitOutcomeKind.ACKED
    finally:
        venue.reset_faults()
        await broker.stop()


# ---- streams ---------------------------------------------------------------------------


async def test_trade_stream_delivers_new_and_fill_with_execution_ids(broker, events):
    await broker.start(events, [])
    up = await events.wait_for(lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream")
    assert (up.status, up.reconnected) == ("up", False)

    coid = cid("fill")
    outcome = await broker.submit(await marketable_buy(broker, coid, "JPM"))
    assert outcome.kind == "acked", outcome

    def update(event: str):
        return lambda e: isinstance(e, TradeUpdate) and e.order.client_order_id == coid and e.event == event

    new = await events.wait_for(update("new"))
    fill = await events.wait_for(update("fill"))
    assert new.order.id == fill.order.id == outcome.order.id
    assert fill.execution_id and fill.qty == Decimal(1) and fill.price and fill.price > 0
    assert fill.event is TradeEvent.FILL and new.event is TradeEvent.NEW
    assert fill.order.status is OrderStatus.FILLED and fill.order.filled_qty == Decimal(1)
    assert fill.position_qty is not None and fill.position_qty >= 1


async def test_a_dropped_trade_stream_reports_down_then_up_reconnected_and_listens_again(broker, events, venue):
    await broker.start(events, [])
    await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream" and e.status == "up"
    )
    mark = len(events.snapshot())
    venue.drop_trade_stream()
    down = await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream", after=mark
    )
    assert down.status == "down"
    back = await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream" and e.status == "up", after=mark
    )
    assert back.reconnected is True
    assert broker.connectivity["trade_stream"] == "up"

    coid = cid("after-drop")
    await broker.submit(resting_buy(coid))
    await events.wait_for(lambda e: isinstance(e, TradeUpdate) and e.order.client_order_id == coid)


async def test_a_trade_stream_refused_for_a_while_comes_back_reconnected(broker, events, venue):
    await broker.start(events, [])
    await events.wait_for(lambda e: isinstance(e, ConnectivityChanged) and e.status == "up")
    mark = len(events.snapshot())
    venue.set_faults(trade_stream_down=True, drop_trade_stream=True)
    await events.wait_for(lambda e: isinstance(e, ConnectivityChanged) and e.status == "down", after=mark)
    await asyncio.sleep(0.5)
    assert broker.connectivity["trade_stream"] == "down"
    venue.reset_faults()
    back = await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream" and e.status == "up",
        after=mark,
        timeout=30,
    )
    assert back.reconnected is True


async def test_market_data_stream_delivers_quotes_and_bars_and_reconnects(broker, events, venue):
    await broker.start(events, ["AAPL", "MSFT"])
    await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data" and e.status == "up"
    )
    quote = await events.wait_for(lambda e: isinstance(e, VenueQuote) and e.symbol in ("AAPL", "MSFT"))
    assert 0 < quote.bid < quote.ask
    requests.post(
        venue.trading_url + "/sim/v1/clock",
        json={"advance_seconds": 61},
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=10,
    ).raise_for_status()
    bar = await events.wait_for(lambda e: isinstance(e, VenueBar))
    assert bar.symbol in ("AAPL", "MSFT") and bar.low <= bar.close <= bar.high

    mark = len(events.snapshot())
    venue.drop_data_stream()
    await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data" and e.status == "down", after=mark
    )
    back = await events.wait_for(
        lambda e: isinstance(e, ConnectivityChanged) and e.channel == "market_data" and e.status == "up", after=mark
    )
    assert back.reconnected is True


# ---- rate limits ---------------------------------------------------------------------------


def _away_from_the_minute_boundary() -> None:
    """The venue counts per clock minute: keep a test's requests inside one."""
    second = time.time() % 60
    if second > 45:
        time.sleep(60.2 - second)


async def test_the_venue_budget_in_headers_holds_queries_but_lets_cancels_through(events):
    venue = Venue(seed=11, rate_limit_per_minute=None)
    broker = make_broker(venue)
    broker._emit_fn = events
    try:
        _away_from_the_minute_boundary()
        venue.set_faults(rate_limit_per_minute=6)
        held = None
        for _ in range(8):
            query = asyncio.create_task(broker.account())
            await until(lambda q=query: q.done() or broker.limiter.state().waiting.get("query") == 1)
            if not query.done():
                held = query
                break
            query.result()
        assert held is not None, "the limiter should hold queries once the venue budget is nearly spent"
        assert events.of(RateLimitChanged)[0].limited is True
        # the reserve kept for cancels: a cancel still goes out
        outcome = await asyncio.wait_for(broker.cancel(str(uuid.uuid4())), 5)
        assert outcome.kind == "not_found"
        failures = [e.detail for e in events.of(RequestFailed) if not e.ok]
        assert not any("429" in d for d in failures), failures
        held.cancel()
    finally:
        await broker.stop()
        venue.stop()


async def test_a_429_is_unknown_for_a_submit_and_backs_off_until_reset(events):
    venue = Venue(seed=12, rate_limit_per_minute=None)
    broker = make_broker(venue)
    broker._emit_fn = events
    posts = count_posts(broker)
    try:
        _away_from_the_minute_boundary()
        venue.set_faults(rate_limit_per_minute=3)
        other = TradingClient(KEY, SECRET, url_override=venue.trading_url)  # someone else spends the budget
        for _ in range(3):
            other.get_clock()
        outcome = await broker.submit(resting_buy(cid("429")))
        assert (outcome.kind, outcome.http_status) == ("unknown", 429), outcome
        limited = await events.wait_for(lambda e: isinstance(e, RateLimitChanged))
        assert limited.limited and limited.remaining == 0 and limited.reset_at
        assert broker.limiter.state().limited
        # backing off: the next submit waits instead of hammering the venue
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(broker.submit(resting_buy(cid("429-next"))), 1.0)
        assert posts[0] == 1
        assert broker.limiter.state().waiting == {}
    finally:
        await broker.stop()
        venue.stop()


# ---- paging and parsing ----------------------------------------------------------------------


async def test_list_orders_pages_past_500_and_returns_every_order_oldest_first(events):
    venue = Venue(seed=13, rate_limit_per_minute=None)
    broker = make_broker(venue, broker_settings(workers=8))
    broker._emit_fn = events
    try:
        ids = set()
        for start in range(0, 620, 62):
            outcomes = await asyncio.gather(
                *(broker.submit(resting_buy(f"page-{i:04d}", symbol="XOM")) for i in range(start, start + 62))
            )
            assert all(o.kind == "acked" for o in outcomes)
            ids.update(o.order.id for o in outcomes)
        await asyncio.sleep(0)
        pages_before = sum(e.count for e in events.of(RequestFailed) if e.operation == "list_orders")
        everything = await broker.list_orders(status="all")
        await asyncio.sleep(0)  # successes are emitted at the end of the loop's turn
        pages = sum(e.count for e in events.of(RequestFailed) if e.operation == "list_orders") - pages_before
        assert len(everything) == 620 and {o.id for o in everything} == ids
        assert pages >= 2
        times = [o.submitted_at for o in everything]
        assert times == sorted(times)

        small_pages = await broker.list_orders(status="open", limit=100)
        assert {o.id for o in small_pages} == ids

        # `after` is strict, as Alpaca's is: orders submitted in the same instant as the
        # 100th (a concurrent batch can share a timestamp) are not "after" it
        cut = everything[99].submitted_at
        later = await broker.list_orders(status="all", after=cut)
        expected = {o.id for o in everything if o.submitted_at > cut}
        assert len(expected) >= 500
        assert {o.id for o in later} == expected
    finally:
        await broker.stop()
        venue.stop()


async def test_positions_account_clock_assets_quotes_and_bars_parse(broker, events, venue):
    await broker.start(events, [])
    coid = cid("pos")
    assert (await broker.submit(await marketable_buy(broker, coid, "NVDA", qty="3"))).kind == "acked"
    await events.wait_for(
        lambda e: isinstance(e, TradeUpdate) and e.order.client_order_id == coid and e.event == "fill"
    )

    positions = {p.symbol: p for p in await broker.positions()}
    assert positions["NVDA"].qty == Decimal(3) and positions["NVDA"].avg_entry_price > 0

    account = await broker.account()
    assert account.status == "ACTIVE" and account.equity > 0 and account.buying_power > 0
    assert isinstance(account.cash, Decimal)

    clock = await broker.clock()
    assert clock.is_open is True and clock.next_close > clock.timestamp

    assets = await broker.assets(["AAPL", "NOPE"])
    assert set(assets) == {"AAPL"}
    assert assets["AAPL"].tradable and assets["AAPL"].exchange == "NASDAQ"

    quotes = await broker.latest_quotes(["AAPL", "MSFT"])
    assert set(quotes) == {"AAPL", "MSFT"} and all(0 < q.bid < q.ask for q in quotes.values())

    requests.post(
        venue.trading_url + "/sim/v1/clock",
        json={"advance_seconds": 300},
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=10,
    ).raise_for_status()
    clock = await broker.clock()
    bars = await broker.bars(["AAPL", "MSFT"], start=clock.timestamp - timedelta(minutes=4))
    assert bars["AAPL"] and bars["MSFT"]
    assert all(b.low <= b.open <= b.high and b.volume >= 0 for b in bars["AAPL"])
    assert [b.ts for b in bars["AAPL"]] == sorted(b.ts for b in bars["AAPL"])


# ---- secrets and URLs ------------------------------------------------------------------------


async def test_secrets_never_show_in_outcomes_exceptions_events_or_logs(venue, events, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-" + uuid.uuid4().hex
    broker = make_broker(venue, secret=wrong)
    broker._emit_fn = events
    try:
        with pytest.raises(BrokerUnavailable) as exc:
            await broker.account()
        outcome = await broker.submit(resting_buy(cid("auth")))
        assert (outcome.kind, outcome.http_status) == ("rejected", 401)
        await broker.start(events, ["AAPL"])
        await events.wait_for(lambda e: isinstance(e, ConnectivityChanged) and e.channel == "trade_stream")
    finally:
        await broker.stop()
    texts = [str(exc.value), repr(exc.value), repr(broker), repr(outcome), caplog.text]
    texts += [repr(e) for e in events.snapshot()]
    for text in texts:
        assert wrong not in text and SECRET not in text


def test_scrubber_masks_every_secret_and_bounds_length():
    scrub = Scrubber(["KEYID", "s3cr3t"])
    assert scrub("auth KEYID s3cr3t failed") == "auth **** **** failed"
    assert len(scrub("x" * 1000)) == 300


def test_urls_default_to_alpaca_paper_and_derive_the_streams():
    s = Settings()
    s.broker.kind = "alpaca"
    urls = resolve_urls(s)
    assert urls.trading == "https://paper-api.alpaca.markets"
    assert urls.trading_stream == "wss://paper-api.alpaca.markets/stream"
    assert urls.data == "https://data.alpaca.markets"
    assert urls.data_stream == "wss://stream.data.alpaca.markets/v2/iex"


def test_urls_explicit_ones_win_and_http_becomes_ws():
    s = Settings()
    urls = resolve_urls(s, trading_url="http://127.0.0.1:5000/", data_url="http://127.0.0.1:5000")
    assert urls.trading == "http://127.0.0.1:5000"
    assert urls.trading_stream == "ws://127.0.0.1:5000/stream"
    assert urls.data_stream == "ws://127.0.0.1:5000/v2/iex"


def test_urls_for_the_local_venue_must_be_given():
    with pytest.raises(ValueError):
        resolve_urls(Settings())


def test_stream_reconnects_are_paced_by_the_engine_backoff():
    # alpaca-py asks _reconnect_delay(retries) before each attempt: ours answers
    from engine.backoff import Backoff
    from engine.broker import streams

    runner = streams.trade_updates(
        KEY, SECRET, url="ws://127.0.0.1:9/stream", paper=True, emit=lambda e: None, scrub=Scrubber([SECRET])
    )
    for retries in range(1, 9):
        plain = min(30.0, 2.0 ** (retries - 1))
        assert plain / 2 <= runner.stream._reconnect_delay(retries) <= plain
    fixed = streams.StreamRunner(
        Channel.TRADE_STREAM,
        runner.stream,
        lambda e: None,
        Scrubber([]),
        lambda m: False,
        reconnect=Backoff(0.1, 3.0, 1.0),
    )
    assert [fixed.stream._reconnect_delay(r) for r in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.9, 1.0])


async def test_a_call_without_an_answer_in_time_times_out_and_its_late_answer_is_dropped(broker):
    import time as _time

    import requests

    from engine.broker.alpaca import TRADING
    from engine.broker.ratelimit import Priority

    broker.call_timeout = 0.2
    t0 = _time.monotonic()
    with pytest.raises(requests.Timeout, match="no answer within"):
        await broker._call(Priority.QUERY, TRADING, _time.sleep, 0.6)  # noqa: SLF001
    assert _time.monotonic() - t0 < 0.5, "the caller stopped waiting at call_timeout"
    await asyncio.sleep(0.6)  # the worker finishes; its answer goes nowhere
    assert await broker._call(Priority.QUERY, TRADING, lambda: 42) == 42, "the worker and its slot came back"  # noqa: SLF001
