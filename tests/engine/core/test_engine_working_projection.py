"""The portfolio's working orders are a projection of the recorded events: after
any sequence of order events through the Engine's recorder, and after a replay of
the journal into a fresh engine, the portfolio counts exactly the orders the book
says are working (at the venue or in flight), each with its remaining quantity.

Pure engine logic: the Engine is built but never started (no broker is called);
its recorder writes a real journal in a temporary folder."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine import events as ev
from engine.config import load_settings
from engine.core import Engine
from engine.journal import Journal
from engine.model import DenialReason, Fill, Order, OrderStatus, Side
from engine.universe import Universe

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = load_settings(ROOT / "config" / "execution.toml", env={})
UNIVERSE = Universe.load(ROOT / "config" / "universe.toml")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM"]


def engine_on(path: Path) -> Engine:
    eng = Engine(SETTINGS, broker=None, journal=Journal(path), universe=UNIVERSE)  # type: ignore[arg-type]
    eng.recorder.open_journal()
    return eng


def expected_working(eng: Engine) -> dict[str, Decimal]:
    """What the book says counts as working: ours, at the venue or in flight (or
    released to be sent), with the quantity still to fill."""
    return {
        o.client_order_id: o.remaining_qty
        for o in eng.book.iter_open()
        if not o.external and (o.status.is_working or o.client_order_id in eng.recorder.releasing)
    }


def assert_no_drift(eng: Engine, where: str) -> None:
    pf = eng.portfolio
    got = {cid: wo.remaining for cid, wo in pf.working.items()}
    want = expected_working(eng)
    assert got == want, f"{where}: portfolio working {got} != book {want}"
    per_side: dict[tuple[str, Side], Decimal] = defaultdict(Decimal)
    for cid, remaining in want.items():
        o = eng.book.get(cid)
        per_side[(o.symbol, o.side)] += remaining
    for sym in SYMBOLS:
        for side in Side:
            assert pf.open_qty(sym, side) == per_side[(sym, side)], (
                f"{where}: open {side.value} qty of {sym} is {pf.open_qty(sym, side)}, "
                f"book says {per_side[(sym, side)]}"
            )


def order_story(eng: Engine, rng: random.Random, n: int):
    """One order from intent to wherever the dice take it, a step per yield."""
    cid = f"t{n:04d}"
    sym = rng.choice(SYMBOLS)
    qty = Decimal(rng.randint(2, 9))
    order = Order(
        client_order_id=cid,
        symbol=sym,
        side=rng.choice(list(Side)),
        qty=qty,
        limit_price=Decimal("100.00"),
        reason="signal",
        created_at=T0,
        bar_ts=T0,
    )
    rec = eng.recorder
    assert rec.record(ev.IntentCreated(order=order, batch_seq=0))
    yield
    path = rng.choice(["auto", "approve", "await", "deny"])
    if path == "deny":
        assert rec.record(ev.IntentDenied(client_order_id=cid, reason=DenialReason.TRADING_HALTED, detail="test"))
        return
    if path in ("approve", "await"):
        assert rec.record(ev.ApprovalRequested(client_order_id=cid, expires_at=T0 + timedelta(minutes=5)))
        yield
        if path == "await":
            return
        rec.record_applied(eng.book.approve(cid, by="test", now=T0))
        yield
    rec.release(cid)
    yield
    if rng.random() < 0.1:
        rec.withhold([cid])  # the durable write failed: never sent
        return
    assert rec.write_sends([eng.book.get(cid)]) is not None
    yield
    outcome = rng.choice(["acked", "acked", "acked", "rejected", "unknown"])
    if outcome == "rejected":
        assert rec.record(ev.SubmitRejected(client_order_id=cid, http_status=422, message="no"))
        return
    if outcome == "unknown":
        assert rec.record(ev.SubmitUnknown(client_order_id=cid, cause="timeout"))
        yield
        fate = rng.choice(["absent", "found", "in flight"])
        if fate == "absent":
            assert rec.record(ev.SubmitRejected(client_order_id=cid, message="lookup: not found"))
            return
        if fate == "in flight":
            return  # still unknown: it counts as working
    assert rec.record(ev.SubmitAcked(client_order_id=cid, venue_order_id=f"v-{cid}", status=OrderStatus.NEW))
    yield
    if rng.random() < 0.25:
        return  # resting at the venue
    filled, k = Decimal(0), 0
    while filled < qty:
        step = Decimal(rng.randint(1, int(qty - filled)))
        filled += step
        k += 1
        status = OrderStatus.FILLED if filled == qty else OrderStatus.PARTIALLY_FILLED
        fill = Fill(
            execution_id=f"x-{cid}-{k}",
            client_order_id=cid,
            symbol=sym,
            side=order.side,
            qty=step,
            price=Decimal("100.00"),
            ts=T0,
        )
        assert rec.record(ev.FillApplied(fill=fill, status=status))
        yield
        if filled < qty and rng.random() < 0.15:
            return  # partly filled, resting
        if filled < qty and rng.random() < 0.3:
            assert rec.record(
                ev.OrderStatusChanged(
                    client_order_id=cid, status=OrderStatus.CANCELED, source="stream", venue_order_id=f"v-{cid}"
                )
            )
            return


@pytest.mark.parametrize("seed", range(6))
def test_the_portfolio_counts_what_the_book_says_is_working_after_every_event_and_a_replay(tmp_path, seed):
    rng = random.Random(seed)
    journal = tmp_path / "journal.sqlite"
    eng = engine_on(journal)
    stories = [order_story(eng, rng, n) for n in range(40)]
    steps = 0
    while stories:
        story = rng.choice(stories)
        try:
            next(story)
        except StopIteration:
            stories.remove(story)
        steps += 1
        assert_no_drift(eng, f"seed {seed}, step {steps}")
    assert eng.portfolio.working, "some orders should still be working at the end (else the check is vacuous)"
    assert any(o.status is OrderStatus.FILLED for o in eng.book.orders.values())
    still_released = set(eng.recorder.releasing)
    eng.journal.close()

    # a restart: the journal replayed into a fresh engine gives the same working orders
    again = engine_on(journal)
    want = {cid: r for cid, r in expected_working(eng).items() if cid not in still_released}
    assert {cid: wo.remaining for cid, wo in again.portfolio.working.items()} == want
    assert_no_drift(again, f"seed {seed}, after replay")
    again.journal.close()
