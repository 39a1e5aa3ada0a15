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

        # a tick that changes no age on screen (65.4 s is still 1m05s) repaints
        # nothing; the next second repaints the age column alone
        refreshed: list[tuple] = []
        refresh = table.refresh

        def spy(*regions, **kwargs):
            refreshed.append(regions)
            return refresh(*regions, **kwargs)

        table.refresh = spy  # type: ignore[method-assign]
        for seconds, regions in ((65.4, 0), (66, 1)):
            snap = handle.publish(venue_time=T0 + timedelta(seconds=seconds))
            app.refresh_snapshot()
            assert len(refreshed) == regions, f"{seconds} s: {refreshed}"
        ((region,),) = refreshed
        assert region.width == 7 and region.height == table.size.height - 1, region
        await until(pilot, lambda: "1m06s" in screen_text(app), what="the next age on screen")


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
    """The lines on screen of the working orders and of the approval queue at
    `venue_time`: drawn at once (ticked_from None), or drawn at `ticked_from` and
    then ticked to `venue_time`. The cursors are on the orders' third row and
    on the queue's second (the last one shown)."""
    from textual.geometry import Region

    orders = {r.client_order_id: r for r in (order_row(i, "AAPL") for i in range(400))}
    handle = InMemoryHandle(demo_snapshot())
    handle.publish(orders=MappingProxyType(orders), venue_time=ticked_from or venue_time)
    settings = Settings()
    settings.console.new_row_guard_ms = 0  # no "new" highlight: it ends on a wall-clock timer
    app = ExecDeskApp(handle, settings, clock_in_view=False)
    async with app.run_test(size=size) as pilot:
        tables = (app.main_screen.orders, app.main_screen.queue)  # type: ignore[union-attr]
        await until(pilot, lambda: tables[0].row_count == 400, what="the working orders in the table")
        for table, row in zip(tables, (2, 1), strict=True):
            table.move_cursor(row=row, animate=False)
        if scroll_right_edge:
            # the age column cut by the table's right edge
            table = tables[0]
            age = list(table.columns).index("age")
            x = sum(c.get_render_width(table) for c in table.ordered_columns[:age])
            table.scroll_to(x=x + 3 - table.size.width, animate=False, immediate=True)
        await pilot.pause()
        scroll = tables[0].scroll_offset

        def lines() -> list:
            return [line for table in tables for line in table.render_lines(Region(0, 0, *table.size))]

        before = lines()
        if ticked_from is not None:
            handle.publish(venue_time=venue_time)
            app.refresh_snapshot()
            await pilot.pause()
        return scroll, before, lines()


async def test_a_painted_age_is_drawn_as_a_table_drawn_from_scratch(monkeypatch) -> None:
    """After a tick the lines on screen (ages and countdowns written over lines
    drawn earlier, the cursor rows among them) are the lines of tables drawn at
    the new clock: same characters, same styles (the cursor's, a countdown's red,
    the click metadata). The approval queue's countdowns (48 s left at T0): 43 s;
    14 s to 11 s, red under the cursor (painted); 13 s, turned red since T0 (its
    row re-rendered). The lines drawn from scratch are DataTable's own: no cell
    painted over them."""
    from console.widgets.tables import ApprovalQueue, WorkingOrders

    s = timedelta(seconds=1)
    for start, later, size, edge, shown in (
        (T0, T0 + 65 * s, (160, 48), False, "1m05s"),
        (T0, T0 + 65 * s, (60, 24), True, None),
        (T0, T0 - 5 * s, (160, 48), False, "expir "),  # an age wider than its column: cropped
        (T0, T0 + 5 * s, (160, 48), False, " 43s "),
        (T0 + 34 * s, T0 + 37 * s, (160, 48), False, " 11s "),
        (T0, T0 + 35 * s, (160, 48), False, " 13s "),
    ):
        scroll, before, ticked = await _table_lines(later, ticked_from=start, size=size, scroll_right_edge=edge)
        with monkeypatch.context() as unpainted:
            for table in (WorkingOrders, ApprovalQueue):
                unpainted.setattr(table, "PAINTED_CLOCK", False)
            scroll_fresh, _, fresh = await _table_lines(later, size=size, scroll_right_edge=edge)
        assert scroll == scroll_fresh and (scroll.x > 0) == edge
        if shown is not None:
            assert any(shown in strip.text for strip in fresh), f"no {shown!r} on screen"
        assert _cells(before) != _cells(fresh), "the tick changed nothing on screen"
        assert _cells(ticked) == _cells(fresh), f"a ticked line differs from a fresh one ({later}, {size})"
