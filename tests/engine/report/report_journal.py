"""A realistic journal for the report tests, written through engine.journal.Journal
with a controlled wall clock (so every latency is exact).

Two sessions. The earlier one ("day 1") buys 1 SPY and is sealed. The main one:

  t=0      session opened; reconcile; broker positions: MSFT +10 @ 400 (last 401);
           account equity 100000 / last_equity 99500
  t=500    four dropped signals (NAN twice, UNKNOWN_SYMBOL, MALFORMED with garbage)
  t=1000   batch 0 (bar B0): seven intents journaled together
             o1 AAPL buy 100   decision 100.00  auto   -> sent 1010, ack 1030,
                                                        fills 40 @ 100.05 (1100), 60 @ 100.10 (1200)
             o2 MSFT sell 10   decision 400.00  auto   -> sent 1020, ack 1050, fill 10 @ 399.60 (1300)
             o3 TSLA buy 5     denied POSITION_EXCEEDS_MAX
             o4 GOOG buy 20    approval requested -> expired (2500)
             o5 AMZN sell 30   decision 200.00  auto   -> sent 1040, rejected by the venue (1060)
             o6 META buy 10    decision 300.00  approval requested -> approved 3000, sent 3010,
                                                        ack 3040, fill 4 @ 299.70 (3100)
             o7 NFLX buy 2     denied POSITION_EXCEEDS_MAX
  t=4000   a duplicate of o1's second fill (same execution id) arrives again
  t=5000   HALTED (daily loss), kill switch requested; cancel o6; sent 5020;
           o6 canceled 5200; confirmed 5300
  t=6000   batch 1: o8 AAPL sell 50 denied TRADING_HALTED
  t=7000   broker positions AAPL +100 @ 100.08 (last 100.20), META +4 @ 299.70 (last 299.00);
           account equity 100010 / last_equity 99500
  t=8000   sealed "stopped"
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import engine.journal as journal_module
from engine import events as ev
from engine.journal import Journal
from engine.model import DenialReason, Fill, Order, OrderStatus, Position, Side, TradingState

T0 = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
B0 = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
B1 = datetime(2026, 3, 5, 14, 31, tzinfo=UTC)
D = Decimal


class Clock:
    """Replaces engine.journal._utcnow: every journal row gets the time set here."""

    def __init__(self, start: datetime):
        self.start = start
        self.now = start

    def at_ms(self, ms: float) -> None:
        self.now = self.start + timedelta(milliseconds=ms)

    def __call__(self) -> str:
        return self.now.isoformat(timespec="microseconds")


def order(coid, symbol, side, qty, decision, limit=None, bar_ts=B0, signal=0.5, reason="signal"):
    return Order(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        qty=D(qty),
        limit_price=D(limit) if limit else None,
        decision_price=D(decision) if decision else None,
        bar_ts=bar_ts,
        signal=signal,
        reason=reason,
        created_at=bar_ts,
    )


def fill(coid, xid, symbol, side, qty, price, ts, status=None):
    return ev.FillApplied(
        fill=Fill(execution_id=xid, client_order_id=coid, symbol=symbol, side=side, qty=D(qty), price=D(price), ts=ts),
        status=status,
    )


def build(path, monkeypatch) -> dict:
    """Write the journal; returns the session ids and the order ids."""
    clock = Clock(T0 - timedelta(days=1))
    monkeypatch.setattr(journal_module, "_utcnow", clock)
    j = Journal(path)

    # ---- the earlier session ---------------------------------------------------
    old = j.open_session("cfg-old", date(2026, 3, 4)).session_id
    o0 = order("old-SPY", "SPY", Side.BUY, "1", "500.00", limit="501", bar_ts=T0 - timedelta(days=1))
    clock.at_ms(100)
    j.append(ev.IntentCreated(order=o0, batch_seq=0), durable=True)
    clock.at_ms(110)
    j.append(ev.SubmitSent(client_order_id="old-SPY", at=T0), durable=True)
    clock.at_ms(150)
    j.append(ev.SubmitAcked(client_order_id="old-SPY", venue_order_id="v-old", status=OrderStatus.NEW))
    clock.at_ms(200)
    j.append(fill("old-SPY", "x-old", "SPY", Side.BUY, "1", "500.00", T0, OrderStatus.FILLED))
    clock.at_ms(300)
    j.seal("stopped")

    # ---- the main session ------------------------------------------------------
    clock.start = T0
    clock.at_ms(0)
    sid = j.open_session("cfg-1", date(2026, 3, 5)).session_id
    j.append(ev.ReconcileCompleted(ok=True, trigger="startup", counts={"orders": 0}))
    j.append(
        ev.PositionsSnapshot(
            positions=[Position(symbol="MSFT", qty=D("10"), avg_entry_price=D("400.00"), last_price=D("401.00"))]
        )
    )
    j.append(ev.AccountSnapshot(cash=D("96000"), equity=D("100000"), last_equity=D("99500"), buying_power=D("192000")))
    j.append(ev.TradingStateChanged(state=TradingState.ACTIVE, cause="session start", previous=None))

    clock.at_ms(500)
    j.append(ev.SignalDropped(symbol="NVDA", reason="NAN: signal is NaN"))
    j.append(ev.SignalDropped(symbol="AMD", reason="NAN: signal is NaN"))
    j.append(ev.SignalDropped(symbol="ZZZZ", reason="UNKNOWN_SYMBOL: ZZZZ is not in the universe"))
    j.append(ev.SignalDropped(line='\x00\xff{"ts": |garbage', reason="MALFORMED: not a JSON object"))

    clock.at_ms(1000)
    intents = [
        order("o1", "AAPL", Side.BUY, "100", "100.00", limit="101.00", signal=0.42),
        order("o2", "MSFT", Side.SELL, "10", "400.00", limit="399.00", signal=-0.30),
        order("o3", "TSLA", Side.BUY, "5", "250.00", limit="251.00", signal=0.9),
        order("o4", "GOOG", Side.BUY, "20", "150.00", limit="151.00", signal=0.2),
        order("o5", "AMZN", Side.SELL, "30", "200.00", limit="199.00", signal=-0.6),
        order("o6", "META", Side.BUY, "10", "300.00", limit="301.00", signal=0.35),
        order("o7", "NFLX", Side.BUY, "2", "600.00", limit="601.00", signal=0.8),
    ]
    j.append_many([ev.IntentCreated(order=o, batch_seq=0) for o in intents], durable=True)
    expires = T0 + timedelta(seconds=2.5)
    j.append_many(
        [
            ev.IntentDenied(
                client_order_id="o3",
                reason=DenialReason.POSITION_EXCEEDS_MAX,
                detail="TSLA position would be 12,500 > 10,000",
            ),
            ev.ApprovalRequested(client_order_id="o4", expires_at=expires),
            ev.ApprovalRequested(client_order_id="o6", expires_at=expires + timedelta(seconds=5)),
            ev.IntentDenied(
                client_order_id="o7",
                reason=DenialReason.POSITION_EXCEEDS_MAX,
                detail="NFLX position would be 1,200 > 1,000",
            ),
            ev.BatchProcessed(bar_ts=B0, batch_seq=0, intents=7),
        ]
    )
    clock.at_ms(1010)
    j.append(ev.SubmitSent(client_order_id="o1", at=T0), durable=True)
    clock.at_ms(1020)
    j.append(ev.SubmitSent(client_order_id="o2", at=T0), durable=True)
    clock.at_ms(1030)
    j.append(ev.SubmitAcked(client_order_id="o1", venue_order_id="v-o1", status=OrderStatus.NEW))
    clock.at_ms(1040)
    j.append(ev.SubmitSent(client_order_id="o5", at=T0), durable=True)
    clock.at_ms(1050)
    j.append(ev.SubmitAcked(client_order_id="o2", venue_order_id="v-o2", status=OrderStatus.ACCEPTED))
    clock.at_ms(1060)
    j.append(
        ev.SubmitRejected(
            client_order_id="o5", http_status=403, code=40310000, message="insufficient qty available for order"
        )
    )
    clock.at_ms(1100)
    j.append(
        fill("o1", "x1", "AAPL", Side.BUY, "40", "100.05", T0 + timedelta(seconds=1), OrderStatus.PARTIALLY_FILLED)
    )
    clock.at_ms(1200)
    j.append(fill("o1", "x2", "AAPL", Side.BUY, "60", "100.10", T0 + timedelta(seconds=1.2), OrderStatus.FILLED))
    clock.at_ms(1300)
    j.append(fill("o2", "x3", "MSFT", Side.SELL, "10", "399.60", T0 + timedelta(seconds=1.3), OrderStatus.FILLED))
    clock.at_ms(2500)
    j.append(ev.IntentExpired(client_order_id="o4", at=expires))
    clock.at_ms(3000)
    j.append(ev.IntentApproved(client_order_id="o6", by="operator"))
    clock.at_ms(3010)
    j.append(ev.SubmitSent(client_order_id="o6", at=T0 + timedelta(seconds=3)), durable=True)
    clock.at_ms(3040)
    j.append(ev.SubmitAcked(client_order_id="o6", venue_order_id="v-o6", status=OrderStatus.NEW))
    clock.at_ms(3100)
    j.append(
        fill("o6", "x4", "META", Side.BUY, "4", "299.70", T0 + timedelta(seconds=3.1), OrderStatus.PARTIALLY_FILLED)
    )
    clock.at_ms(4000)  # the stream repeats an execution: de-duplicated by execution id
    j.append(fill("o1", "x2", "AAPL", Side.BUY, "60", "100.10", T0 + timedelta(seconds=1.2), OrderStatus.FILLED))

    clock.at_ms(5000)
    j.append(
        ev.TradingStateChanged(
            state=TradingState.HALTED, cause="daily loss limit reached (-2.1%)", previous=TradingState.ACTIVE
        )
    )
    j.append(ev.KillSwitch(phase="requested", detail="operator key K"))
    j.append(ev.CancelRequested(client_order_id="o6", cause="kill_switch"))
    clock.at_ms(5020)
    j.append(ev.KillSwitch(phase="sent", counts={"open": 1}))
    clock.at_ms(5200)
    j.append(ev.OrderStatusChanged(client_order_id="o6", status=OrderStatus.CANCELED, source="stream"))
    clock.at_ms(5300)
    j.append(ev.KillSwitch(phase="confirmed", counts={"canceled": 1}))

    clock.at_ms(6000)
    o8 = order("o8", "AAPL", Side.SELL, "50", "100.50", limit="100.40", bar_ts=B1, signal=-0.5)
    j.append(ev.IntentCreated(order=o8, batch_seq=1), durable=True)
    j.append(ev.IntentDenied(client_order_id="o8", reason=DenialReason.TRADING_HALTED, detail="HALTED"))
    j.append(ev.BatchProcessed(bar_ts=B1, batch_seq=1, intents=1))

    clock.at_ms(7000)
    j.append(
        ev.PositionsSnapshot(
            positions=[
                Position(symbol="AAPL", qty=D("100"), avg_entry_price=D("100.08"), last_price=D("100.20")),
                Position(symbol="META", qty=D("4"), avg_entry_price=D("299.70"), last_price=D("299.00")),
            ]
        )
    )
    j.append(ev.AccountSnapshot(cash=D("84800"), equity=D("100010"), last_equity=D("99500"), buying_power=D("169600")))
    clock.at_ms(8000)
    j.seal("stopped")
    j.close()
    return {"old": old, "main": sid}


def counted_builds(monkeypatch) -> list[int]:
    """Reports built from the journal's events (the fold, engine/report/fold.py, or
    building.build_report), not read from the cache: one item each, the rows folded
    (-1: build_report, the fold could not say). A fold the cache kept, continued with no
    new row (another scope or format of the same journal: no event read), is the
    cache's: not counted."""
    from engine.report import building, fold

    calls: list[int] = []
    real, real_fold = building.build_report, fold.fold_report

    def counting(*args, **kwargs):
        calls.append(-1)
        return real(*args, **kwargs)

    def counting_fold(path, session_id, kept, fingerprint):
        before = kept.rows if kept is not None else 0
        got = real_fold(path, session_id, kept, fingerprint)
        if got is not None and not (got[2] is kept and got[2].rows == before):
            calls.append(got[2].rows - (before if got[2] is kept else 0))
        return got

    monkeypatch.setattr(building, "build_report", counting)
    monkeypatch.setattr(fold, "fold_report", counting_fold)
    return calls
