"""What must not mislead: the per-bar order quota at 100 % is the normal state (not
red), flat P&L is a flat line (not bars at full height), every price on screen is
written one way, and the approval queue gets more room than an empty orders pane."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from console import format as fmt
from console.app import ExecDeskApp
from console.widgets.event_log import event_line
from console.widgets.risk_panel import pl_spark, usage_line
from engine.snapshot import EventRow, LimitUsage
from tests.console.deskkit import Desk, intents_waiting, until


def _styles(text) -> set[str]:
    return {str(span.style) for span in text.spans}


def test_the_order_quota_of_a_bar_used_up_is_not_red() -> None:
    full = usage_line(LimitUsage("orders this bar", 10, 10, "orders"), 60)
    assert not any("red" in style for style in _styles(full)), _styles(full)
    over = usage_line(LimitUsage("orders this bar", 11, 10, "orders"), 60)
    assert any("red" in style for style in _styles(over))
    danger = usage_line(LimitUsage("gross exposure", 0.78, 0.8), 60)
    assert any("red" in style for style in _styles(danger)), "a real limit near its cap must stay red"


def test_flat_pnl_is_a_flat_line_at_the_bottom() -> None:
    for flat in ([0.0] * 30, [0.0, 0.01, 0.02, 0.01] * 8, [5.0] * 30):
        top, bottom = pl_spark(flat, 30, height=2).plain.split("\n")
        assert top.strip() == "", f"{flat[:4]}...: flat P&L drawn above the bottom row: {top!r}"
        assert set(bottom) <= {"▁", "▂"}, f"flat P&L drawn at height: {bottom!r}"
    top, _bottom = pl_spark([0.0, 500.0, 1500.0], 3, height=2).plain.split("\n")
    assert top.strip(), "a real rise must reach the top row"


def test_prices_are_written_one_way() -> None:
    assert fmt.price(Decimal("46.7")) == "46.70"
    assert fmt.price(Decimal("46.71234")) == "46.71"
    assert fmt.price(Decimal("0.5123")) == "0.5123"
    ts = datetime(2026, 3, 2, 15, tzinfo=UTC)
    for raw in ("buy 32 BAC @ 46.7 (32/46)", "buy 32 BAC @ 46.70000"):
        line = event_line(EventRow(1, ts, "fill", "BAC", raw)).plain
        assert "@ 46.70" in line and "46.700" not in line, line


async def test_the_queue_gets_more_room_than_an_empty_orders_pane(desk: Desk) -> None:
    intents_waiting(desk, at_least=5)
    app = ExecDeskApp(desk.handle, desk.settings, clock_in_view=False)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.main_screen
        await until(pilot, lambda: screen.queue.row_count >= 5, what="intents on screen")
        await pilot.pause(0.2)
        assert not desk.handle.snapshot.orders
        queue_rows = screen.queue.size.height
        assert queue_rows > screen.orders.size.height, (screen.queue.size, screen.orders.size)
        assert queue_rows >= min(screen.queue.row_count + 3, 20), (
            f"queue {queue_rows} rows high for {screen.queue.row_count} intents"
        )


def test_a_working_order_shows_the_market_and_its_distance_to_the_limit() -> None:
    from console.dev import order_row
    from console.widgets.tables import RenderContext, WorkingOrders

    buy = order_row(1, "NVDA")  # limit 190.25
    sell = order_row(2, "JPM")
    ctx = RenderContext(venue_time=None, marks={"NVDA": Decimal("191.20"), "JPM": Decimal("190.25")})
    mkt, dist = WorkingOrders._market_cells(buy, ctx)
    assert (mkt.plain, dist.plain) == ("191.20", "+0.50%"), "a buy 0.5 % under the market"
    mkt, dist = WorkingOrders._market_cells(sell, ctx)
    assert (mkt.plain, dist.plain) == ("190.25", "+0.00%")
    mkt, dist = WorkingOrders._market_cells(order_row(3, "TSLA"), ctx)
    assert (mkt.plain, dist.plain) == (fmt.DASH, fmt.DASH), "no price known: a dash, not a guess"


async def test_thousands_of_working_orders_do_not_push_the_positions_out_of_view() -> None:
    """The working orders scroll; the few positions keep their rows on screen."""
    from types import MappingProxyType

    from console.dev import InMemoryHandle, demo_snapshot, order_row
    from engine.config import Settings

    handle = InMemoryHandle(demo_snapshot())
    held = len(handle.snapshot.positions)
    assert held >= 2
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        handle.publish(orders=MappingProxyType({r.client_order_id: r for r in (order_row(i) for i in range(2_000))}))
        app.refresh_snapshot()
        await pilot.pause(0.2)
        screen = app.main_screen
        assert screen.positions.size.height >= 1 + held, "the header and every position on screen"
        assert screen.orders.size.height > 20, "the orders have the rest of the room"
