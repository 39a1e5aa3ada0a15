"""Benchmarks of the journal and the order book: append rates with durable
(fsynced) intents in the mix, replay speed, and the cost of applying one event
to the OrderBook at 10 and at 10,000 open orders.

Run alone: `python -m benchmarks.bench_journal` (or through `make bench`)."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from engine import events as ev
from engine.journal import Journal, recover
from engine.model import Fill, Order, OrderStatus, Side
from engine.orders import OrderBook, make_client_order_id

T0 = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
SESSION = "20260305-benchbnc"
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "UNH"]


def _intent(n: int, bar: int = 0) -> ev.IntentCreated:
    symbol = SYMBOLS[n % len(SYMBOLS)]
    return ev.IntentCreated(
        order=Order(
            client_order_id=make_client_order_id(SESSION, bar, symbol, n),
            symbol=symbol,
            side=Side.BUY if n % 2 else Side.SELL,
            qty=Decimal(10 + n % 90),
            limit_price=Decimal("187.25"),
            bar_ts=T0 + timedelta(minutes=bar),
            signal=0.42,
            decision_price=Decimal("187.2031"),
            reason="signal",
            created_at=T0,
        ),
        batch_seq=bar,
    )


def _lifecycle(n: int, bar: int, durable_send: bool = False) -> list[tuple[ev.Event, bool]]:
    """One order's life as the Engine journals it: intent (durable), sent
    (durable if durable_send), acked, new, filled."""
    e = _intent(n, bar)
    coid, o = e.order.client_order_id, e.order
    return [
        (e, True),
        (ev.SubmitSent(client_order_id=coid, at=T0), durable_send),
        (ev.SubmitAcked(client_order_id=coid, venue_order_id=f"v-{bar}-{n}", status=OrderStatus.ACCEPTED), False),
        (ev.OrderStatusChanged(client_order_id=coid, status=OrderStatus.NEW, source="stream"), False),
        (
            ev.FillApplied(
                fill=Fill(
                    execution_id=f"x-{bar}-{n}",
                    client_order_id=coid,
                    symbol=o.symbol,
                    side=o.side,
                    qty=o.qty,
                    price=Decimal("187.24"),
                    ts=T0,
                ),
                status=OrderStatus.FILLED,
            ),
            False,
        ),
    ]


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def bench_append(dirpath: Path) -> list[dict]:
    out = []
    for durable_send, label in ((False, "1 durable in 5: the intent"), (True, "2 durable in 5: intent and sent")):
        mix = [item for i in range(4000) for item in _lifecycle(i, i // 10, durable_send)]
        with Journal(dirpath / f"mix-{durable_send}.sqlite") as j:
            j.open_session("bench")
            t = time.perf_counter()
            for event, durable in mix:
                j.append(event, durable=durable)
            rate = _rate(len(mix), time.perf_counter() - t)
            out.append(
                {
                    "name": f"journal append, order lifecycles ({label})",
                    "value": rate,
                    "unit": "events/s",
                    "target": ">= 5000",
                    "ok": rate >= 5000,
                }
            )
    intents = [_intent(i, i // 10) for i in range(3000)]
    with Journal(dirpath / "durable.sqlite") as j:
        j.open_session("bench")
        t = time.perf_counter()
        for event in intents:
            j.append(event, durable=True)
        out.append(
            {
                "name": "journal append, every event durable (fsync each)",
                "value": _rate(len(intents), time.perf_counter() - t),
                "unit": "events/s",
                "target": "(reported)",
                "note": "bounded by the disk's fsync latency",
            }
        )
    with Journal(dirpath / "group.sqlite") as j:
        j.open_session("bench")
        t = time.perf_counter()
        for k in range(0, len(intents), 10):
            j.append_many(intents[k : k + 10], durable=True)
        out.append(
            {
                "name": "journal append_many, durable group commit of 10 intents",
                "value": _rate(len(intents), time.perf_counter() - t),
                "unit": "events/s",
                "target": "(reported)",
            }
        )
    plain = [item[0] for item in mix[:10000]]
    with Journal(dirpath / "plain.sqlite") as j:
        j.open_session("bench")
        t = time.perf_counter()
        for event in plain:
            j.append(event)
        out.append(
            {
                "name": "journal append, none durable",
                "value": _rate(len(plain), time.perf_counter() - t),
                "unit": "events/s",
                "target": "(reported)",
            }
        )
    return out


def bench_replay(dirpath: Path) -> list[dict]:
    """Rebuilding the book of 10,000 orders (5 events each) from the journal."""
    path = dirpath / "replay.sqlite"
    with Journal(path) as j:
        j.open_session("bench")
        for b in range(0, 10000, 500):
            batch = [item[0] for i in range(b, b + 500) for item in _lifecycle(i, i // 10)]
            j.append_many(batch)
        total = j.last_seq()
    with Journal(path, readonly=True) as j:
        t = time.perf_counter()
        recovered = recover(j.replay())
        seconds = time.perf_counter() - t
    assert len(recovered.book) == 10000 and not recovered.book.skipped
    return [
        {
            "name": f"journal replay + OrderBook rebuild, 10,000 orders ({total} events)",
            "value": round(seconds, 3),
            "unit": "s",
            "target": "< 2 (part of the 2 s start-up reconciliation)",
            "ok": seconds < 2,
        }
    ]


def _book_with_open_orders(n: int) -> OrderBook:
    book = OrderBook()
    for i in range(n):
        e = _intent(i, bar=100_000)
        book.apply(e)
        coid = e.order.client_order_id
        book.apply(ev.SubmitSent(client_order_id=coid))
        book.apply(ev.SubmitAcked(client_order_id=coid, venue_order_id=f"open-{i}", status=OrderStatus.NEW))
    assert book.open_count == n
    return book


def bench_order_book(cycles: int = 5000, repeats: int = 3) -> list[dict]:
    """Per event cost of an order's life (intent, sent, acked, status, fill) in a
    book already holding n open orders; the cycle leaves n open afterwards."""
    out = []
    costs = {}
    for n in (10, 10_000):
        best = float("inf")
        for r in range(repeats):
            book = _book_with_open_orders(n)
            stream: list[ev.Event] = []
            for i in range(cycles):
                stream += [item[0] for item in _lifecycle(i, bar=r * 1000 + 1)]
            t = time.perf_counter()
            for event in stream:
                book.apply(event)
            best = min(best, (time.perf_counter() - t) / len(stream))
            assert book.open_count == n
        costs[n] = best
        out.append(
            {
                "name": f"OrderBook.apply, one event at {n:,} open orders",
                "value": round(best * 1e6, 2),
                "unit": "us/event",
                "target": "same at 10 and 10,000 open orders",
            }
        )
    same = costs[10_000] <= 1.5 * costs[10]
    for row in out:
        row["ok"] = same
    return out


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="execdesk-bench-") as tmp:
        results = bench_append(Path(tmp))
        results += bench_replay(Path(tmp))
    results += bench_order_book()
    return results


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<72} {row['value']:>12} {row['unit']:<9} target {row['target']}")
