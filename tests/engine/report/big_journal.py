"""A long journal for the report's speed and equivalence checks: 10,000 orders (by
default) in batches of 53, written through engine.journal.Journal with a fixed
wall clock, so the same call always writes the same journal.

Every kind of event the report reads is in it: batches, intents that are sent,
acked and filled (partly and wholly), denied, waiting for approval (approved,
rejected, expired), rejected by the venue, unknown outcomes, cancels, dropped and
skipped signals, a trading-state change and a kill switch, overrides, positions and
account snapshots, reconciliations, and two sessions (the first sealed).

JournalCopy writes a copy of a journal row by row, to grow it as a session would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import engine.journal as journal_module
from engine import events as ev
from engine.config import SymbolOverride
from engine.journal import Journal
from engine.model import DenialReason, Fill, Order, OrderStatus, Position, RolloutMode, Side, TradingState
from engine.orders import make_client_order_id

T0 = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}" for i in range(53)]
BATCH = 53
D = Decimal


class _Clock:
    def __init__(self, start: datetime):
        self.now = start

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)

    def __call__(self) -> str:
        return self.now.isoformat(timespec="microseconds")


@contextmanager
def _fixed_clock(start: datetime) -> Iterator[_Clock]:
    clock = _Clock(start)
    saved = journal_module._utcnow, journal_module._new_session_id
    journal_module._utcnow = clock
    journal_module._new_session_id = lambda venue_date: f"{venue_date:%Y%m%d}-bigjourn"
    try:
        yield clock
    finally:
        journal_module._utcnow, journal_module._new_session_id = saved


def write_big_journal(path: str | Path, orders: int = 10_000) -> Path:
    """Write the journal at path (which must not exist yet) and return the path."""
    path = Path(path)
    with _fixed_clock(T0 - timedelta(days=1)) as clock, Journal(path) as j:
        old = j.open_session("cfg-old", date(2026, 3, 4)).session_id
        _session(j, clock, 5 * BATCH, T0 - timedelta(days=1), old)
        j.seal("stopped")
        clock.now = T0
        sid = j.open_session("cfg-new", date(2026, 3, 5)).session_id
        _session(j, clock, orders, T0, sid, last=True)
        j.seal("stopped")
    return path


def _session(j: Journal, clock: _Clock, orders: int, start: datetime, sid: str, last: bool = False) -> None:
    j.append(ev.ReconcileCompleted(ok=True, trigger="startup", counts={"orders": 0}))
    j.append(
        ev.PositionsSnapshot(
            positions=[Position(symbol="S00", qty=D("10"), avg_entry_price=D("100.00"), last_price=D("100.50"))]
        )
    )
    j.append(ev.AccountSnapshot(cash=D("96000"), equity=D("100000"), last_equity=D("99500"), buying_power=D("192000")))
    j.append(ev.TradingStateChanged(state=TradingState.ACTIVE, cause="session start"))
    j.append(ev.OverrideSet(symbol="S03", override=SymbolOverride(mode=RolloutMode.APPROVE, size_multiplier=0.5)))
    j.append(ev.SignalDropped(symbol="ZZZZ", reason="UNKNOWN_SYMBOL: ZZZZ is not in the universe"))
    n = 0
    bar = 0
    while n < orders:
        bar_ts = start + timedelta(minutes=bar)
        count = min(BATCH, orders - n)
        clock.advance(1000)
        _batch(j, clock, sid, bar, bar_ts, n, count)
        if bar % 20 == 7:
            j.append(ev.SignalsSkipped(count=2, first_ts=bar_ts, last_ts=bar_ts + timedelta(seconds=30)))
            j.append(ev.SignalDropped(line="{garbage", reason="MALFORMED: not a JSON object"))
        if bar % 10 == 9:
            positions = [
                Position(symbol=s, qty=D(bar + k), avg_entry_price=D("100.25"), last_price=D("100.75"))
                for k, s in enumerate(SYMBOLS)
            ]
            j.append(ev.PositionsSnapshot(positions=positions))
            j.append(
                ev.AccountSnapshot(
                    cash=D("90000") - bar, equity=D("100000") + bar, last_equity=D("99500"), buying_power=D("180000")
                )
            )
            j.append(ev.ReconcileCompleted(ok=True, trigger="periodic", counts={"orders": n}))
        n += count
        bar += 1
    if last:
        clock.advance(500)
        j.append(ev.TradingStateChanged(state=TradingState.HALTED, cause="operator", previous=TradingState.ACTIVE))
        j.append(ev.KillSwitch(phase="requested", detail="operator key K"))
        clock.advance(20)
        j.append(ev.KillSwitch(phase="sent", counts={"open": 3}))
        clock.advance(200)
        j.append(ev.KillSwitch(phase="confirmed", counts={"canceled": 3}))
        j.append(ev.OverrideSet(symbol="S03", override=None))


def _batch(j: Journal, clock: _Clock, sid: str, bar: int, bar_ts: datetime, first: int, count: int) -> None:
    intents: list[ev.Event] = []
    for k in range(count):
        i = first + k
        symbol = SYMBOLS[k % len(SYMBOLS)]
        side = Side.BUY if i % 3 else Side.SELL
        price = D("100") + D(i % 97) / 4
        order = Order(
            client_order_id=make_client_order_id(sid, bar, symbol, k),
            symbol=symbol,
            side=side,
            qty=D(1 + i % 40),
            limit_price=price + (D("0.05") if side is Side.BUY else D("-0.05")),
            decision_price=price,
            bar_ts=bar_ts,
            signal=round(((i % 21) - 10) / 10, 2) or 0.05,
            reason="signal" if i % 50 else "stop_loss",
            reduce_only=i % 50 == 0,
            created_at=bar_ts,
        )
        intents.append(ev.IntentCreated(order=order, batch_seq=bar))
    j.append_many(intents, durable=False)
    orders = [e.order for e in intents if isinstance(e, ev.IntentCreated)]
    decided: list[ev.Event] = []
    sent: list[Order] = []
    for k, o in enumerate(orders):
        i = first + k
        coid = o.client_order_id
        if i % 17 == 0:
            decided.append(ev.IntentDenied(client_order_id=coid, reason=DenialReason.POSITION_EXCEEDS_MAX, detail="x"))
        elif i % 23 == 0:
            decided.append(ev.ApprovalRequested(client_order_id=coid, expires_at=bar_ts + timedelta(seconds=30)))
        else:
            sent.append(o)
    decided.append(ev.BatchProcessed(bar_ts=bar_ts, batch_seq=bar, intents=count))
    j.append_many(decided)
    clock.advance(5)
    j.append_many([ev.SubmitSent(client_order_id=o.client_order_id, at=bar_ts) for o in sent], durable=True)
    for k, o in enumerate(sent):
        i = first + k
        coid = o.client_order_id
        clock.advance(0.4)
        if i % 31 == 0:
            j.append(ev.SubmitRejected(client_order_id=coid, http_status=403, code=40310000, message="no"))
            continue
        if i % 37 == 0:
            j.append(ev.SubmitUnknown(client_order_id=coid, cause="timeout"))
        j.append(ev.SubmitAcked(client_order_id=coid, venue_order_id=f"v-{coid}", status=OrderStatus.NEW))
    for k, o in enumerate(sent):
        i = first + k
        coid = o.client_order_id
        if i % 31 == 0:
            continue
        clock.advance(0.7)
        if i % 5 == 0:  # left working, then canceled
            j.append(ev.CancelRequested(client_order_id=coid, cause="bar_end" if i % 2 else "operator"))
            j.append(ev.OrderStatusChanged(client_order_id=coid, status=OrderStatus.CANCELED, source="stream"))
            continue
        px = (o.limit_price or D(100)) - D("0.01")
        ts = bar_ts + timedelta(seconds=1)
        if i % 4 == 0 and o.qty > 1:
            half = (o.qty / 2).to_integral_value()
            j.append(_fill(o, f"x-{coid}-a", half, px, ts, OrderStatus.PARTIALLY_FILLED))
            clock.advance(0.3)
            j.append(_fill(o, f"x-{coid}-b", o.qty - half, px + D("0.02"), ts, OrderStatus.FILLED))
            if i % 8 == 0:  # the stream repeats an execution
                j.append(_fill(o, f"x-{coid}-b", o.qty - half, px + D("0.02"), ts, OrderStatus.FILLED))
        else:
            j.append(_fill(o, f"x-{coid}", o.qty, px, ts, OrderStatus.FILLED))
    clock.advance(50)
    for k, o in enumerate(orders):
        i = first + k
        if i % 17 != 0 and i % 23 == 0:
            coid = o.client_order_id
            if i % 3 == 0:
                j.append(ev.IntentApproved(client_order_id=coid))
                j.append(ev.SubmitSent(client_order_id=coid, at=bar_ts), durable=False)
                j.append(ev.SubmitAcked(client_order_id=coid, venue_order_id=f"v-{coid}", status=OrderStatus.NEW))
            elif i % 3 == 1:
                j.append(ev.IntentRejected(client_order_id=coid, detail="no"))
            else:
                j.append(ev.IntentExpired(client_order_id=coid, at=bar_ts + timedelta(seconds=30)))


def _fill(o: Order, xid: str, qty: Decimal, price: Decimal, ts: datetime, status: OrderStatus) -> ev.FillApplied:
    return ev.FillApplied(
        fill=Fill(
            execution_id=xid,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side,
            qty=qty,
            price=price,
            ts=ts,
        ),
        status=status,
    )


class JournalCopy:
    """A copy of a journal written row by row: its events (extra rows between them), the
    manifest's row of a session when its first row is copied and its end when its
    SessionEnded is (as Journal.open_session and seal write them)."""

    def __init__(self, source: Path, dest: Path):
        with sqlite3.connect(source) as src:
            self.rows = src.execute("SELECT seq, ts, session_id, type, payload FROM events ORDER BY seq").fetchall()
            self.sessions = {r[0]: r for r in src.execute("SELECT * FROM sessions").fetchall()}
        Journal(dest).close()
        self.dest, self.done = dest, 0

    def batch_starts(self) -> list[int]:
        """Row counts just before each batch's first intent (the rows of the batches
        before it all journaled)."""
        return [
            i for i, row in enumerate(self.rows) if row[3] == "IntentCreated" and self.rows[i - 1][3] != "IntentCreated"
        ]

    def cuts(self, *where: int) -> list[int]:
        return sorted({min(max(w, 1), len(self.rows)) for w in where})

    def boundaries(self) -> list[int]:
        """Row counts just before, at and after each SessionStarted and SessionEnded."""
        out = []
        for i, row in enumerate(self.rows):
            if row[3] in ("SessionStarted", "SessionEnded"):
                out += [i, i + 1, i + 2]
        return out

    def grow_to(self, count: int, extra: list[tuple[str, str, str]] = ()) -> int:
        """Copy the rows up to `count` (then the extra rows: (session, type, payload));
        the rows written."""
        with sqlite3.connect(self.dest) as conn:
            listed = {r[0] for r in conn.execute("SELECT session_id FROM sessions")}
            for _, ts, sid, type_name, payload in self.rows[self.done : count]:
                if sid not in listed:
                    _, config_hash, venue_date, started, _, _ = self.sessions[sid]
                    conn.execute(
                        "INSERT INTO sessions(session_id, config_hash, venue_date, started_at) VALUES (?,?,?,?)",
                        (sid, config_hash, venue_date, started),
                    )
                    listed.add(sid)
                conn.execute(
                    "INSERT INTO events(ts, session_id, type, payload) VALUES (?,?,?,?)", (ts, sid, type_name, payload)
                )
                if type_name == "SessionEnded":
                    _, _, _, _, ended, how = self.sessions[sid]
                    conn.execute("UPDATE sessions SET ended_at=?, how_ended=? WHERE session_id=?", (ended, how, sid))
            last = self.rows[count - 1]
            for sid, type_name, payload in extra:
                conn.execute(
                    "INSERT INTO events(ts, session_id, type, payload) VALUES (?,?,?,?)",
                    (last[1], sid, type_name, payload),
                )
        written = count - self.done + len(extra)
        self.done = count
        return written
