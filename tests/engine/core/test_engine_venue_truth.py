"""The venue is the truth (rule 12): where journal and venue disagree, an explicit
journal event resolves it, or the session fails closed saying what changed.

Real Sessions (the Engine, engine/sim in process, alpaca-py between them):

- a fill the venue made between the two listings of one reconciliation pass (the
  order is partially filled in the open listing, filled in the closed one) counts
  once: fills from reconciliation follow the venue's cumulative quantity per order;
- orders the venue no longer has (an account reset under a live session) end
  VANISHED and leave every count, the session fails closed, and the kill switch
  counts only what the venue cancelled;
- a venue answering for another account fails the session closed, naming both;
- the built-in venue starts empty at every start: a new session, the previous
  one's open orders settled as vanished;
- an order of ours the journal lost is recognised by its client_order_id, and its
  batch counts as processed (the book, from journal events)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import requests
from alpaca.common.exceptions import APIError

from engine import events as ev
from engine.commands import Halt
from engine.model import Order, OrderStatus, Side
from engine.orders import (
    CLIENT_ORDER_ID_MAX,
    OrderBook,
    bar_number,
    make_client_order_id,
    parse_client_order_id,
    session_short,
)
from tests.engine.core.enginekit import KEY, SECRET, Rig, venue_orders
from tests.engine.core.test_engine_cancel_faults import resting_orders
from tests.support import wait_for

HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


def of(rig: Rig, kind: type) -> list:
    return [e for e in rig.journal_events() if isinstance(e, kind)]


def venue_order(rig: Rig, cid: str) -> dict | None:
    try:
        return rig.trading.get_order_by_client_id(cid)
    except APIError:
        return None


# ---- 4. a fill between the two listings of one pass ---------------------------------------


def test_an_order_filled_between_the_open_and_the_closed_listing_is_filled_once(make_rig):
    rig = make_rig(sim={"frozen_clock": True})
    cid = resting_orders(rig)[0]
    v = venue_order(rig, cid)
    assert v is not None and v["status"] == "new"
    symbol, qty, limit = v["symbol"], Decimal(v["qty"]), Decimal(v["limit_price"])
    assert qty >= 2, v

    # the engine learns of fills by REST only from now on
    rig.faults(trade_stream_down=True)
    rig.venue.drop_trade_stream()
    wait_for(lambda: rig.snapshot.connectivity.trade_stream != "up", what="the trade stream down")

    def fill(partial: bool) -> None:
        rig.venue.set_partial_fill_prob(1.0 if partial else 0.0)
        rig.venue.set_quote(symbol, limit - Decimal("0.01"), limit)  # marketable now: the venue fills
        want = (
            (lambda o: Decimal(0) < Decimal(o["filled_qty"]) < qty) if partial else (lambda o: o["status"] == "filled")
        )
        wait_for(lambda: want(venue_order(rig, cid)), what=f"{cid} {'partially ' if partial else ''}filled")

    broker = rig.engine.broker
    real = broker.list_orders
    seen: dict[str, Decimal] = {}

    async def racing(status="all", after=None, **kw):
        """The real listing; the first open one of a pass is taken with the order
        partially filled, and the venue fills the rest before the closed one."""
        if status != "open" or seen:
            return await real(status, after, **kw)
        await asyncio.to_thread(fill, True)
        out = await real(status, after, **kw)
        seen["open"] = next(o.filled_qty for o in out if o.client_order_id == cid)
        await asyncio.to_thread(fill, False)
        return out

    broker.list_orders = racing  # type: ignore[method-assign]
    wait_for(lambda: "open" in seen, what="a reconciliation pass through the race")
    assert Decimal(0) < seen["open"] < qty, seen

    wait_for(
        lambda: rig.engine.book.get(cid).status is OrderStatus.FILLED, what=f"{cid} filled in the book", timeout=30
    )
    order = rig.engine.book.get(cid)
    assert order.filled_qty == qty, f"{cid}: the engine counts {order.filled_qty} filled of {qty}"
    fills = [e.fill.qty for e in of(rig, ev.FillApplied) if e.fill.client_order_id == cid]
    assert sum(fills) == qty, fills
    c = rig.settle()
    assert c.ok, c
    assert rig.engine.portfolio.positions[symbol].qty == c.positions[symbol]


# ---- 2. orders the venue no longer has ------------------------------------------------------


def test_orders_lost_by_a_venue_reset_vanish_leave_every_count_and_the_session_fails_closed(make_rig):
    rig = make_rig(sim={"frozen_clock": True})
    cids = resting_orders(rig)
    assert all(cid in rig.engine.portfolio.working for cid in cids)

    rig.venue.reset()  # the venue forgets every order, position and dollar
    wait_for(
        lambda: {e.client_order_id for e in of(rig, ev.OrderVanished)} == set(cids),
        timeout=30,
        what="the four orders settled as vanished",
    )
    for cid in cids:
        assert rig.engine.book.get(cid).status is OrderStatus.VANISHED
        assert cid not in rig.engine.portfolio.working, "a vanished order still counts as working"
    assert not list(rig.engine.book.iter_open()), "a vanished order is still open in the book"

    wait_for(
        lambda: not rig.snapshot.trading_ready,
        what=f"trading held (reconciliations: {[(e.trigger, e.counts) for e in of(rig, ev.ReconcileCompleted)]})",
    )
    snap = rig.snapshot
    assert snap.trading_state.value == "HALTED"
    assert "none of this session's orders" in snap.not_ready_reason, snap.not_ready_reason
    mismatches = of(rig, ev.VenueMismatch)
    assert [m.what for m in mismatches] == ["orders"], mismatches

    # the kill switch counts what the venue cancelled: nothing (it has nothing)
    assert rig.session.execute_sync(Halt("drill")).ok
    wait_for(lambda: rig.snapshot.kill_switch.phase == "confirmed", what=f"kill switch {rig.snapshot.kill_switch}")
    sent = [k for k in of(rig, ev.KillSwitch) if k.phase == "sent"]
    assert sent and sent[-1].counts["requested"] == 0, sent
    assert rig.snapshot.kill_switch.cancels_confirmed == 0

    # and nothing more goes out
    before = len(of(rig, ev.SubmitSent))
    rig.venue.advance(1)
    rig.bar({"MSFT": 0.9})
    assert len(of(rig, ev.SubmitSent)) == before
    assert venue_orders(rig.trading) == []


def test_a_venue_answering_for_another_account_fails_the_session_closed_naming_both(make_rig):
    rig = make_rig(sim={"frozen_clock": True})
    journal_account = rig.engine.sync.journal_account
    assert journal_account, "the account is journaled at start-up"
    assert of(rig, ev.AccountSnapshot)[-1].account_number == journal_account

    r = requests.post(rig.venue.trading_url + "/sim/v1/reset", json={"new_account": True}, headers=HEADERS, timeout=10)
    r.raise_for_status()
    other = r.json()["account_number"]
    assert other != journal_account

    wait_for(lambda: of(rig, ev.VenueMismatch), timeout=30, what="the account change detected")
    m = of(rig, ev.VenueMismatch)[0]
    assert (m.what, m.journal_account, m.venue_account) == ("account", journal_account, other)
    wait_for(lambda: not rig.snapshot.trading_ready, what="trading held")
    snap = rig.snapshot
    assert snap.trading_state.value == "HALTED"
    assert journal_account in snap.not_ready_reason and other in snap.not_ready_reason, snap.not_ready_reason

    before = len(of(rig, ev.SubmitSent))
    rig.venue.advance(1)
    rig.bar({"AAPL": 0.9})
    assert len(of(rig, ev.SubmitSent)) == before, "an order went to another account"
    assert venue_orders(rig.trading) == []


def test_the_built_in_venue_starts_empty_so_a_restart_is_a_new_session_and_old_orders_vanish(tmp_path):
    first = Rig(tmp_path, sim={"frozen_clock": True})
    try:
        cids = resting_orders(first)
        old_session = first.engine.session_id
    finally:
        first.stop()

    (tmp_path / "signals.jsonl").write_text("")  # the new session starts on no signals
    second = Rig(tmp_path, sim={"frozen_clock": True})
    try:
        assert second.engine.session_id != old_session, "continued a session on a venue that has none of it"
        started = of(second, ev.SessionStarted)[-1]
        assert started.session_id == second.engine.session_id and not started.resumed
        wait_for(
            lambda: {e.client_order_id for e in of(second, ev.OrderVanished)} >= set(cids),
            timeout=30,
            what="the previous session's open orders settled as vanished",
        )
        assert second.snapshot.trading_ready, second.snapshot.not_ready_reason
        assert not [cid for cid in cids if cid in second.engine.portfolio.working]
        assert not of(second, ev.VenueMismatch)
        # it trades: the old orders block nothing (no duplicate / opposite-side denial)
        second.venue.advance(1)
        second.bar({"AAPL": 0.9})
        wait_for(lambda: len(venue_orders(second.trading)) == 1, what="one new order at the fresh venue")
        c = second.settle()
        assert c.ok, c
    finally:
        second.stop()


# ---- 3. ids that name their session and batch ------------------------------------------------------

SESSION = "20260302-k3j7x2mq"
BAR = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def test_a_client_order_id_names_its_session_bar_symbol_and_seq():
    n = bar_number(SESSION, BAR)
    assert n == 15 * 3600 + 30 * 60
    cid = make_client_order_id(SESSION, n, "BRK.B", 7003)
    parsed = parse_client_order_id(cid)
    assert parsed is not None
    assert (parsed.session_short, parsed.bar_seq, parsed.symbol_part, parsed.seq) == (
        session_short(SESSION),
        n,
        "BRK_2EB",
        7003,
    )
    assert parsed.purpose == "flatten"
    assert parse_client_order_id("my-own-order-1") is None
    assert parse_client_order_id(cid + "x-") is None
    # the longest: a session continued for weeks, a 16-character symbol, a flatten round
    late = bar_number(SESSION, datetime(2026, 5, 30, tzinfo=UTC))
    assert late is not None
    assert len(make_client_order_id(SESSION, late, "AAAA.BBBB", 8999)) <= CLIENT_ORDER_ID_MAX


def test_a_batch_known_only_from_its_orders_at_the_venue_counts_as_processed():
    n = bar_number(SESSION, BAR)
    assert n is not None
    cid = make_client_order_id(SESSION, n, "AAPL", 0)
    adopted = Order(
        client_order_id=cid,
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(10),
        status=OrderStatus.NEW,
        venue_order_id="4b0b6f0e-0000-4000-8000-000000000001",
        reason="signal",
    )
    events = [
        ev.SessionStarted(session_id=SESSION, config_hash="c", venue_date=BAR.date()),
        ev.OrderRecovered(order=adopted, batch_seq=n),
    ]
    book = OrderBook.from_replay(events)
    assert not book.skipped, book.skipped
    assert book.ledger.is_processed(BAR), "the batch of an order found at the venue would be traded again"
    assert book.ledger.seq_for(BAR) == n
    assert not book.ledger.is_processed(BAR.replace(minute=31))
    assert book.get(cid) is not None and not book.get(cid).external
    assert [o.client_order_id for o in book.open_orders("AAPL")] == [cid], "an adopted order counts as open"


def test_no_fill_takes_an_order_past_its_quantity():
    cid = "xd-260302k3j7x2mq-1-AAPL-0"
    order = Order(client_order_id=cid, symbol="AAPL", side=Side.BUY, qty=Decimal(401), status=OrderStatus.NEW)
    from engine.model import Fill

    def fill(eid: str, qty: int) -> ev.FillApplied:
        return ev.FillApplied(
            fill=Fill(
                execution_id=eid,
                client_order_id=cid,
                symbol="AAPL",
                side=Side.BUY,
                qty=Decimal(qty),
                price=Decimal(1),
                ts=BAR,
            )
        )

    book = OrderBook.from_replay(
        [ev.OrderRecovered(order=order, batch_seq=1), fill("sync-1-200", 200), fill("sync-1-401", 218)]
    )
    assert book.get(cid).filled_qty == 200
    assert [str(reason) for _, reason in book.skipped] and "would fill 418 of 401" in book.skipped[0][1]


def test_a_bar_an_earlier_session_processed_is_not_processed_by_a_new_one():
    later = "20260302-b3j7x2mq"
    events = [
        ev.SessionStarted(session_id=SESSION, config_hash="c", venue_date=BAR.date()),
        ev.BatchProcessed(bar_ts=BAR, batch_seq=bar_number(SESSION, BAR) or 0),
        ev.SessionEnded(how="stopped"),
        ev.SessionStarted(session_id=later, config_hash="c", venue_date=BAR.date()),
    ]
    book = OrderBook.from_replay(events, later)
    assert book.ledger.session_id == later
    assert book.ledger.is_processed(BAR), "a new session (a fresh built-in venue) would trade the bar again"
    assert book.ledger.processed_count == 0 and book.ledger.last_processed is None
