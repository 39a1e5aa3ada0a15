"""Benchmarks of the operator console's UI time: the first frame, reconciling the
working-orders table at 10,000 rows (1,000 order updates; 1,000 orders gone and
1,000 new; the once-a-second venue-clock tick that ages the orders), the CPU an
idle console uses, and the CPU with a dialog open against the main screen alone.
Run headless on hand-built snapshots (console.dev), so the figures are the
console's own cost, without an engine.

Run alone: `python -m benchmarks.bench_console` (or through `make bench`)."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType

from console.app import ExecDeskApp
from console.dev import T0, InMemoryHandle, demo_snapshot, order_row
from engine.config import Settings

SIZE = (160, 48)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "XOM", "UNH"]
N_ORDERS = 10_000
N_UPDATES = 1_000
#: snapshots measured for each figure (the median is reported)
REPEATS = 5


def _orders(n: int, start: int = 0) -> dict:
    return {
        row.client_order_id: row for row in (order_row(i, SYMBOLS[i % len(SYMBOLS)]) for i in range(start, start + n))
    }


async def _first_frame() -> float:
    t0 = time.perf_counter()
    app = ExecDeskApp(InMemoryHandle(demo_snapshot()), Settings(), clock_in_view=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        elapsed = time.perf_counter() - t0
    return elapsed


async def _table_updates() -> list[dict]:
    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    results: list[dict] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        orders = _orders(N_ORDERS)
        t0 = time.perf_counter()
        handle.publish(orders=MappingProxyType(orders))
        app.refresh_snapshot()
        await pilot.pause()
        results.append(
            _row(f"console: load {N_ORDERS:,} working orders into the table", time.perf_counter() - t0, "s", "—")
        )

        table = app.main_screen.orders  # type: ignore[union-attr]
        table.move_cursor(row=5000, animate=False)
        selected = table.selected_key

        async def frame(new_orders: dict, **changes: object) -> tuple[float, float, float]:
            """(reconcile, reconcile + next frame, the CPU time of both) in seconds for one
            snapshot (the CPU time is this process's: what the UI costs whatever else
            the machine runs). The frame
            is painted at once (what the screen's refresh timer does at its next tick)
            after the messages the snapshot queued are handled; Pilot.pause would add
            its idle wait (at least one 20 ms sleep) to the figure, which is no UI time."""
            handle.publish(orders=MappingProxyType(new_orders), **changes)
            t1, c1 = time.perf_counter(), time.process_time()
            app.refresh_snapshot()
            reconcile = time.perf_counter() - t1
            await pilot._wait_for_screen()
            app.screen._on_timer_update()
            total, cpu = time.perf_counter() - t1, time.process_time() - c1
            await pilot.pause()  # settle before the next one (not timed)
            return reconcile, total, cpu

        async def measure(name: str, snapshots: list[tuple[dict, dict]], target: str) -> None:
            """The median over the snapshots (the machine is shared: one figure is noise)."""
            figures = [await frame(orders, **changes) for orders, changes in snapshots]
            reconcile = statistics.median(r for r, _, _ in figures)
            total = statistics.median(t for _, t, _ in figures)
            cpu = statistics.median(c for _, _, c in figures)
            results.append(_row(f"{name}: reconcile", reconcile * 1000, "ms", target))
            results.append(_row(f"{name}: reconcile + next frame", total * 1000, "ms", target))
            results.append(_row(f"{name}: reconcile + next frame, CPU time", cpu * 1000, "ms", target))

        # 1,000 order updates (partial fills) spread over the table, REPEATS times
        updates = []
        updated = dict(orders)
        for rep in range(REPEATS):
            updated = dict(updated)
            for i in range(0, N_ORDERS, N_ORDERS // N_UPDATES):
                key = f"dev-{i:06d}"
                updated[key] = dataclasses.replace(
                    updated[key],
                    status="partially_filled",
                    filled_qty=Decimal(40 + rep),
                    filled_avg_price=Decimal("190.20"),
                )
            updates.append((updated, {}))
        await measure(f"console: {N_UPDATES:,} order updates at {N_ORDERS:,} rows", updates, "<= 100 ms")
        assert table.selected_key == selected, "the cursor left the selected order"

        # 1,000 orders done (gone) and 1,000 new ones
        churned = dict(updated)
        for i in range(0, N_ORDERS, N_ORDERS // N_UPDATES):
            if f"dev-{i:06d}" != selected:
                del churned[f"dev-{i:06d}"]
        churned.update(_orders(N_UPDATES, start=N_ORDERS))
        await measure(
            f"console: {N_UPDATES:,} orders gone + {N_UPDATES:,} new at {N_ORDERS:,} rows", [(churned, {})], "—"
        )
        assert table.selected_key == selected, "the cursor left the selected order"

        # the venue clock moves a second, REPEATS times: the ages on screen are
        # repainted (painted cells read the table's clock), no row is re-rendered
        ticks = [(churned, {"venue_time": T0 + timedelta(seconds=1 + rep)}) for rep in range(REPEATS)]
        await measure(f"console: once-a-second age update at {N_ORDERS:,} rows", ticks, "<= 20 ms")
    return results


async def _busy_cpu(with_dialog: bool, seconds: float = 3.0) -> float:
    """CPU of the console while the engine publishes 10 snapshots a second (the
    venue clock moving, 100 of 1,000 working orders changing each time), with the
    main screen alone or with the override dialog open on top."""
    from console.screens.override import OverrideScreen

    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    orders = _orders(1_000)
    async with app.run_test(size=SIZE) as pilot:
        handle.publish(orders=MappingProxyType(orders))
        app.refresh_snapshot()
        await pilot.pause(0.3)
        if with_dialog:
            app.push_screen(OverrideScreen("AAPL", None))
            await pilot.pause(0.3)
        c0, w0 = time.process_time(), time.perf_counter()
        tick = 0
        while time.perf_counter() - w0 < seconds:
            tick += 1
            for i in range(tick % 10, 1_000, 10):
                key = f"dev-{i:06d}"
                orders[key] = dataclasses.replace(orders[key], filled_qty=Decimal(tick % 50))
            handle.publish(orders=MappingProxyType(dict(orders)), venue_time=T0 + timedelta(seconds=tick / 10))
            await asyncio.sleep(0.1)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu / wall * 100


async def _idle_cpu(seconds: float = 3.0) -> float:
    app = ExecDeskApp(InMemoryHandle(demo_snapshot()), Settings(), clock_in_view=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu / wall * 100


def _row(name: str, value: float, unit: str, target: str) -> dict:
    return {"name": name, "value": round(value, 3 if unit == "s" else 1), "unit": unit, "target": target}


async def _run() -> list[dict]:
    results = [_row("console: first frame (headless, 160x48)", await _first_frame(), "s", "<= 1.5 s")]
    results += await _table_updates()
    results.append(
        _row("console: idle CPU (polling at max_fps, nothing changes)", await _idle_cpu(), "% core", "< 5 %")
    )
    main_alone = await _busy_cpu(with_dialog=False)
    results.append(_row("console: CPU, main screen, 10 snapshots/s", main_alone, "% core", "—"))
    results.append(
        _row(
            "console: CPU, override dialog open on top, 10 snapshots/s",
            await _busy_cpu(with_dialog=True),
            "% core",
            f"<= main alone ({main_alone:.1f} %)",
        )
    )
    return results


def run() -> list[dict]:
    return asyncio.run(_run())


if __name__ == "__main__":
    for row in run():
        print(f"{row['name']:<72} {row['value']:>12} {row['unit']:<9} target {row['target']}")
