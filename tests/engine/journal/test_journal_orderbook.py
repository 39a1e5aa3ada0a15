"""The OrderBook: every transition in the table works and the rest raise without
changing anything, late fills after a cancel count, a repeated execution id does
not, the approval queue expires on time, and the indexes stay in step."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine import events as ev
from engine.model import TRANSITIONS, DenialReason, InvalidStateTransition, OrderStatus, Side
from engine.orders import DuplicateOrder, OrderBook, OrderBookError, UnknownOrder
from tests.engine.journal.journal_builders import at, external, fill, intent

S = OrderStatus
# in a fixed order (the table is built from sets): parallel test workers must collect the same tests
ALLOWED = [(cur, new) for cur in S if cur in TRANSITIONS for new in sorted(TRANSITIONS[cur], key=lambda s: s.value)]
DISALLOWED = [(cur, new) for cur in S for new in S if new != cur and new not in TRANSITIONS[cur]]


def book_with(status: OrderStatus, coid: str = "o1") -> OrderBook:
    """A book holding one order in the given status, reached the way the engine does."""
    book = OrderBook()
    if status is S.CREATED:
        book.apply(intent(coid))
    elif status is S.AWAITING_APPROVAL:
        book.apply(intent(coid))
        book.apply(ev.ApprovalRequested(client_order_id=coid, expires_at=at(60)))
    else:
        book.apply(external(coid, status))
    return book


def snapshot(book: OrderBook):
    return (
        {k: o.model_dump() for k, o in book.orders.items()},
        book.open_count,
        sorted((k, [o.client_order_id for o in v.values()]) for k, v in book._open.items()),
        sorted(book._executions),
        sorted(book._approvals),
    )


@pytest.mark.parametrize("cur, new", ALLOWED, ids=lambda s: s.value)
def test_every_transition_in_the_table_is_applied(cur, new):
    book = book_with(cur)
    book.apply(ev.OrderStatusChanged(client_order_id="o1", status=new, source="stream"))
    order = book.get("o1")
    assert order.status is new
    assert book.open_count == (0 if new.is_final else 1)
    assert (order in book.open_orders("AAPL", Side.BUY)) == (not new.is_final)


@pytest.mark.parametrize("cur, new", DISALLOWED[::3], ids=lambda s: s.value)
def test_a_transition_outside_the_table_raises_and_changes_nothing(cur, new):
    book = book_with(cur)
    before = snapshot(book)
    with pytest.raises(InvalidStateTransition, match=f"{cur.value} -> {new.value}"):
        book.apply(ev.OrderStatusChanged(client_order_id="o1", status=new))
    assert snapshot(book) == before


def test_every_transition_outside_the_table_is_refused_by_check():
    for cur, new in DISALLOWED:
        with pytest.raises(InvalidStateTransition):
            book_with(cur).check(ev.OrderStatusChanged(client_order_id="o1", status=new))


def test_an_order_lives_from_intent_to_filled():
    book = OrderBook()
    book.apply(intent("o1", qty="10"))
    book.apply(ev.SubmitSent(client_order_id="o1", at=at(1)))
    book.apply(ev.SubmitAcked(client_order_id="o1", venue_order_id="v1", status=S.ACCEPTED))
    assert book.by_venue_id("v1").client_order_id == "o1"
    book.apply(ev.OrderStatusChanged(client_order_id="o1", status=S.NEW, source="stream"))
    book.apply(fill("o1", "e1", qty="4", price="100"))
    assert book.get("o1").status is S.PARTIALLY_FILLED and book.open_count == 1
    book.apply(fill("o1", "e2", qty="6", price="101"))
    order = book.get("o1")
    assert order.status is S.FILLED and order.filled_qty == Decimal("10")
    assert order.filled_avg_price == Decimal("100.6")
    assert book.open_count == 0 and book.open_orders("AAPL") == []


def test_an_unknown_submit_is_never_sent_again():
    book = OrderBook()
    book.apply(intent("o1"))
    book.apply(ev.SubmitSent(client_order_id="o1"))
    book.apply(ev.SubmitUnknown(client_order_id="o1", cause="timeout"))
    with pytest.raises(InvalidStateTransition):
        book.apply(ev.SubmitSent(client_order_id="o1"))
    book.apply(ev.OrderStatusChanged(client_order_id="o1", status=S.NEW, source="rest", venue_order_id="v9"))
    assert book.by_venue_id("v9") is book.get("o1")


def test_a_local_denial_carries_its_reason_and_the_venue_refusal_is_rejected():
    book = OrderBook()
    book.apply(intent("o1"))
    book.apply(ev.IntentDenied(client_order_id="o1", reason=DenialReason.TRADING_HALTED, detail="halted"))
    assert (book.get("o1").status, book.get("o1").denial) == (S.DENIED, DenialReason.TRADING_HALTED)
    book.apply(intent("o2"))
    book.apply(ev.SubmitSent(client_order_id="o2"))
    book.apply(
        ev.SubmitRejected(client_order_id="o2", http_status=403, code=40310000, message="insufficient buying power")
    )
    assert book.get("o2").status is S.REJECTED and book.open_count == 0


def test_a_late_fill_after_a_cancel_is_applied_and_the_order_stays_canceled_until_complete():
    book = book_with(S.NEW)
    book.apply(ev.OrderStatusChanged(client_order_id="o1", status=S.CANCELED))
    assert book.open_count == 0
    assert book.apply(fill("o1", "late-1", qty="3"))
    order = book.get("o1")
    assert (order.status, order.filled_qty) == (S.CANCELED, Decimal("3"))
    assert book.apply(fill("o1", "late-2", qty="7"))
    assert book.get("o1").status is S.FILLED


def test_a_repeated_execution_id_is_ignored():
    book = book_with(S.NEW)
    assert book.apply(fill("o1", "e1", qty="4")) is True
    assert book.apply(fill("o1", "e1", qty="4")) is False
    assert book.get("o1").filled_qty == Decimal("4") and book.get("o1").fill_ids == ["e1"]
    assert book.has_execution("e1")


def test_a_fill_that_does_not_match_its_order_raises():
    book = book_with(S.NEW)
    with pytest.raises(OrderBookError, match="does not match"):
        book.apply(fill("o1", "e1", qty="1", symbol="MSFT"))
    with pytest.raises(UnknownOrder):
        book.apply(fill("nope", "e2", qty="1"))


def test_a_client_order_id_is_used_once():
    book = OrderBook()
    book.apply(intent("o1"))
    with pytest.raises(DuplicateOrder):
        book.apply(intent("o1"))
    with pytest.raises(DuplicateOrder):
        book.apply(external("o1", S.NEW))


def test_the_book_does_not_share_state_with_the_journaled_event():
    event = intent("o1")
    book = OrderBook()
    book.apply(event)
    book.apply(ev.SubmitSent(client_order_id="o1"))
    assert event.order.status is S.CREATED


def test_indexes_by_symbol_side_and_venue_id():
    book = OrderBook()
    book.apply(intent("b1", symbol="AAPL", side=Side.BUY))
    book.apply(intent("s1", symbol="AAPL", side=Side.SELL))
    book.apply(intent("b2", symbol="MSFT", side=Side.BUY))
    book.apply(external("x1", S.NEW, symbol="AAPL", side=Side.SELL))
    assert book.open_count == 4
    assert [o.client_order_id for o in book.open_orders("AAPL", Side.SELL)] == ["s1", "x1"]
    assert {o.client_order_id for o in book.open_orders("AAPL")} == {"b1", "s1", "x1"}
    assert book.get("x1").external and book.by_venue_id("v-x1").client_order_id == "x1"
    book.apply(ev.IntentDenied(client_order_id="s1", reason=DenialReason.OPPOSITE_SIDE_ORDER_OPEN))
    assert [o.client_order_id for o in book.open_orders("AAPL", Side.SELL)] == ["x1"]
    assert book.open_count == 3


# ---- the approval queue ------------------------------------------------------------------


def awaiting(book: OrderBook, coid: str, deadline_s: float) -> None:
    book.apply(intent(coid))
    book.apply(ev.ApprovalRequested(client_order_id=coid, expires_at=at(deadline_s)))


def test_intents_nobody_approved_expire_at_their_deadline_and_no_sooner():
    book = OrderBook()
    awaiting(book, "a", 10)
    awaiting(book, "b", 20)
    awaiting(book, "c", 30)
    assert [o.client_order_id for o in book.awaiting_approval] == ["a", "b", "c"]
    approved = book.approve("b")
    assert approved == ev.IntentApproved(client_order_id="b", by="operator")
    assert book.expire(at(9.999)) == []
    expired = book.expire(at(25))
    assert [e.client_order_id for e in expired] == ["a"], "b was approved, c is not due"
    order = book.get("a")
    assert (order.status, order.denial) == (S.EXPIRED, DenialReason.APPROVAL_EXPIRED)
    assert book.expire(at(25)) == []
    assert [o.client_order_id for o in book.awaiting_approval] == ["c"]
    with pytest.raises(OrderBookError, match="not awaiting approval"):
        book.approve("a")
    with pytest.raises(OrderBookError, match=r"deadline .* has passed"):
        book.approve("c", now=at(30))
    assert book.approve("c", now=at(29.9)).client_order_id == "c"


def test_an_approved_intent_is_sent_and_an_unapproved_one_is_not():
    book = OrderBook()
    awaiting(book, "a", 10)
    with pytest.raises(OrderBookError, match="has not been approved"):
        book.apply(ev.SubmitSent(client_order_id="a"))
    book.approve("a")
    assert book.expire(at(60)) == [], "an approved intent does not expire"
    book.apply(ev.SubmitSent(client_order_id="a"))
    assert book.get("a").status is S.SUBMITTING


def test_the_operator_rejects_an_intent():
    book = OrderBook()
    awaiting(book, "a", 10)
    event = book.reject("a", detail="not today")
    assert event.client_order_id == "a"
    order = book.get("a")
    assert (order.status, order.denial, order.denial_detail) == (
        S.DENIED,
        DenialReason.REJECTED_BY_OPERATOR,
        "not today",
    )
    assert book.awaiting_approval == [] and book.open_count == 0
    with pytest.raises(OrderBookError):
        book.reject("a")
