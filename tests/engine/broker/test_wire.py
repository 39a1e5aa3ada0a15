"""Wire translation (engine/broker/wire.py): the venue's JSON, as alpaca-py hands
it over with raw_data=True, becomes typed records once; a word outside Alpaca's
set makes the record unreadable instead of travelling on as a string. (What
crosses the wire is tested through alpaca-py against engine/sim in
test_alpaca_broker.py; these are the parse rules on their own.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.broker.base import CancelOutcomeKind, SubmitOutcomeKind, TradeEvent
from engine.broker.wire import Failure, cancel_outcome, order_from_raw, submit_outcome, trade_update_from_raw
from engine.model import OrderStatus, OrderType, Side, TimeInForce


def raw_order(**over) -> dict:
    d = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "cid-1",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "3",
        "notional": None,
        "filled_qty": "1",
        "filled_avg_price": "101.25",
        "status": "partially_filled",
        "order_type": "limit",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "101.5",
        "stop_price": None,
        "created_at": "2026-12-01T14:30:00.123456Z",
        "updated_at": "2026-12-01T14:30:01Z",
        "submitted_at": "2026-12-01T14:30:00.2Z",
    }
    d.update(over)
    return d


def test_an_order_arrives_with_enums_and_decimals():
    o = order_from_raw(raw_order())
    assert (o.side, o.status, o.order_type, o.time_in_force) == (
        Side.BUY,
        OrderStatus.PARTIALLY_FILLED,
        OrderType.LIMIT,
        TimeInForce.DAY,
    )
    assert (o.qty, o.filled_qty, o.limit_price) == (Decimal(3), Decimal(1), Decimal("101.5"))
    # str enums: comparisons with the words still hold for code that uses them
    assert o.status == "partially_filled" and o.side == "buy"


def test_every_status_alpaca_py_accepts_parses():
    from alpaca.trading.enums import OrderStatus as AlpacaStatus

    assert {order_from_raw(raw_order(status=s.value)).status.value for s in AlpacaStatus} == {
        s.value for s in AlpacaStatus
    }


@pytest.mark.parametrize(
    "field, word",
    [
        ("status", "exploded"),
        ("status", "unknown"),
        ("status", "created"),
        ("side", "hold"),
        ("time_in_force", "forever"),
    ],
)
def test_a_word_outside_the_set_makes_the_order_unreadable(field, word):
    with pytest.raises(ValueError, match=repr(word)):
        order_from_raw(raw_order(**{field: word}))


def test_an_external_trailing_stop_order_is_readable():
    o = order_from_raw(raw_order(order_type="trailing_stop", type="trailing_stop", limit_price=None))
    assert o.order_type is OrderType.TRAILING_STOP


def test_a_trade_update_carries_its_event_as_an_enum():
    u = trade_update_from_raw(
        {
            "event": "fill",
            "order": raw_order(status="filled", filled_qty="3"),
            "timestamp": "2026-12-01T14:30:02Z",
            "execution_id": "e-1",
            "price": "101.3",
            "qty": "2",
            "position_qty": "3",
        }
    )
    assert u.event is TradeEvent.FILL and u.event.is_fill and u.order.status is OrderStatus.FILLED
    assert not TradeEvent.CANCELED.is_fill
    with pytest.raises(ValueError):
        trade_update_from_raw({"event": "teleported", "order": raw_order(), "timestamp": "2026-12-01T14:30:02Z"})


def test_what_a_refusal_means_for_a_submit_and_a_cancel():
    refused = Failure("http", 403, 40310000, "insufficient buying power", json_body=True)
    assert submit_outcome(refused).kind is SubmitOutcomeKind.REJECTED
    duplicate = Failure("http", 422, 40010001, "client_order_id must be unique", json_body=True)
    assert submit_outcome(duplicate).kind is SubmitOutcomeKind.UNKNOWN
    for unclear in (
        Failure("http", 429, 42910000, "rate limit", json_body=True),
        Failure("http", 503),
        Failure("timeout", message="ReadTimeout"),
    ):
        assert submit_outcome(unclear).kind is SubmitOutcomeKind.UNKNOWN
    assert cancel_outcome(Failure("http", 404, json_body=True)).kind is CancelOutcomeKind.NOT_FOUND
    assert cancel_outcome(Failure("http", 422, json_body=True)).kind is CancelOutcomeKind.NOT_CANCELABLE
    assert cancel_outcome(Failure("http", 500)).kind is CancelOutcomeKind.UNKNOWN
