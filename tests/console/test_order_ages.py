"""A tick of the venue clock costs what is on screen, not every working order:
the orders' ages are painted from the table's clock when a row is drawn, so the
tick re-renders no row's cells and the ages shown still move."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

from console.app import ExecDeskApp
from console.dev import T0, InMemoryHandle, demo_snapshot, order_row
from engine.config import Settings
from tests.console.deskkit import screen_text, until


async def test_a_clock_tick_repaints_ages_without_touching_every_row() -> None:
    orders = {r.client_order_id: r for r in (order_row(i, "AAPL") for i in range(2_000))}
    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    async with app.run_test(size=(160, 48)) as pilot:
        handle.publish(orders=MappingProxyType(orders))
        app.refresh_snapshot()
        await pilot.pause()
        table = app.main_screen.orders  # type: ignore[union-attr]
        await until(pilot, lambda: table.row_count == 2_000, what="2,000 working orders in the table")
        first = orders["dev-000000"]
        assert first.submitted_at == T0
        assert "0s" in table.get_row("dev-000000")[8].plain

        snap = handle.publish(venue_time=T0 + timedelta(seconds=65))
        from console.widgets.tables import RenderContext

        changed = table.reconcile(snap.orders, RenderContext(venue_time=snap.venue_time, marks=table._ctx.marks))
        assert changed == 0, f"a clock tick re-rendered {changed} cells"
        app.refresh_snapshot()
        await pilot.pause()
        assert table.get_row("dev-000000")[8].plain == "1m05s", "the age reads the clock it is painted at"
        await until(pilot, lambda: "1m05s" in screen_text(app), what="the new age on screen")


async def test_values_changed_in_place_are_shown_without_rebuilding_the_row_order() -> None:
    """1 of 2,000 orders partly filled: the new figure is on screen, and the table's
    row order and line offsets (rebuilt over every row when DataTable's update
    count moves) are kept; only a snapshot that adds or removes rows moves it. A
    snapshot that changes nothing in the status line asks for no layout of the
    screen (which repaints every widget)."""
    import dataclasses
    from decimal import Decimal

    orders = {r.client_order_id: r for r in (order_row(i, "AAPL") for i in range(2_000))}
    handle = InMemoryHandle(demo_snapshot())
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    async with app.run_test(size=(160, 48)) as pilot:
        handle.publish(orders=MappingProxyType(orders))
        app.refresh_snapshot()
        await pilot.pause()
        table = app.main_screen.orders  # type: ignore[union-attr]
        await until(pilot, lambda: table.row_count == 2_000, what="2,000 working orders in the table")
        await until(pilot, lambda: "0/100" in screen_text(app), what="the orders on screen")
        count = table._update_count
        first = orders["dev-000000"]
        # a figure as wide as the one it replaces (a wider one grows its column: all
        # lines change then, and the count moves)
        orders["dev-000000"] = dataclasses.replace(first, filled_qty=Decimal(7))
        handle.publish(orders=MappingProxyType(dict(orders)))
        layouts = {w.id: w._layout_updates for w in app.query("#status-bar Static, #banner")}
        app.refresh_snapshot()
        asked = {w.id: w._layout_updates for w in app.query("#status-bar Static, #banner")}
        assert len(asked) == 3 and asked == layouts, "a snapshot with the same status line asked for a layout"
        await pilot.pause()
        await until(pilot, lambda: "7/100" in screen_text(app), what="the partial fill on screen")
        assert table.get_row("dev-000000")[3].plain == "7/100"
        assert table._update_count == count, "a value changed in place rebuilt the row order"
        del orders["dev-000001"]
        handle.publish(orders=MappingProxyType(dict(orders)))
        app.refresh_snapshot()
        await pilot.pause()
        assert table._update_count > count and table.row_count == 1_999


def _cells(strips: list) -> list[list[tuple[str, object]]]:
    """Each line as (character, style) per cell: equal as drawn, however split."""
    return [[(ch, segment.style) for segment in strip for ch in segment.text] for strip in strips]


async def _table_lines(venue_time, *, ticked_from=None, size=(160, 48), scroll_right_edge=False):
    """The working-orders table's lines on screen at `venue_time`: drawn at once
    (ticked_from None), or drawn at `ticked_from` and then ticked to `venue_time`."""
    from textual.geometry import Region

    orders = {r.client_order_id: r for r in (order_row(i, "AAPL") for i in range(400))}
    handle = InMemoryHandle(demo_snapshot())
    handle.publish(orders=MappingProxyType(orders), venue_time=ticked_from or venue_time)
    app = ExecDeskApp(handle, Settings(), clock_in_view=False)
    async with app.run_test(size=size) as pilot:
        table = app.main_screen.orders  # type: ignore[union-attr]
        await until(pilot, lambda: table.row_count == 400, what="the working orders in the table")
        table.move_cursor(row=3, animate=False)
        if scroll_right_edge:
            # the age column cut by the table's right edge
            age = list(table.columns).index("age")
            x = sum(c.get_render_width(table) for c in table.ordered_columns[:age])
            table.scroll_to(x=x + 3 - table.size.width, animate=False, immediate=True)
        await pilot.pause()
        scroll, region = table.scroll_offset, Region(0, 0, *table.size)
        before = table.render_lines(region)
        if ticked_from is not None:
            handle.publish(venue_time=venue_time)
            app.refresh_snapshot()
            await pilot.pause()
        return scroll, before, table.render_lines(region)


async def test_a_painted_age_is_drawn_as_a_table_drawn_from_scratch() -> None:
    """After a tick the lines on screen (ages written over lines drawn a second
    earlier, the cursor row among them) are the lines a table drawn at the new
    clock shows: same characters, same styles (the cursor's, the click metadata)."""
    for later, size, edge in (
        (T0 + timedelta(seconds=65), (160, 48), False),
        (T0 + timedelta(seconds=65), (60, 24), True),
        (T0 - timedelta(seconds=5), (160, 48), False),  # 'expired': wider than the column, cropped
    ):
        scroll, before, ticked = await _table_lines(later, ticked_from=T0, size=size, scroll_right_edge=edge)
        scroll_fresh, _, fresh = await _table_lines(later, size=size, scroll_right_edge=edge)
        assert scroll == scroll_fresh and (scroll.x > 0) == edge
        if not edge:
            assert any("1m05s" in strip.text or "expir " in strip.text for strip in fresh)
        assert _cells(before) != _cells(fresh), "the tick changed nothing on screen"
        assert _cells(ticked) == _cells(fresh), f"a ticked line differs from a fresh one ({later}, {size})"
