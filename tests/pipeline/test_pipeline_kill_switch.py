"""The kill switch with a book of working orders: one Halt, one cancel-all at the
venue, tracked until the venue has confirmed every cancel; afterwards the venue
(seen through alpaca-py) has no open order. The 1,000-order figure is a benchmark
(docs/benchmarks.md), not a test; here about fifty orders rest at the venue.

Orders rest because the venue fills each one partially at once (partial_fill_prob
1.0) and its clock is frozen, so nothing more fills until the test moves it."""

from __future__ import annotations

import tomllib
from decimal import Decimal

from engine.commands import Halt
from engine.model import TradingState
from tests.pipeline.pipekit import UNIVERSE_PATH

SYMBOLS = sorted(tomllib.loads(UNIVERSE_PATH.read_text())["symbols"])


def test_halt_cancels_about_fifty_working_orders_and_the_venue_confirms_each(make_pipe):
    pipe = make_pipe(
        auto_approve=True,
        sim={"partial_fill_prob": 1.0},
        position_sizing={"max_position_size": 0.012},  # 53 x 1.2% stays inside every exposure limit
        order_management={"max_orders_per_bar": 100},
        risk_management={"max_orders_per_second": 100},
        # no periodic reconciliation during the test: the engine's own view must be right
        # from the stream and the REST answers (a REST answer overtaken by the stream's
        # partial fill once left orders shown "new" until the next reconciliation)
        monitoring={"order_reconciliation_interval": 3600},
    )
    pipe.send(dict.fromkeys(SYMBOLS, 1.0))
    pipe.wait(
        lambda: (
            pipe.snapshot.open_order_count
            and all(r.status == "partially_filled" for r in pipe.snapshot.orders.values())
        ),
        what="the orders to rest at the venue, partially filled",
    )
    working = pipe.eyes.open_orders()
    assert len(working) >= 45, f"only {len(working)} orders rest at the venue"
    assert pipe.snapshot.open_order_count == len(working)
    assert {o.client_order_id for o in working} == set(pipe.snapshot.orders)

    result = pipe.execute(Halt())
    assert result.ok, result.message
    kill = pipe.wait(
        lambda: pipe.snapshot.kill_switch.phase == "confirmed" and pipe.snapshot.kill_switch,
        what="the venue to confirm every cancel",
    )
    assert kill.cancels_requested == len(working)
    assert kill.cancels_confirmed == len(working)
    assert pipe.eyes.open_orders() == []
    assert pipe.snapshot.trading_state is TradingState.HALTED
    pipe.wait(lambda: pipe.snapshot.open_order_count == 0, what="the engine's book to show no working order")
    errors = [e.text for e in pipe.snapshot.events if e.kind == "error"]
    assert not errors, errors

    venue = pipe.eyes.orders_by_client_id()
    for o in working:
        after = venue[o.client_order_id]
        assert after.status.value == "canceled"
        assert Decimal(after.filled_qty) > 0  # the partial fill stands: a cancel does not undo it
    positions = pipe.eyes.positions()
    pipe.wait(
        lambda: (
            {s: r.qty for s, r in pipe.snapshot.positions.items()} == {s: Decimal(p.qty) for s, p in positions.items()}
        ),
        what="the engine's positions to equal the venue's",
    )

    report = pipe.report()
    phases = [k["phase"] for k in report["kill_switch"]]
    assert phases == ["requested", "sent", "confirmed"]
    assert report["kill_switch"][-1]["counts"] == {"confirmed": len(working)}
    assert report["summary"]["orders_by_status"].get("canceled") == len(working)
