"""Benchmarks of the risk layer: one full pre-trade check (every check runs, the order
passes) and sizing one batch of 53 signals, each at 53 positions and at 53 positions
plus 10,000 open orders. Exposures are kept incrementally, so both should cost the
same at either scale.

Run alone: `python -m benchmarks.bench_risk` (or through `make bench`)."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from engine.config import load_settings
from engine.model import Side
from engine.portfolio import Portfolio
from engine.risk import CheckContext, PreTradeRisk
from engine.sizing import ProposedOrder, marketable_limit, size_batch
from engine.universe import Universe

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)
EQUITY = Decimal(10_000_000)
CHECK_TARGET_US = 20.0
SIZING_TARGET_MS = 1.0


def _desk(open_orders: int):
    settings = load_settings(REPO / "config" / "execution.toml", env={})
    universe = Universe.load(REPO / "config" / "universe.toml")
    pf = Portfolio(settings, universe)
    pf.set_account(EQUITY, EQUITY, EQUITY, 2 * EQUITY)
    symbols = [a.symbol for a in universe]
    for a in universe:
        half = Decimal("0.01")
        pf.on_quote(a.symbol, a.price - half, a.price + half, NOW)
        # a 0.5%-of-equity long in every symbol: 53 positions
        qty = (EQUITY * Decimal("0.005") / a.price).to_integral_value()
        pf.apply_fill(a.symbol, Side.BUY, qty, a.price)
    # open orders, 1 share each, on every symbol but the one the benchmark checks
    others = symbols[1:]
    for i in range(open_orders):
        sym = others[i % len(others)]
        b = pf.book(sym)
        pf.order_opened(f"open-{i}", sym, Side.BUY, Decimal(1), b.ask)
    risk = PreTradeRisk(settings, assets=universe)
    ctx = CheckContext(now=NOW, overrides=settings.rollout.overrides)
    return pf, risk, ctx, universe, symbols


def _per_call_us(fn, calls: int, batches: int) -> float:
    """Median over batches of the mean time of one call, in microseconds."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return statistics.median(samples)


def bench_check(open_orders: int) -> dict:
    pf, risk, ctx, _, symbols = _desk(open_orders)
    sym = symbols[0]
    b = pf.book(sym)
    order = ProposedOrder(
        symbol=sym,
        side=Side.BUY,
        qty=Decimal(100),
        limit_price=marketable_limit(Side.BUY, b.bid, b.ask, pf.limits.limit_price_offset),
        decision_price=b.mark,
        signal=0.5,
    )
    assert risk.check(pf, order, ctx) is None, risk.check(pf, order, ctx)
    us = _per_call_us(lambda: risk.check(pf, order, ctx), calls=200, batches=100)
    return {
        "name": f"pre-trade check, full (passes), 53 positions + {open_orders:,} open orders",
        "value": round(us, 2),
        "unit": "µs median",
        "target": f"<= {CHECK_TARGET_US:g}",
        "ok": us <= CHECK_TARGET_US,
    }


def bench_sizing(open_orders: int) -> dict:
    pf, _, ctx, universe, symbols = _desk(open_orders)
    signals = {s: ((i * 37) % 200 - 100) / 100 for i, s in enumerate(symbols)}
    orders = size_batch(signals, pf, overrides=ctx.overrides, assets=universe)
    assert orders
    table = {a.symbol: a for a in universe}
    ms = (
        _per_call_us(lambda: size_batch(signals, pf, overrides=ctx.overrides, assets=table), calls=5, batches=40) / 1000
    )
    return {
        "name": f"sizing a batch of 53 signals, 53 positions + {open_orders:,} open orders",
        "value": round(ms, 3),
        "unit": "ms median",
        "target": f"<= {SIZING_TARGET_MS:g}",
        "ok": ms <= SIZING_TARGET_MS,
        "note": f"{len(orders)} orders proposed",
    }


def run() -> list[dict]:
    rows = [bench_check(0), bench_check(10_000)]
    ratio = rows[1]["value"] / rows[0]["value"]
    rows[1]["note"] = f"{ratio:.2f}x the cost at 0 open orders"
    rows += [bench_sizing(0), bench_sizing(10_000)]
    return rows


if __name__ == "__main__":
    for row in run():
        print(
            f"{row['name']:<80} {row['value']:>10} {row['unit']:<10} target {row['target']}"
            f"  {'ok' if row['ok'] else 'MISSED'}  {row.get('note', '')}"
        )
